"""The request receiver (with the serial CRC, the payload cursor and a buffer) in the
Amaranth simulator, against the driver's frame encoder and a Python model of what a
receiver makes of a byte stream: good frames, bad CRCs, long lengths, truncated frames,
noise between frames."""

import random

import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib.memory import Memory

from host_bench import run_testbench
from tritium.hw.host_crc import SerialCrc, connect_requests
from tritium.hw.host_receiver import HELD_STATES, PayloadCursor, RequestReceiver
from tritium.hw.protocol import MAX_PAYLOAD, REQUEST_START, Cmd
from tritium.sw.run.driver import encode_request

IDLE = 40       # cycles


class ReceiverBench(Elaboratable):
    def __init__(self):
        self.receiver = RequestReceiver(IDLE)
        self.buffer = Memory(shape=8, depth=MAX_PAYLOAD + 1, init=[])

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver = receiver = self.receiver
        m.submodules.crc = crc = SerialCrc()
        m.submodules.cursor = cursor = PayloadCursor()
        m.submodules.buffer = self.buffer
        write = self.buffer.write_port()
        connect_requests(m, crc, receiver.crc)
        m.d.comb += [receiver.crc_hold.eq(crc.hold), receiver.frame_crc.eq(crc.frame),
                     crc.rx_byte.eq(receiver.byte),
                     cursor.length.eq(receiver.cursor.length), cursor.step.eq(receiver.cursor.step),
                     cursor.load.eq(receiver.cursor.load),
                     cursor.load_index.eq(receiver.cursor.load_index),
                     cursor.load_at_end.eq(receiver.cursor.load_at_end),
                     receiver.cursor_index.eq(cursor.index),
                     receiver.cursor_at_end.eq(cursor.at_end),
                     write.addr.eq(receiver.write.addr), write.data.eq(receiver.write.data),
                     write.en.eq(receiver.write.en)]
        self.cursor = cursor
        return m


def model(pieces):
    """What a receiver makes of ``pieces`` (``(bytes, gap cycles after them)``): a list of
    ``("request", cmd, seq, payload)`` or ``(flag,)`` per frame it answers."""
    out, state, buf = [], "sync", bytearray()
    for data, gap in pieces:
        for b in data:
            if state == "sync":
                if b == REQUEST_START:
                    state, buf = "frame", bytearray()
                continue
            buf.append(b)
            if len(buf) == 4:
                length = buf[2] | buf[3] << 8
                if length > MAX_PAYLOAD:
                    out.append(("nak_length",))
                    state = "sync"
            elif len(buf) >= 8 and len(buf) == 8 + (buf[2] | buf[3] << 8):
                frame = bytes([REQUEST_START]) + bytes(buf)
                cmd, seq, length = buf[0], buf[1], buf[2] | buf[3] << 8
                payload = bytes(buf[4:4 + length])
                good = encode_request(cmd, seq, payload) == frame
                out.append(("request", cmd, seq, payload) if good else ("nak_crc",))
                state = "sync"
        if gap >= IDLE and state == "frame":
            out.append(("nak_timeout",) if len(buf) >= 4 else None)
            state = "sync"
    return [o for o in out if o]


async def receive(ctx, bench, pieces):
    """Feed ``pieces`` and answer every held frame at once; returns what was held."""
    receiver, got = bench.receiver, []

    async def answer():
        flags = {name: ctx.get(getattr(receiver.frame, name)) for name in HELD_STATES.values()}
        held = [name for name, value in flags.items() if value]
        if not held:
            return
        assert len(held) == 1
        if held == ["request"]:
            frame = receiver.frame
            length = ctx.get(frame.length)
            payload = bytes(ctx.get(bench.buffer.data[k]) for k in range(length))
            assert ctx.get(frame.arg) == int.from_bytes(payload[:4].ljust(4, b"\0"), "little") \
                or length < 4
            assert ctx.get(bench.cursor.index) == 4 and ctx.get(bench.cursor.at_end) == \
                (length == 4)
            got.append(("request", ctx.get(frame.cmd), ctx.get(frame.seq), payload))
        else:
            got.append((held[0],))
        ctx.set(receiver.frame.release, 1)
        await ctx.tick()
        ctx.set(receiver.frame.release, 0)

    for data, gap in pieces:
        for b in data:
            ctx.set(receiver.rx.payload, b)
            ctx.set(receiver.rx.valid, 1)
            while True:
                await answer()
                ready = ctx.get(receiver.rx.ready)
                await ctx.tick()
                if ready:
                    break
            ctx.set(receiver.rx.valid, 0)
        for _ in range(gap):
            await answer()
            await ctx.tick()
    for _ in range(4 * IDLE):
        await answer()
        await ctx.tick()
    return got


def simulate(pieces):
    bench, result = ReceiverBench(), []

    async def testbench(ctx):
        result.extend(await receive(ctx, bench, pieces))

    run_testbench(bench, testbench)
    return result


def _frames(rng, n):
    out = []
    for _ in range(n):
        length = rng.choice([0, 1, 3, 4, 5, 17, rng.randrange(MAX_PAYLOAD + 1), MAX_PAYLOAD])
        payload = bytes(rng.randrange(256) for _ in range(length))
        out.append(encode_request(rng.choice(list(Cmd)), rng.randrange(256), payload))
    return out


def test_good_frames_with_noise_between():
    rng = random.Random(1)
    pieces = []
    for frame in _frames(rng, 6):
        noise = bytes(rng.choice([0x00, 0xFF, 0x5A]) for _ in range(rng.randrange(3)))
        pieces.append((noise + frame, rng.randrange(3)))
    want = model(pieces)
    assert [w[0] for w in want] == ["request"] * 6
    assert simulate(pieces) == want


@pytest.mark.parametrize("damage", ["crc", "payload", "length", "truncated payload",
                                    "truncated header", "truncated crc"])
def test_damaged_frames(damage):
    """A damaged frame, then idle time, then a good frame: the damaged one is refused
    (or, cut in its header, dropped) and the good one is received."""
    frame = bytearray(encode_request(Cmd.IMAGE, 1, bytes(range(20))))
    if damage == "crc":
        frame[-1] ^= 0x10
    elif damage == "payload":
        frame[6] ^= 0x01
    elif damage == "length":
        frame[3:5] = (MAX_PAYLOAD + 1).to_bytes(2, "little")
    elif damage == "truncated payload":
        frame = frame[:-7]
    elif damage == "truncated header":
        frame = frame[:3]
    elif damage == "truncated crc":
        frame = frame[:-2]
    good = encode_request(Cmd.STATUS, 9, b"")
    pieces = [(bytes(frame), 3 * IDLE), (good, 0)]
    want = model(pieces)
    assert want[-1] == ("request", Cmd.STATUS, 9, b"")
    assert len(want) == (1 if damage == "truncated header" else 2)
    assert simulate(pieces) == want


def test_model_sees_what_it_should():
    """The model itself, on hand-made streams (so a wrong model cannot pass the tests)."""
    good = encode_request(Cmd.START, 3, b"")
    assert model([(b"\x00" + good, 0)]) == [("request", Cmd.START, 3, b"")]
    assert model([(good[:-1] + bytes([good[-1] ^ 1]), 0)]) == [("nak_crc",)]
    assert model([(good[:4], IDLE)]) == []
    assert model([(good[:6], IDLE)]) == [("nak_timeout",)]
    assert model([(bytes([REQUEST_START, 1, 2, 0x01, 0x02]), 0)]) == [("nak_length",)]
