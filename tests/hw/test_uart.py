"""UART 8N1 receiver and transmitter in the Amaranth simulator (fast)."""

import random

import pytest
from amaranth.sim import Simulator

from tritium.hw.config import ConfigError
from tritium.hw.uart import UART, UARTRx, UARTTx, uart_divisor


def frame_bits(byte, stop=1):
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


async def drive_line(ctx, pin, bits, period, idle=0):
    """Drive ``bits`` on ``pin``, ``period`` clock cycles each (a float: a baud mismatch)."""
    t, cycle = 0.0, 0
    for bit in bits:
        t += period
        ctx.set(pin, bit)
        while cycle < round(t):
            await ctx.tick()
            cycle += 1
    ctx.set(pin, 1)
    await ctx.tick().repeat(idle + 1)


async def collect(ctx, port, n, ready_rng=None, limit=100_000):
    """Take ``n`` bytes from a stream source (``ready`` random when ``ready_rng``)."""
    got = []
    for _ in range(limit):
        ready = 1 if ready_rng is None else ready_rng.random() < 0.7
        ctx.set(port.ready, ready)
        valid, payload = ctx.get(port.valid), ctx.get(port.payload)
        await ctx.tick()
        if valid and ready:
            got.append(payload)
            if len(got) == n:
                return got
    raise AssertionError(f"only {len(got)} of {n} bytes arrived")


def run(dut, *benches):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for bench in benches:
        sim.add_testbench(bench, background=bench is not benches[0])
    sim.run()


@pytest.mark.parametrize("error", [0.0, +0.03, -0.03])
def test_rx_random_bytes_back_to_back(error):
    divisor = 13
    rng = random.Random(7)
    data = [rng.randrange(256) for _ in range(40)] + [0x00, 0xFF, 0x55, 0xAA]
    dut = UARTRx(divisor)
    got = []

    async def send(ctx):
        bits = [b for byte in data for b in frame_bits(byte)]
        await drive_line(ctx, dut.pin, bits, divisor * (1 + error))
        await ctx.tick().repeat(4 * divisor)

    async def recv(ctx):
        got.extend(await collect(ctx, dut.stream, len(data), random.Random(3)))

    run(dut, send, recv)
    assert got == data


def test_rx_framing_error_and_recovery():
    divisor = 8
    dut = UARTRx(divisor)
    errors, got = [], []

    async def send(ctx):
        bits = frame_bits(0x3C, stop=0) + [0] * 12 + [1, 1] + frame_bits(0xA5)
        await drive_line(ctx, dut.pin, bits, divisor)
        await ctx.tick().repeat(4 * divisor)

    async def watch(ctx):
        ctx.set(dut.stream.ready, 1)
        async for _, _, fe, valid, payload in ctx.tick().sample(
                dut.framing_error, dut.stream.valid, dut.stream.payload):
            errors.append(fe)
            if valid:
                got.append(payload)

    run(dut, send, watch)
    assert sum(errors) == 1          # the break after the bad frame is not a second error
    assert got == [0xA5]


def test_rx_ignores_glitch_and_flags_overrun():
    divisor = 8
    dut = UARTRx(divisor)
    overruns = []

    async def send(ctx):
        ctx.set(dut.pin, 0)          # a glitch shorter than half a bit
        await ctx.tick().repeat(2)
        ctx.set(dut.pin, 1)
        await ctx.tick().repeat(3 * divisor)
        await drive_line(ctx, dut.pin, frame_bits(0x11) + frame_bits(0x22), divisor)
        await ctx.tick().repeat(2 * divisor)
        assert ctx.get(dut.stream.valid) and ctx.get(dut.stream.payload) == 0x11

    async def watch(ctx):
        ctx.set(dut.stream.ready, 0)   # never takes: the second byte overruns
        async for _, _, ov in ctx.tick().sample(dut.overrun):
            overruns.append(ov)

    run(dut, send, watch)
    assert sum(overruns) == 1


@pytest.mark.parametrize("error", [0.0, +0.03, -0.03])
def test_loopback_tx_into_rx(error):
    """Bytes sent back to back by the transmitter arrive at a receiver whose clock
    is off by ``error`` (the receiver's divisor is scaled)."""
    divisor = 16
    rng = random.Random(11)
    data = [rng.randrange(256) for _ in range(30)]
    tx = UARTTx(divisor)
    rx_div = round(divisor * (1 + error))
    rx = UARTRx(rx_div)
    from amaranth.hdl import Module
    m = Module()
    m.submodules.tx, m.submodules.rx = tx, rx
    m.d.comb += rx.pin.eq(tx.pin)
    got = []

    async def send(ctx):
        for byte in data:
            ctx.set(tx.stream.payload, byte)
            ctx.set(tx.stream.valid, 1)
            await ctx.tick().until(tx.stream.ready)
        ctx.set(tx.stream.valid, 0)
        await ctx.tick().repeat(20 * divisor)

    async def recv(ctx):
        got.extend(await collect(ctx, rx.stream, len(data)))

    run(m, send, recv)
    assert got == data


def test_tx_bit_timing():
    divisor = 10
    dut = UARTTx(divisor)
    levels = []

    async def bench(ctx):
        assert ctx.get(dut.pin) == 1
        ctx.set(dut.stream.payload, 0x96)
        ctx.set(dut.stream.valid, 1)
        await ctx.tick()
        ctx.set(dut.stream.valid, 0)
        for _ in range(10 * divisor + 5):
            levels.append(ctx.get(dut.pin))
            await ctx.tick()

    run(dut, bench)
    sampled = [levels[k * divisor + divisor // 2] for k in range(10)]
    assert sampled == frame_bits(0x96)
    assert all(levels[k] == levels[(k // divisor) * divisor] for k in range(10 * divisor))
    assert levels[10 * divisor:] == [1] * 5


def test_uart_wrapper_loopback():
    dut = UART(uart_divisor(1e6, 125000))
    from amaranth.hdl import Module
    m = Module()
    m.submodules.uart = dut
    m.d.comb += dut.rx_pin.eq(dut.tx_pin)
    data = [0x00, 0x7E, 0xFF, 0x81]

    async def send(ctx):
        for byte in data:
            ctx.set(dut.tx.payload, byte)
            ctx.set(dut.tx.valid, 1)
            await ctx.tick().until(dut.tx.ready)
        ctx.set(dut.tx.valid, 0)
        await ctx.tick().repeat(100)

    got = []

    async def recv(ctx):
        got.extend(await collect(ctx, dut.rx, len(data)))

    run(m, send, recv)
    assert got == data


def test_divisor_checks():
    assert uart_divisor(48e6, 115200) == 417
    with pytest.raises(ConfigError):
        uart_divisor(1e6, 1_000_000)
    with pytest.raises(ConfigError):
        UARTRx(2)
