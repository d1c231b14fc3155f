"""The host link's components in the Amaranth simulator, each against a Python model:
the serial CRC against zlib's CRC-32, the response sender against the driver's
frame encoder."""

import random
import zlib

import pytest
from amaranth.hdl import Const, Elaboratable, Module, Signal

from host_bench import run_testbench
from tritium.hw.accel_config import AccelConfig
from tritium.hw.config import HwConfig
from tritium.hw.host_crc import CRC_INIT, CRC_SOURCES, SerialCrc
from tritium.hw.host_sender import ResponseSender
from tritium.hw.protocol import NAK, RESPONSE_FLAG, STATUS_PAYLOAD, Cmd, Err, Nak, State, acc_bytes
from tritium.sw.run.driver import encode_response

CFG = AccelConfig(core=HwConfig(pe=4, simd=16, weight_depth=16, thr_depth=8),
                  act_depth=32, res_depth=8, prog_depth=16)


# ---------------------------------------------------------------- serial CRC

async def crc_feed(ctx, crc, byte, source, **flags):
    """One byte from ``source`` through the registers named in ``flags``."""
    while ctx.get(crc.hold):
        await ctx.tick()
    for s in CRC_SOURCES:
        ctx.set(getattr(crc, f"{s}_byte"), byte if s == source else byte ^ 0xFF)
    for s in CRC_SOURCES[1:]:
        ctx.set(getattr(crc, f"from_{s}"), s == source)
    ctx.set(crc.feed, 1)
    for name, value in flags.items():
        ctx.set(getattr(crc, name), value)
    await ctx.tick()
    ctx.set(crc.feed, 0)
    for name in flags:
        ctx.set(getattr(crc, name), 0)
    for s in CRC_SOURCES:       # the byte is taken in the request's cycle
        ctx.set(getattr(crc, f"{s}_byte"), 0)


@pytest.mark.parametrize("registered", [False, True])
def test_serial_crc_matches_zlib(registered):
    rng = random.Random(3)
    dut = SerialCrc(registered=registered)
    garbage = bytes(rng.randrange(256) for _ in range(3))
    data = bytes(rng.randrange(256) for _ in range(60))
    in_section = [16 <= k < 40 for k in range(len(data))]
    as_zero = [k in (8, 9, 10, 11) for k in range(len(data))]
    got = {}

    async def bench(ctx):
        for b in garbage:           # the registers start from wherever a previous use left them
            await crc_feed(ctx, dut, b, "rx", to_frame=1, to_image=1, to_section=1)
        while ctx.get(dut.hold):
            await ctx.tick()
        for name in ("init_frame", "init_image", "init_section"):
            ctx.set(getattr(dut, name), 1)
        await ctx.tick()
        for name in ("init_frame", "init_image", "init_section"):
            ctx.set(getattr(dut, name), 0)
        for k, b in enumerate(data):
            await crc_feed(ctx, dut, b, rng.choice(CRC_SOURCES), to_frame=1, to_image=1,
                           to_section=in_section[k], image_zero=as_zero[k])
        while ctx.get(dut.hold):
            await ctx.tick()
        got.update({r: ctx.get(getattr(dut, r)) for r in ("frame", "image", "section")})

    run_testbench(dut, bench)
    image = bytes(0 if z else b for b, z in zip(data, as_zero))
    section = bytes(b for b, s in zip(data, in_section) if s)
    assert got == {"frame": zlib.crc32(data) ^ CRC_INIT, "image": zlib.crc32(image) ^ CRC_INIT,
                   "section": zlib.crc32(section) ^ CRC_INIT}


def test_serial_crc_takes_nine_cycles_a_byte():
    dut = SerialCrc()
    busy = []

    async def bench(ctx):
        ctx.set(dut.feed, 1)
        ctx.set(dut.to_frame, 1)
        await ctx.tick()
        ctx.set(dut.feed, 0)
        for _ in range(12):
            busy.append(ctx.get(dut.hold))
            await ctx.tick()

    run_testbench(dut, bench)
    assert busy == [1] * 9 + [0] * 3


# ---------------------------------------------------------------- response sender

class SenderHarness(Elaboratable):
    """A :class:`ResponseSender` wired to a :class:`SerialCrc` as the link wires them,
    reading its results from ``results`` (entry by entry, accumulator by accumulator);
    ``go`` is the link's transmit state."""

    def __init__(self, cfg, results, pos_bits=16):
        self.sender = ResponseSender(cfg, pos_bits)
        self.crc = SerialCrc()
        self.results = results
        self.go = Signal()

    def elaborate(self, platform):
        m = Module()
        m.submodules.sender = sender = self.sender
        m.submodules.crc = crc = self.crc
        m.d.comb += [
            sender.active.eq(self.go & ~crc.hold), sender.crc_hold.eq(crc.hold),
            sender.frame_crc.eq(crc.frame), crc.tx_byte.eq(sender.byte), crc.from_tx.eq(1),
            crc.feed.eq(sender.feed), crc.to_frame.eq(sender.feed), crc.shift.eq(sender.shift),
            crc.init_frame.eq(sender.send_status | sender.send_nak | sender.send_results),
        ]
        with m.Switch(sender.entry):
            for e, entry in enumerate(self.results):
                with m.Case(e):
                    with m.Switch(sender.acc_index):
                        for p, value in enumerate(entry):
                            with m.Case(p):
                                m.d.comb += sender.acc_value.eq(Const(value, sender.acc_value.shape()))
        return m


def send(harness, pulse, inputs, ready_seed=None):
    """The bytes the sender puts out after ``pulse`` with ``inputs`` set (``tx.ready``
    random when ``ready_seed`` is given)."""
    sender, out = harness.sender, []
    rng = random.Random(ready_seed)

    async def bench(ctx):
        for name, value in inputs.items():
            ctx.set(getattr(sender, name), value)
        await ctx.tick()
        ctx.set(getattr(sender, pulse), 1)
        ctx.set(sender.prep, 1)
        await ctx.tick()
        ctx.set(getattr(sender, pulse), 0)
        await ctx.tick()                # the link's TX_PREP
        ctx.set(sender.prep, 0)
        ctx.set(harness.go, 1)
        for _ in range(20_000):
            ready = ready_seed is None or rng.random() < 0.6
            ctx.set(sender.tx.ready, ready)
            valid, byte, done = (ctx.get(sender.tx.valid), ctx.get(sender.tx.payload),
                                 ctx.get(sender.done))
            await ctx.tick()
            if valid and ready:
                out.append(byte)
                if done:
                    return
        raise AssertionError(f"no end of frame after {bytes(out).hex()}")

    run_testbench(harness, bench)
    return bytes(out)


@pytest.mark.parametrize("valid,failed,error,pos,done,run_error", [
    (0, 0, Err.NONE, 0, 0, 0), (0, 0, Err.NONE, 300, 0, 0), (1, 0, Err.NONE, 1234, 1, 0),
    (0, 1, Err.IMAGE_CRC, 77, 0, 0), (1, 0, Err.NONE, 999, 0, 1)])
def test_status_response_matches_the_encoder(valid, failed, error, pos, done, run_error):
    harness = SenderHarness(CFG, [[0] * CFG.core.pe])
    inputs = dict(cmd=Cmd.STATUS, seq=200, image_valid=valid, image_failed=failed,
                  error=error, image_pos=pos, run_done=done, run_error=run_error,
                  cycles=0x12345678)
    state = State.ERROR if run_error else State.DONE if done else State.IDLE
    shown = error if valid or failed or error else Err.NO_IMAGE if pos == 0 else Err.IMAGE_INCOMPLETE
    payload = STATUS_PAYLOAD.pack(state, shown, valid | failed << 1, 0, bytes.fromhex(CFG.hash),
                                  0x12345678, pos)
    assert send(harness, "send_status", inputs, ready_seed=1) == \
        encode_response(Cmd.STATUS | RESPONSE_FLAG, 200, payload)


@pytest.mark.parametrize("reason", list(Nak))
def test_nak_response_matches_the_encoder(reason):
    harness = SenderHarness(CFG, [[0] * CFG.core.pe])
    got = send(harness, "send_nak", dict(cmd=0x42, seq=9, nak_reason=reason))
    assert got == encode_response(NAK, 9, bytes([reason, 0x42]))


@pytest.mark.parametrize("first,count", [(0, 1), (2, 3), (0, 8), (5, 0)])
def test_results_response_matches_the_encoder(first, count):
    rng = random.Random(first * 10 + count)
    bits = CFG.core.acc_bits
    results = [[rng.randrange(-(1 << bits - 1), 1 << bits - 1) for _ in range(CFG.core.pe)]
               for _ in range(CFG.res_depth)]
    harness = SenderHarness(CFG, results)
    got = send(harness, "send_results", dict(cmd=Cmd.RESULTS, seq=3, first=first, count=count),
               ready_seed=count)
    nb = acc_bytes(bits)
    payload = b"".join(v.to_bytes(nb, "little", signed=True)
                       for entry in results[first:first + count] for v in entry)
    assert got == encode_response(Cmd.RESULTS | RESPONSE_FLAG, 3, payload)
