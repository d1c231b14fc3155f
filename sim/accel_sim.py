"""Amaranth-simulator harness for the whole accelerator.

:func:`run_amaranth` loads a compiled model through the accelerator's host
ports (program, weight banks, threshold memories, activation buffer 0), runs
each program and reads the result memory back: what the ISA-level simulator
(:func:`tritium.sw.isasim.simulate`) returns, from the RTL.
"""

from amaranth.sim import Simulator

from ..hw.accel import Accelerator
from ..hw.layouts import pack, thresholds_layout
from ..sw.compiler import pack_input, results_to_accumulators
from ..sw.image import threshold_words


async def _write(ctx, en, addr, data, items, extra=None):
    for a, d in items:
        ctx.set(en, 1)
        ctx.set(addr, a)
        ctx.set(data, d)
        if extra:
            extra(a)
        await ctx.tick()
    ctx.set(en, 0)


async def load(ctx, dut, compiled):
    """Write program, weights, thresholds and the weight store through the host ports."""
    await _write(ctx, dut.prog_we, dut.prog_addr, dut.prog_data, enumerate(compiled.program))
    for p, bank in enumerate(compiled.weight_banks):
        ctx.set(dut.wload.bank, p)
        await _write(ctx, dut.wload.en, dut.wload.addr, dut.wload.data,
                     [(a, w) for a, w in enumerate(bank) if w])
    for p, words in enumerate(threshold_words(compiled)):
        ctx.set(dut.tload.bank, p)
        await _write(ctx, dut.tload.en, dut.tload.addr, dut.tload.data.as_value(), enumerate(words))
    if compiled.store_words:
        await _write(ctx, dut.sload.en, dut.sload.addr, dut.sload.data,
                     [(a, w) for a, w in enumerate(compiled.store_words) if w])


async def run_once(ctx, dut, compiled, words, max_cycles):
    """Write one program run's input, start, wait for done; returns (entries, cycles)."""
    await _write(ctx, dut.act_we, dut.act_addr, dut.act_data, enumerate(words))
    ctx.set(dut.start, 1)
    await ctx.tick()
    ctx.set(dut.start, 0)
    for _ in range(max_cycles):
        if ctx.get(dut.done) or ctx.get(dut.error):
            break
        await ctx.tick()
    if ctx.get(dut.error):
        raise RuntimeError(f"accelerator error code {ctx.get(dut.error_code)}")
    if not ctx.get(dut.done):
        raise RuntimeError(f"accelerator not done after {max_cycles} cycles")
    o = compiled.io["output"]
    entries = []
    for e in range(o["h"] * o["w"] * o["tiles"]):
        ctx.set(dut.res_addr, o["res_base"] + e)
        await ctx.tick().repeat(compiled.config.res_latency)
        entries.append([int(v) for v in ctx.get(dut.res_data)])
    return entries, ctx.get(dut.cycles)


def run_amaranth(compiled, values, max_cycles=None):
    """Run inputs on the RTL in the Amaranth simulator: (accumulators, cycles per run).

    ``max_cycles`` per run defaults to twice the compiled cycle model plus a
    margin, so a design that never finishes fails quickly.
    """
    if max_cycles is None:
        expected = compiled.io.get("cycles") or (sum(l["cycles"] for l in compiled.io["layers"])
                                                 + len(compiled.program))
        max_cycles = 2 * expected + 100
    dut = Accelerator(compiled.config)
    runs = pack_input(compiled, values)
    results, cycles = [], []

    async def bench(ctx):
        await load(ctx, dut, compiled)
        for words in runs:
            entries, n = await run_once(ctx, dut, compiled, words, max_cycles)
            results.append(entries)
            cycles.append(n)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return results_to_accumulators(compiled, results), cycles
