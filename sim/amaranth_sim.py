"""Amaranth-simulator harness: stream drivers with random stalls, and running a Case."""

import random

from amaranth.sim import Simulator

from ..hw.core import Core
from .vectors import Scoreboard


async def send(ctx, stream, beats, rng, stall):
    """Drive ``beats`` (raw ints) into ``stream`` with random idle cycles (valid low)."""
    for beat in beats:
        while rng.random() < stall:
            ctx.set(stream.valid, 0)
            await ctx.tick()
        ctx.set(stream.valid, 1)
        ctx.set(stream.payload.as_value(), beat)
        await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def receive(ctx, stream, count, rng, stall, on_beat, max_cycles):
    """Take ``count`` beats from ``stream`` with random backpressure (ready low)."""
    got = cycles = 0
    while got < count and cycles < max_cycles:
        ready = rng.random() >= stall
        ctx.set(stream.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload.as_value())
        cycles += 1
        if ready and valid:
            on_beat(payload)
            got += 1
    ctx.set(stream.ready, 0)
    return got


async def write_port(ctx, port, writes):
    """Drive ``(bank, addr, data)`` writes through a load port (``wload`` / ``tload``)."""
    for bank, addr, data in writes:
        ctx.set(port.en, 1)
        ctx.set(port.bank, bank)
        ctx.set(port.addr, addr)
        ctx.set(port.data.as_value() if hasattr(port.data, "as_value") else port.data, data)
        await ctx.tick()
    ctx.set(port.en, 0)


async def load_core(ctx, dut, case):
    """Write the case's weight and threshold images through the load ports."""
    await write_port(ctx, dut.wload, case.weight_writes)
    await write_port(ctx, dut.tload, case.threshold_writes)


def run_case(case, seed=0, in_stall=0.3, out_stall=0.3, vcd=None):
    """Simulate the Core on ``case`` and return its :class:`Scoreboard`."""
    cfg = case.cfg
    dut = Core(cfg)
    sb = Scoreboard(case)
    rng = random.Random(seed)
    loaded = []

    async def driver(ctx):
        await load_core(ctx, dut, case)
        loaded.append(True)
        await send(ctx, dut.inp, case.beats, rng, in_stall)

    async def monitor(ctx):
        while not loaded:
            await ctx.tick()
        limit = 20 * (len(case.beats) + 10) + 100
        await receive(ctx, dut.out, len(case.expected), rng, out_stall, sb.check, limit)
        # A few more cycles: nothing else may come out.
        for _ in range(cfg.latency + 4):
            ctx.set(dut.out.ready, 1)
            _, _, valid, payload = await ctx.tick().sample(dut.out.valid, dut.out.payload.as_value())
            if valid:
                sb.check(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(monitor)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return sb
