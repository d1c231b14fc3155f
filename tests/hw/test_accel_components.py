"""The accelerator's components (hw/accel_blocks.py), each against a Python model of what it
must produce: the address generator against the loop nest of docs/accelerator.md, the
output path against max-pooling and bit packing, the controller against the cycle model
(:class:`tritium.hw.accel_config.Timeline`)."""

from itertools import product

import numpy as np
import pytest
from amaranth.hdl import Module, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from tritium.hw import isa
from tritium.hw.accel_blocks import AddressGenerator, Controller, OutputPath, buffer_granularity
from tritium.hw.accel_config import ADDRESS_STAGES, AccelConfig, Timeline
from tritium.hw.config import HwConfig
from tritium.hw.isa import Opcode


def simulate(top, bench):
    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


async def set_config(ctx, dut, values):
    """The configuration registers (``values``; others 0) and, where the component has
    them, their bounds' derived registers, as the controller holds them."""
    for name, field in dut.config.shape():
        ctx.set(dut.config[name], values.get(name, 0))
    if not hasattr(dut, "bounds"):
        return
    for name, field in dut.bounds.shape():
        bound = values.get("extra_images", 0) + 1 if name == "images" else values.get(name, 0)
        width = len(dut.bounds[name].m2)
        ctx.set(dut.bounds[name].m2, (bound - 2) % (1 << width) if width else 0)
        ctx.set(dut.bounds[name].is1, bound == 1)


# ----------------------------------------------------------------- address generator

def reference_beats(cfg, c, planes, images):
    """The beats of one RUN from the loop nest of docs/accelerator.md: per beat the padding
    test, the activation address (inside the image), the weight address, the tile, the
    plane and the end-of-accumulation and last-channel-word flags."""
    words = c["kh"] * c["kw"] * c["in_cw"]
    for i, oy, ox, tile, py, px, b, ky, kx, cw in product(
            range(images), range(c["out_h"]), range(c["out_w"]), range(c["tiles"]),
            range(c["pool"]), range(c["pool"]), reversed(range(planes)),
            range(c["kh"]), range(c["kw"]), range(c["in_cw"])):
        iy = (oy * c["pool"] + py) * c["sh"] + ky - c["ph"]
        ix = (ox * c["pool"] + px) * c["sw"] + kx - c["pw"]
        inside = 0 <= iy < c["in_h"] and 0 <= ix < c["in_w"]
        word = (((i * c["in_h"] + iy) * c["in_w"] + ix) * planes + b) * c["in_cw"] + cw
        j = (ky * c["kw"] + kx) * c["in_cw"] + cw
        yield dict(inside=int(inside), addr=(c["in_base"] + word) % cfg.act_depth if inside else None,
                   w_addr=(c["w_base"] + tile * words + j) % cfg.core.weight_depth,
                   tile=tile, plane=b, last=int(b == 0 and j == words - 1),
                   last_word=int(cw == c["in_cw"] - 1))


ADDRESS_CASES = {
    # bit-serial planes, padding, 2 x 2 pooling, two neuron folds
    "planes-pad-pool": (AccelConfig(core=HwConfig(pe=2, simd=8, act_bits=2), act_depth=128, res_depth=16),
                        dict(in_h=4, in_w=4, in_cw=2, in_planes=2, kh=3, kw=3, sh=1, sw=1, ph=1, pw=1,
                             out_h=2, out_w=2, pool=2, tiles=2, in_base=5, w_base=3)),
    # two images a RUN, stride 2, a 1 x 2 kernel, no padding
    "images-stride": (AccelConfig(core=HwConfig(pe=2, simd=8), act_depth=64, res_depth=16, max_images=2),
                      dict(in_h=3, in_w=5, in_cw=1, in_planes=1, in_bipolar=1, kh=1, kw=2, sh=2, sw=2,
                           ph=0, pw=0, out_h=2, out_w=2, pool=1, tiles=3, extra_images=1, in_base=60, w_base=250)),
}


@pytest.mark.parametrize("case", ADDRESS_CASES)
def test_address_generator_runs_the_loop_nest(case):
    cfg, c = ADDRESS_CASES[case]
    planes, images = c["in_planes"], c.get("extra_images", 0) + 1
    expected = list(reference_beats(cfg, c, planes, images))
    dut = AddressGenerator(cfg)
    got, valid_cycles = [], []

    async def bench(ctx):
        await set_config(ctx, dut, c)
        await ctx.tick().repeat(2)             # the derived registers settle
        ctx.set(dut.run_start, 1)
        await ctx.tick()
        ctx.set(dut.run_start, 0)
        for cycle in range(1, len(expected) + 20):
            if ctx.get(dut.beats.valid):
                p = ctx.get(dut.beats.payload)
                valid_cycles.append(cycle)
                got.append(dict(inside=p.inside, addr=p.addr if p.inside else None,
                                w_addr=p.beat.w_addr, tile=p.beat.tile,
                                plane=p.plane if cfg.core.bit_serial else 0,
                                last=p.beat.last, last_word=p.beat.last_word))
            await ctx.tick()

    simulate(dut, bench)
    assert got == expected
    # One beat a cycle, the first one the address stages (bar the buffer read) after the issue.
    assert valid_cycles == list(range(ADDRESS_STAGES - 1, ADDRESS_STAGES - 1 + len(expected)))


# ----------------------------------------------------------------- output path

def reference_words(acts, c, cfg):
    """Activation-buffer words of a RUN: ``acts[n, tile, window]`` (P bits each) max-pooled
    (OR of bipolar bits) and packed at lanes tile*P (mod S) of pixel n's words."""
    pe, s = cfg.core.pe, cfg.core.simd
    pooled = np.bitwise_or.reduce(acts, axis=2)         # (pixels, tiles)
    words = {}
    for n in range(pooled.shape[0]):
        for tile in range(c["tiles"]):
            addr = (c["out_base"] + n * c["out_cw"] + tile * pe // s) % cfg.act_depth
            words[addr] = words.get(addr, 0) | int(pooled[n, tile]) << (tile * pe % s)
    return words


OUTPUT_CFGS = {
    "packer": AccelConfig(core=HwConfig(pe=2, simd=8), act_depth=64, res_depth=32),
    "slots": AccelConfig(core=HwConfig(pe=2, simd=8), act_depth=64, res_depth=32, store_depth=64),
}


@pytest.mark.parametrize("name", OUTPUT_CFGS)
@pytest.mark.parametrize("raw", [False, True])
def test_output_path_pools_packs_and_writes(name, raw):
    cfg = OUTPUT_CFGS[name]
    pe, s = cfg.core.pe, cfg.core.simd
    pool = 1 if raw else 2
    c = dict(out_h=2, out_w=3, tiles=5, pool=pool, out_cw=-(-5 * pe // s), out_base=3, out_buf=1,
             out_bits=0 if raw else 1)
    rng = np.random.default_rng(7)
    pixels, window = c["out_h"] * c["out_w"], pool * pool
    acts = rng.integers(0, 1 << pe, size=(pixels, c["tiles"], window))
    accs = rng.integers(-100, 100, size=(pixels, c["tiles"], window, pe))
    dut = OutputPath(cfg, data.ArrayLayout(signed(cfg.core.acc_bits), pe))
    mem = [{}, {}]
    res_writes = []
    done_at = []

    async def bench(ctx):
        await set_config(ctx, dut, c)
        await ctx.tick().repeat(2)
        ctx.set(dut.running, 1)
        beats = [(n, t, w) for n in range(pixels) for t in range(c["tiles"]) for w in range(window)]
        cycle = 0
        while beats or cycle < 8 or not done_at:
            idle = beats and rng.random() < 0.25               # gaps between results
            if beats and not idle:
                n, t, w = beats.pop(0)
                ctx.set(dut.results.valid, 1)
                ctx.set(dut.results.payload.act, [(int(acts[n, t, w]) >> p) & 1 for p in range(pe)])
                ctx.set(dut.results.payload.acc, [int(v) for v in accs[n, t, w]])
            else:
                ctx.set(dut.results.valid, 0)
            for k, port in enumerate((dut.buf0, dut.buf1)):
                en = ctx.get(port.en)
                if en:
                    lanes = s // len(port.en)
                    mask = sum(((1 << lanes) - 1) << (lanes * g) for g in range(len(port.en)) if en >> g & 1)
                    addr = ctx.get(port.addr)
                    mem[k][addr] = (mem[k].get(addr, 0) & ~mask) | (ctx.get(port.data) & mask)
            if raw and ctx.get(dut.res.en):
                data_ = ctx.get(dut.res.data)
                res_writes.append((ctx.get(dut.res.addr), [data_[p] for p in range(pe)]))
            if ctx.get(dut.result_done):
                done_at.append(cycle)
            await ctx.tick()
            cycle += 1
            assert cycle < 400

    simulate(dut, bench)
    assert mem[0] == {}
    if raw:
        assert mem[1] == {}
        assert res_writes == [((c["out_base"] + n * c["tiles"] + t) % cfg.res_depth, [int(v) for v in accs[n, t, 0]])
                              for n in range(pixels) for t in range(c["tiles"])]
    else:
        assert mem[1] == reference_words(acts, c, cfg)
    assert buffer_granularity(cfg) == (pe if name == "slots" else None)


# ----------------------------------------------------------------- controller

def test_controller_issues_as_the_cycle_model_counts():
    cfg = AccelConfig(core=HwConfig(pe=2, simd=8), act_depth=64, prog_depth=16, res_depth=16,
                      store_depth=64)
    beats = [5, 3]
    program = [
        (Opcode.CFG_IN, dict(in_h=3, in_w=4, in_cw=2, in_base=7)),
        (Opcode.CFG_WIN, dict(kh=3, kw=1, sh=1, sw=2)),
        (Opcode.CFG_OUT, dict(out_h=2, out_w=2, pool=1, out_bits=1, out_cw=1)),
        (Opcode.CFG_MEM, dict(tiles=2, w_base=9)),
        (Opcode.LOAD_W, dict(src=4, count=3, addr=1)),
        (Opcode.RUN, dict(wait_w=1)),
        (Opcode.SYNC, {}),
        (Opcode.RUN, dict(wait_w=0)),
        (Opcode.END, {}),
    ]
    # The cycle model: the issue cycle of each RUN and LOAD_W, counted from the start pulse.
    tl, expected = Timeline(cfg), []
    runs = iter(beats)
    for op, args in program:
        if op == Opcode.RUN:
            n = next(runs)
            tl.run(n, args["wait_w"])
            expected.append(("run", tl.cycles - n - cfg.run_drain(), n))
        elif op == Opcode.LOAD_W:
            tl.load(args["count"])
            expected.append(("load", tl.cycles - 1, args["count"]))
        elif op == Opcode.END:
            tl.end()
        else:
            tl.step()
    m = Module()
    m.submodules.ctrl = dut = Controller(cfg)
    m.submodules.prog = prog = Memory(shape=isa.INSTR_BITS, depth=cfg.prog_depth,
                                      init=[isa.encode(op, **({f.name: f.minimum for f in isa.INSTRUCTIONS[op].fields} | args))
                                            for op, args in program])
    wiring.connect(m, dut.prog, prog.read_port())
    issued, done = [], []

    async def bench(ctx):
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        run_left = load_left = 0
        runs = iter(beats)
        for cycle in range(1, 200):
            # The RUN's own cycles (its beats and drain, the issue cycle included) and the
            # copy engine's busy cycles, as the address generator and copy engine take them.
            ctx.set(dut.run_done, run_left == 1)
            ctx.set(dut.load_busy, load_left > 0)
            if ctx.get(dut.run_start):
                n = next(runs)
                issued.append(("run", cycle, n))
                run_left = n + cfg.run_drain()
            if ctx.get(dut.load_start):
                count = ctx.get(dut.load_args.count)
                issued.append(("load", cycle, count))
                load_left = cfg.load_cycles(count)
            if ctx.get(dut.done):
                done.append((cycle, ctx.get(dut.cycles), ctx.get(dut.error)))
                break
            await ctx.tick()
            run_left, load_left = max(run_left - 1, 0), max(load_left - 1, 0)
        assert ctx.get(dut.config.in_cw) == 2 and ctx.get(dut.config.kh) == 3
        assert ctx.get(dut.config.tiles) == 2 and ctx.get(dut.config.w_base) == 9

    simulate(m, bench)
    assert issued == expected
    assert done and done[0][1:] == (tl.cycles, 0)
