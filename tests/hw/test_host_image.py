"""The image loader (with the serial CRC, the payload cursor, the buffer and the word
assembler, wired as in HostLink) in the Amaranth simulator: a compiled model's image,
in chunks that cut fields and words, gives exactly the memory writes its sections say
(bank, address, word), and each kind of damage the error code the protocol names."""

import struct
import zlib

import pytest
from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal
from amaranth.lib.memory import Memory

from host_bench import run_testbench, small_model
from tritium.hw.accel_config import AccelConfig
from tritium.hw.config import HwConfig
from tritium.hw.host_crc import SerialCrc, connect_requests
from tritium.hw.host_image import (TABLE_BYTES, ImageLoader, banks_by_index, section_routes,
                                   word_bytes_needed)
from tritium.hw.host_receiver import PayloadCursor
from tritium.hw.image_format import HEADER, SECTION, SECTION_TYPES
from tritium.hw.protocol import MAX_PAYLOAD, Err
from tritium.sw.compiler import compile_model
from tritium.sw.compiler.image import image_bytes

CFG = AccelConfig(core=HwConfig(pe=4, simd=16, weight_depth=16, thr_depth=8),
                  act_depth=32, res_depth=8, prog_depth=16)
STORE_CFG = AccelConfig(core=HwConfig(pe=4, simd=16, weight_depth=4, thr_depth=16),
                        act_depth=32, res_depth=8, prog_depth=32, store_depth=64)


class LoaderBench(Elaboratable):
    def __init__(self, cfg):
        self.loader = ImageLoader(cfg)
        self.buffer = Memory(shape=8, depth=MAX_PAYLOAD + TABLE_BYTES, init=[])
        self.cursor = PayloadCursor()
        self.length = Signal(range(MAX_PAYLOAD + 1))
        self.word = Signal(8 * word_bytes_needed(self.loader.routes))

    def elaborate(self, platform):
        m = Module()
        m.submodules.loader = loader = self.loader
        m.submodules.cursor = cursor = self.cursor
        m.submodules.crc = crc = SerialCrc()
        m.submodules.buffer = self.buffer
        read, write = self.buffer.read_port(), self.buffer.write_port()
        table = Const(1, 1)
        connect_requests(m, crc, loader.crc)
        m.d.comb += [loader.hold.eq(crc.hold), loader.crc_image.eq(crc.image),
                     loader.crc_section.eq(crc.section), crc.ram_byte.eq(read.data),
                     cursor.length.eq(self.length), cursor.step.eq(loader.step),
                     loader.at_end.eq(cursor.at_end), loader.byte.eq(read.data),
                     read.addr.eq(Mux(loader.table_read, Cat(loader.table_addr, table),
                                      cursor.index)),
                     write.en.eq(loader.table_write.en),
                     write.addr.eq(Cat(loader.table_write.addr, table)),
                     write.data.eq(loader.table_write.data)]
        with m.If(loader.shift):
            m.d.sync += self.word.eq(Cat(self.word[8:], read.data))
        return m


def expected_writes(cfg, image):
    """``{route name: [(bank, addr, word)]}`` of the image's written sections."""
    names = {v: k for k, v in SECTION_TYPES.items()}
    out = {}
    for i in range(HEADER.unpack_from(image)[3]):
        kind, _, offset, size, _ = SECTION.unpack_from(image, HEADER.size + i * SECTION.size)
        route = next(r for r in section_routes(cfg) if r.name == names[kind])
        if route.write is None:
            continue
        wb = route.word_bytes
        out[route.name] = [(k // route.depth, k % route.depth,
                            int.from_bytes(image[offset + k * wb:offset + (k + 1) * wb], "little"))
                           for k in range(size // wb)]
    return out


def load(cfg, image, chunk):
    """Feed ``image`` in ``chunk``-byte IMAGE payloads; returns the writes per route and
    ``(valid, failed, failure code, bytes counted)``."""
    bench = LoaderBench(cfg)
    loader, routes = bench.loader, bench.loader.routes
    writes = {r.name: [] for r in routes if r.write}
    state = {}

    def record(ctx):
        select = ctx.get(loader.section_write.select)
        for i, r in enumerate(routes):
            if select >> i & 1:
                if banks_by_index(routes):
                    k = (r.depth - 1).bit_length()
                    index = ctx.get(loader.section_write.index)
                    bank, addr = index >> k, index & ((1 << k) - 1)
                else:
                    bank = ctx.get(loader.section_write.bank)
                    addr = ctx.get(loader.section_write.addr)
                word = ctx.get(bench.word) >> (len(bench.word) - 8 * r.word_bytes)
                writes[r.name].append((bank, addr, word))
        if ctx.get(loader.failure):
            state["code"] = Err(ctx.get(loader.failure_code))

    async def testbench(ctx):
        for start in range(0, len(image), chunk):
            piece = image[start:start + chunk]
            for k, b in enumerate(piece):
                ctx.set(bench.buffer.data[4 + k], b)
            ctx.set(bench.length, 4 + len(piece))
            ctx.set(bench.cursor.load, 1)
            ctx.set(bench.cursor.load_index, 4)
            await ctx.tick()
            ctx.set(bench.cursor.load, 0)
            ctx.set(loader.new_image if start == 0 else loader.next_chunk, 1)
            record(ctx)
            await ctx.tick()
            ctx.set(loader.new_image, 0)
            ctx.set(loader.next_chunk, 0)
            while True:
                record(ctx)
                done = ctx.get(loader.done) and not ctx.get(loader.hold)
                await ctx.tick()
                if done:
                    break
        for _ in range(4):
            record(ctx)
            await ctx.tick()
        state["end"] = (ctx.get(loader.valid), ctx.get(loader.failed), state.get("code"),
                        ctx.get(loader.pos))

    run_testbench(bench, testbench)
    return writes, state["end"]


@pytest.mark.parametrize("cfg, chunk", [(CFG, 252), (CFG, 13), (STORE_CFG, 61)],
                         ids=["whole-chunks", "cut-chunks", "weight-store"])
def test_image_routes_every_section_word(cfg, chunk):
    image = image_bytes(compile_model(small_model(), cfg))
    writes, (valid, failed, code, pos) = load(cfg, image, chunk)
    want = expected_writes(cfg, image)
    assert set(want) - {"WSTORE"} == {"PROGRAM", "WEIGHTS", "THRESHOLDS"}
    assert (valid, failed, code, pos) == (1, 0, None, len(image))
    assert {k: v for k, v in writes.items() if v or k in want} == want


def _fix_crc(img):
    img = bytearray(img)
    struct.pack_into("<I", img, 28, 0)
    struct.pack_into("<I", img, 28, zlib.crc32(img))
    return bytes(img)


def _patch(img, offset, data, fix=True):
    img = bytearray(img)
    img[offset:offset + len(data)] = data
    return _fix_crc(img) if fix else bytes(img)


def test_damaged_images_fail_with_their_code():
    image = image_bytes(compile_model(small_model(), CFG))
    weights_offset = SECTION.unpack_from(image, HEADER.size + 1 * SECTION.size)[2]
    damaged = {
        "magic": (_patch(image, 0, b"TRITIUX\0"), Err.MAGIC),
        "hash": (_patch(image, 16, bytes(8)), Err.HASH),
        "whole crc": (_patch(image, 28, bytes([image[28] ^ 0x40]), fix=False), Err.IMAGE_CRC),
        "section byte": (_patch(image, weights_offset + 3, bytes([image[weights_offset + 3]
                                                                  ^ 0x40])), Err.SECTION_CRC),
        "section type": (_patch(image, HEADER.size + SECTION.size, b"\x09\x00"),
                         Err.SECTION_TABLE),
        "total size": (_patch(image, 24, struct.pack("<I", len(image) - 1)), Err.SIZE),
    }
    for name, (bad, code) in damaged.items():
        _, (valid, failed, got, pos) = load(CFG, bad, 200)
        assert (valid, failed, got) == (0, 1, code), name
        assert pos == len(bad), name        # the rest is counted, not parsed
    _, (valid, failed, got, pos) = load(CFG, image[:-50], 200)
    assert (valid, failed, got, pos) == (0, 0, None, len(image) - 50)
