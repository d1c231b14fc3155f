"""cocotb 2.x testbench of the generated core (``tritium_core``).

Run by :func:`tritium.sim.runner.run_core_cocotb`, never imported by pytest
directly. The cases to run come from the JSON file named by the environment
variable ``TRITIUM_CASES`` (a list of :class:`tritium.sim.vectors.Case`); a
summary per case is written to ``TRITIUM_RESULT``.

Per cycle the testbench sets its inputs after the falling clock edge (input
``valid`` low with probability ``TRITIUM_IN_STALL``, output ``ready`` low with
probability ``TRITIUM_OUT_STALL``), then samples the handshakes in the
read-only phase: a beat moves at the next rising edge when valid and ready
are both high. Every output beat goes to the scoreboard, which compares it
with the golden reference.
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from tritium.sim.vectors import Case, Scoreboard


async def _reset(dut):
    dut.rst.value = 1
    dut.inp__valid.value = 0
    dut.out__ready.value = 0
    dut.wload__en.value = 0
    dut.tload__en.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


async def _write_port(dut, port, writes):
    """Drive ``(bank, addr, data)`` writes through a load port (``wload`` / ``tload``)."""
    en, bank, addr, data = (getattr(dut, f"{port}__{f}") for f in ("en", "bank", "addr", "data"))
    for b, a, d in writes:
        await FallingEdge(dut.clk)
        en.value, bank.value, addr.value, data.value = 1, b, a, d
    await FallingEdge(dut.clk)
    en.value = 0


async def _load(dut, case):
    await _write_port(dut, "wload", case.weight_writes)
    await _write_port(dut, "tload", case.threshold_writes)


async def _stream(dut, case, rng, in_stall, out_stall):
    sb = Scoreboard(case)
    beats, sent = case.beats, 0
    limit = 4 * len(beats) + 1000
    cycles = 0
    while not sb.done and cycles < limit:
        await FallingEdge(dut.clk)
        cycles += 1
        valid = sent < len(beats) and rng.random() >= in_stall
        ready = rng.random() >= out_stall
        dut.inp__valid.value = int(valid)
        if valid:
            dut.inp__payload.value = beats[sent]
        dut.out__ready.value = int(ready)
        await ReadOnly()
        if valid and dut.inp__ready.value == 1:
            sent += 1
        if ready and dut.out__valid.value == 1:
            sb.check(dut.out__payload.value.to_unsigned())
    # Drain: nothing more may come out.
    await FallingEdge(dut.clk)
    dut.inp__valid.value = 0
    dut.out__ready.value = 1
    for _ in range(case.cfg.latency + 4):
        await ReadOnly()
        if dut.out__valid.value == 1:
            sb.check(dut.out__payload.value.to_unsigned())
        await FallingEdge(dut.clk)
    return sb, cycles, sent


@cocotb.test()
async def core_matches_reference(dut):
    """Random weights and activations, random stalls, every output against the reference."""
    with open(os.environ["TRITIUM_CASES"]) as f:
        cases = [Case(**c) for c in json.load(f)]
    seed = int(os.environ.get("TRITIUM_SEED", "1"))
    in_stall = float(os.environ.get("TRITIUM_IN_STALL", "0.25"))
    out_stall = float(os.environ.get("TRITIUM_OUT_STALL", "0.3"))
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await _reset(dut)
    summary = []
    for k, case in enumerate(cases):
        rng = random.Random(seed * 1000 + k)
        await _load(dut, case)
        sb, cycles, sent = await _stream(dut, case, rng, in_stall, out_stall)
        summary.append({"mode": case.mode, "vectors": len(case.expected), "beats_out": sb.index,
                        "inputs": sent, "cycles": cycles, "checked": sb.checked,
                        "mismatches": len(sb.mismatches), "first_mismatches": sb.mismatches[:5]})
        dut._log.info(sb.summary())
    with open(os.environ["TRITIUM_RESULT"], "w") as f:
        json.dump(summary, f, indent=1)
    bad = [s for s in summary if s["mismatches"] or s["beats_out"] != s["vectors"]]
    assert not bad, f"scoreboard: {bad}"
