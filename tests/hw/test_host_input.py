"""The input writer (with the payload cursor, a buffer and the word assembler) in the
Amaranth simulator, against a Python model of an INPUT request: the words it writes and
how it ends (whole words in range, a word cut short, a word past the buffer)."""

import random

import pytest
from amaranth.hdl import Cat, Elaboratable, Module, Signal
from amaranth.lib.memory import Memory

from host_bench import run_testbench
from tritium.hw.accel_config import AccelConfig
from tritium.hw.config import HwConfig
from tritium.hw.host_input import InputWriter
from tritium.hw.host_receiver import PayloadCursor
from tritium.hw.protocol import MAX_PAYLOAD, input_word_bytes


def config(simd, act_reg):
    return AccelConfig(core=HwConfig(pe=4, simd=simd, weight_depth=16, thr_depth=8),
                       act_depth=24, res_depth=8, prog_depth=16, act_reg=act_reg)


class InputBench(Elaboratable):
    def __init__(self, cfg):
        self.cfg = cfg
        self.writer = InputWriter(cfg, addr_width=8, data_width=cfg.core.simd)
        self.buffer = Memory(shape=8, depth=MAX_PAYLOAD + 1, init=[])
        self.cursor = PayloadCursor()
        self.length = Signal(range(MAX_PAYLOAD + 1))

    def elaborate(self, platform):
        m = Module()
        m.submodules.writer = writer = self.writer
        m.submodules.cursor = cursor = self.cursor
        m.submodules.buffer = self.buffer
        read = self.buffer.read_port()
        word = Signal(64)
        with m.If(writer.shift):
            m.d.sync += word.eq(Cat(word[8:], read.data))
        m.d.comb += [read.addr.eq(cursor.index), cursor.step.eq(writer.step),
                     cursor.length.eq(self.length), writer.at_end.eq(cursor.at_end),
                     writer.word.eq(word[-len(writer.word):])]
        return m


def model(cfg, payload):
    """``(writes, outcome)`` of an INPUT payload: ``(address, word)`` per word written."""
    wb = input_word_bytes(cfg.core.simd)
    first, words = int.from_bytes(payload[:4], "little"), payload[4:]
    n, rest = divmod(len(words), wb)
    mask = (1 << cfg.core.simd) - 1
    writes = [(first + k, int.from_bytes(words[k * wb:(k + 1) * wb], "little") & mask)
              for k in range(n) if first + k < cfg.act_depth]
    if rest:
        return writes, "length"
    return writes, "range" if first + max(n, 1) - 1 >= cfg.act_depth else "ok"


def simulate(cfg, payloads, seed=0):
    bench, rng, results = InputBench(cfg), random.Random(seed), []
    writer = bench.writer

    async def testbench(ctx):
        for payload in payloads:
            for k, b in enumerate(payload):
                ctx.set(bench.buffer.data[k], b)
            ctx.set(bench.length, len(payload))
            ctx.set(bench.cursor.load, 1)
            ctx.set(bench.cursor.load_index, 4)
            ctx.set(bench.cursor.load_at_end, len(payload) == 4)
            await ctx.tick()
            ctx.set(bench.cursor.load, 0)
            ctx.set(writer.first, int.from_bytes(payload[:4], "little"))
            ctx.set(writer.start, 1)
            await ctx.tick()
            ctx.set(writer.start, 0)
            writes, outcome = [], None
            for _ in range(40 * len(payload) + 20):
                ctx.set(writer.hold, rng.random() < 0.3)     # the CRC's cycles
                if ctx.get(writer.act.en):
                    writes.append((ctx.get(writer.act.addr), ctx.get(writer.act.data)))
                for name in ("ok", "length", "range"):
                    if ctx.get(getattr(writer, f"done_{name}")):
                        outcome = name
                await ctx.tick()
                if outcome:
                    break
            ctx.set(writer.hold, 0)
            for _ in range(2):          # a registered write lands a cycle later
                if ctx.get(writer.act.en):
                    writes.append((ctx.get(writer.act.addr), ctx.get(writer.act.data)))
                await ctx.tick()
            results.append((writes, outcome))

    run_testbench(bench, testbench)
    return results


def _payloads(cfg, rng):
    wb = input_word_bytes(cfg.core.simd)
    out = []
    for first, n_bytes in [(0, 0), (0, wb), (3, 5 * wb), (cfg.act_depth - 2, 2 * wb),
                           (cfg.act_depth - 2, 3 * wb), (cfg.act_depth, 0), (1 << 20, wb),
                           (2, 3 * wb + 1), (0, cfg.act_depth * wb)]:
        words = bytes(rng.randrange(256) for _ in range(n_bytes))
        out.append(first.to_bytes(4, "little") + words)
    return out


@pytest.mark.parametrize("simd, act_reg", [(16, False), (12, False), (64, True)])
def test_input_writer_matches_model(simd, act_reg):
    cfg = config(simd, act_reg)
    payloads = _payloads(cfg, random.Random(simd))
    want = [model(cfg, p) for p in payloads]
    assert {outcome for _, outcome in want} == {"ok", "length", "range"}
    assert simulate(cfg, payloads, seed=simd) == want
