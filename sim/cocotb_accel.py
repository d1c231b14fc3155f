"""cocotb 2.x testbench of the whole accelerator (``tritium_accel``).

Run by :func:`tritium.sim.runner.run_accel_cocotb`, never imported by pytest
directly. The job (JSON file named by ``TRITIUM_JOB``) holds the program, the
weight and threshold writes, the input words of every batch and, for a model
that runs in segments, the writes before each of its program runs
(:func:`tritium.sim.accel_sim.segment_writes`); the testbench loads them
through the host ports, starts each run, waits for ``done`` (the simulator
runs freely, no Python per cycle) and writes the result-memory entries and
the cycle count of each batch to ``TRITIUM_RESULT``.
"""

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge, with_timeout


async def _write(dut, en, addr, data, items):
    for a, d in items:
        await FallingEdge(dut.clk)
        en.value, addr.value, data.value = 1, a, d
    await FallingEdge(dut.clk)
    en.value = 0


async def _load_memories(dut, seg):
    """Program, weight-bank, threshold and weight-store writes: the job's first load, or
    those before one program run of a segmented model."""
    if seg["program"] is not None:
        await _write(dut, dut.prog_we, dut.prog_addr, dut.prog_data, enumerate(seg["program"]))
    for bank, writes in enumerate(seg["weights"]):
        dut.wload__bank.value = bank
        await _write(dut, dut.wload__en, dut.wload__addr, dut.wload__data, writes)
    for bank, writes in enumerate(seg["thresholds"]):
        dut.tload__bank.value = bank
        await _write(dut, dut.tload__en, dut.tload__addr, dut.tload__data, writes)
    if seg.get("store"):
        await _write(dut, dut.sload__en, dut.sload__addr, dut.sload__data, seg["store"])


@cocotb.test()
async def run_job(dut):
    with open(os.environ["TRITIUM_JOB"]) as f:
        job = json.load(f)
    # The C++ (GPI) clock: a Python clock coroutine would cost two callbacks a cycle.
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns", impl="gpi").start())
    for name in ("start", "prog_we", "act_we", "wload__en", "tload__en"):
        getattr(dut, name).value = 0
    if job["store"]:
        dut.sload__en.value = 0
    dut.rst.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    await _load_memories(dut, job)          # with the weight store's image, if any

    results = []
    segments = job["segments"]
    for i, words in enumerate(job["runs"]):
        cycles = 0
        for k, seg in enumerate(segments):
            if len(segments) > 1 and (i or k):
                await _load_memories(dut, seg)
            part = [] if seg["input"] is None else words[slice(*seg["input"])]
            await _write(dut, dut.act_we, dut.act_addr, dut.act_data, enumerate(part))
            await FallingEdge(dut.clk)
            dut.start.value = 1
            await FallingEdge(dut.clk)
            dut.start.value = 0
            if not (int(dut.done.value) or int(dut.error.value)):
                await with_timeout(RisingEdge(dut.done), job["timeout_ns"], "ns")
            assert not int(dut.error.value), f"accelerator error {int(dut.error_code.value)}"
            cycles += dut.cycles.value.to_unsigned()
        entries = []
        for e in range(job["entries"]):
            await FallingEdge(dut.clk)
            dut.res_addr.value = job["res_base"] + e
            for _ in range(job["res_latency"]):
                await FallingEdge(dut.clk)
            entries.append(dut.res_data.value.to_unsigned())
        results.append({"entries": entries, "cycles": cycles})
    with open(os.environ["TRITIUM_RESULT"], "w") as f:
        json.dump(results, f)
