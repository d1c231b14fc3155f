"""Amaranth-simulator unit tests of the hardware blocks (fast)."""

import random

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from tritium.hw.config import OP_AND_M, OP_AND_S, OP_MXNOR, OP_XNOR, HwConfig, tree_levels
from tritium.hw.pe import LaneOps, ShiftAccumulator, lane_function
from tritium.hw.popcount import Popcount
from tritium.sim.amaranth_sim import run_case
from tritium.sim.vectors import make_case


def simulate(dut, bench):
    # A toggling register gives combinational blocks a clock domain to tick.
    m = Module()
    m.submodules.dut = dut
    toggle = Signal()
    m.d.sync += toggle.eq(~toggle)
    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("in_reg", [False, True])
@pytest.mark.parametrize("style", ["tree", "chain"])
@pytest.mark.parametrize("width", [2, 3, 5, 8, 12, 31, 64])
def test_popcount_counts_and_latency(width, style, in_reg):
    stages = tree_levels(width, style == "tree") if width > 2 else 1
    for st in sorted({0, stages // 2, stages}):
        dut = Popcount(width, st, style, in_reg=in_reg)
        latency = st + in_reg
        rng = random.Random(width * 10 + st)
        vectors = [0, (1 << width) - 1] + [rng.getrandbits(width) for _ in range(40)]

        async def bench(ctx, dut=dut, vectors=vectors, latency=latency):
            ctx.set(dut.en, 1)
            seen = []
            for k in range(len(vectors) + latency):
                ctx.set(dut.i, vectors[k] if k < len(vectors) else 0)
                seen.append(ctx.get(dut.o))  # combinational output before the edge
                await ctx.tick()
            got = seen[latency:latency + len(vectors)]
            assert got == [bin(v).count("1") for v in vectors]

        simulate(dut, bench)


def test_popcount_holds_while_disabled():
    dut = Popcount(16, 2)

    async def bench(ctx):
        ctx.set(dut.en, 1)
        ctx.set(dut.i, 0xFFFF)
        await ctx.tick()
        ctx.set(dut.i, 0x0001)
        ctx.set(dut.en, 0)
        for _ in range(5):
            await ctx.tick()
        ctx.set(dut.en, 1)
        await ctx.tick()
        assert ctx.get(dut.o) == 16
        await ctx.tick()
        assert ctx.get(dut.o) == 1

    simulate(dut, bench)


def test_popcount_rejects_bad_parameters():
    from tritium.hw.errors import TritiumError
    with pytest.raises(TritiumError):
        Popcount(1)
    with pytest.raises(TritiumError):
        Popcount(8, stages=9)
    with pytest.raises(TritiumError):
        Popcount(8, style="wallace")


@pytest.mark.parametrize("ops", [(OP_XNOR,), (OP_MXNOR,), (OP_XNOR, OP_AND_S),
                                 (OP_MXNOR, OP_AND_S, OP_AND_M)])
def test_lane_ops(ops):
    simd = 12
    dut = LaneOps(simd, ops)
    rng = random.Random(7)
    full = (1 << simd) - 1

    async def bench(ctx):
        for _ in range(50):
            x, s, m = (rng.getrandbits(simd) for _ in range(3))
            s &= m
            for op in ops:
                ctx.set(dut.x, x)
                ctx.set(dut.s, s)
                ctx.set(dut.m, m)
                ctx.set(dut.op, op)
                await ctx.delay(1e-9)
                assert ctx.get(dut.o) == lane_function(op, x, s, m) & full

    simulate(dut, bench)


@pytest.mark.parametrize("simd, groups", [(64, 4), (20, 3)])
def test_lane_ops_with_an_op_copy_per_lane_group(simd, groups):
    """With op_groups, each group of lanes follows its own copy of the op (the chain's
    slices drive them from one register each): a different op per group gives each
    group's lanes that op's function."""
    ops = (OP_MXNOR, OP_AND_S, OP_AND_M)
    dut = LaneOps(simd, ops, groups)
    rng = random.Random(9)
    bounds = [g * simd // groups for g in range(groups + 1)]

    async def bench(ctx):
        for _ in range(40):
            x, s, m = (rng.getrandbits(simd) for _ in range(3))
            s &= m
            codes = [rng.choice(ops) for _ in range(groups)]
            ctx.set(dut.x, x)
            ctx.set(dut.s, s)
            ctx.set(dut.m, m)
            ctx.set(dut.op, sum(c << (2 * g) for g, c in enumerate(codes)))
            await ctx.delay(1e-9)
            out = ctx.get(dut.o)
            for g, code in enumerate(codes):
                lo, hi = bounds[g], bounds[g + 1]
                mask = ((1 << hi) - 1) ^ ((1 << lo) - 1)
                assert out & mask == lane_function(code, x, s, m) & mask

    simulate(dut, bench)


@pytest.mark.parametrize("acc_bits", [16, 8])
def test_shift_accumulator_horner_negate_double(acc_bits):
    """Every step against the integer model; with 8 bits the sums wrap (two's complement),
    which checks the subtraction's carry-in across the whole register."""
    dut = ShiftAccumulator(6, acc_bits)
    wrap = 1 << acc_bits
    rng = random.Random(3)

    async def bench(ctx):
        ctx.set(dut.en, 1)
        for _ in range(30):
            model = 0
            steps = [(rng.randrange(64), rng.randrange(2), rng.randrange(2), rng.randrange(2))
                     for _ in range(rng.randrange(1, 6))]
            for k, (v, shl, neg, dbl) in enumerate(steps):
                model = (2 * model if shl else model) + (-1) ** neg * (v << dbl)
                model = (model + wrap // 2) % wrap - wrap // 2
                ctx.set(dut.value, v)
                ctx.set(dut.shl, shl)
                ctx.set(dut.neg, neg)
                ctx.set(dut.dbl, dbl)
                ctx.set(dut.clear, k == len(steps) - 1)
                await ctx.delay(1e-9)
                assert ctx.get(dut.acc_next) == model
                await ctx.tick()
            assert ctx.get(dut.acc) == 0  # cleared after the last step

    simulate(dut, bench)


def test_shift_accumulator_narrow_unsigned_sum():
    """Without Horner, negation and doubling the register is the unsigned sum of
    ``max_total.bit_length()`` bits; the outputs are that sum doubled."""
    dut = ShiftAccumulator(3, 8, horner=False, negate=False, double=False, double_default=1,
                           max_total=35)
    assert dut.narrow
    rng = random.Random(4)

    async def bench(ctx):
        ctx.set(dut.en, 1)
        for _ in range(20):
            steps = [rng.randrange(8) for _ in range(5)]
            total = 0
            for k, v in enumerate(steps):
                total += v
                ctx.set(dut.value, v)
                ctx.set(dut.clear, k == len(steps) - 1)
                await ctx.delay(1e-9)
                assert ctx.get(dut.acc_next) == 2 * total
                await ctx.tick()
            assert ctx.get(dut.acc) == 0

    simulate(dut, bench)
    with pytest.raises(ValueError, match="does not fit"):
        ShiftAccumulator(3, 7, horner=False, negate=False, double=False, double_default=1,
                         max_total=35)


SMALL = HwConfig(pe=3, simd=12, weight_kinds=("binary", "ternary"), act_bits=8, out_bits=2,
                 weight_depth=16, thr_depth=4)


@pytest.mark.parametrize("mode", ["binary", "ternary", "uint8-binary", "int8-binary",
                                  "uint8-ternary", "int8-ternary"])
def test_core_matches_reference_amaranth_sim(mode):
    case = make_case(SMALL, mode, n_vectors=10, seed=11)
    sb = run_case(case, seed=5)
    assert sb.done and not sb.mismatches, sb.mismatches[:5]
    assert sb.checked >= 10


@pytest.mark.parametrize("mode, kinds, act_bits", [
    ("pow2-4", ("ternary", "pow2-4"), 1), ("int2", ("int2",), 1), ("pow2-2", ("pow2-2",), 1),
    ("int4", ("binary", "ternary", "int4"), 8), ("int3", ("int3",), 4),
    ("uint4-pow2-2", ("pow2-2",), 4), ("int8-pow2-4", ("ternary", "pow2-4"), 8),
    ("uint3-int2", ("int2",), 8), ("int4-int3", ("binary", "int3"), 4), ("uint8-int4", ("int4",), 8)])
def test_core_runs_weight_planes(mode, kinds, act_bits):
    """The stand-alone PE array with multi-plane weights: the contract's bank images and
    commands (one beat per plane and input word, Horner between planes; k-bit inputs: the
    (weight plane, bit plane) terms by diagonals, Horner between diagonals) give the
    reference; a core with bipolar inputs only has the Horner shift for its weight planes."""
    cfg = HwConfig(pe=3, simd=12, weight_kinds=kinds, act_bits=act_bits, out_bits=2,
                   weight_depth=32, thr_depth=4)
    sb = run_case(make_case(cfg, mode, n_vectors=10, seed=len(kinds)), seed=5)
    assert sb.done and not sb.mismatches, sb.mismatches[:5]
    assert sb.checked >= 10


@pytest.mark.parametrize("pipeline, weight_reg, addr_reg",
                         [(0, False, False), (3, False, False), (1, True, False), (0, False, True),
                          (2, True, True)])
def test_binary_only_core_pipelines(pipeline, weight_reg, addr_reg):
    cfg = HwConfig(pe=2, simd=16, weight_depth=8, thr_depth=2, pipeline=pipeline,
                   weight_reg=weight_reg, addr_reg=addr_reg)
    sb = run_case(make_case(cfg, "binary", n_vectors=12, seed=pipeline), seed=1)
    assert sb.done and not sb.mismatches, sb.mismatches[:5]


def test_scoreboard_catches_a_wrong_result():
    case = make_case(SMALL, "int8-binary", n_vectors=3, seed=2)
    case.expected[1]["ref_acc"][0] += 1
    sb = run_case(case)
    assert len(sb.mismatches) == 1


def test_contract_offsets_reconstruct_reference():
    """D - K from the contract equals the reference for a ternary layer (pure software)."""
    from tritium.hw.contract import row_offsets
    from tritium.sim.vectors import random_layer
    from tritium.sw.model.ir import ActType
    rng = np.random.default_rng(0)
    layer = random_layer(SMALL, "ternary", ActType("bipolar"), rng, fan_in=30, out_channels=3)
    assert list(row_offsets(layer, ActType("bipolar"), SMALL)) == \
        list(np.bitwise_count(layer.w_mask[0]).sum(axis=1))


@pytest.mark.parametrize("kind", ["pow2-2", "pow2-4", "int2", "int3", "int4"])
def test_the_contract_refuses_weight_kinds_the_core_lacks(kind):
    from tritium.hw.contract import bank_images, check_layer
    from tritium.hw.errors import TritiumError
    from tritium.sw.model.ir import ActType, Dense
    layer = Dense.from_values("fc0", np.ones((2, 5), np.int8), kind)
    with pytest.raises(TritiumError) as err:
        check_layer(layer, ActType("bipolar"), NARROW_BINARY)
    assert str(err.value) == f"layer fc0: {kind} weights need a core built with them (this one: binary)"
    with pytest.raises(TritiumError, match=f"layer fc0: {kind} weights need a core built with them"):
        bank_images(layer, SMALL)


@pytest.mark.parametrize("addr_reg", [False, True])
def test_threshold_unit_against_reference_multi_threshold(addr_reg):
    """The threshold unit alone: random results D and thresholds, random stalls,
    compared with sw.reference.multi_threshold (unsigned 2-bit outputs). With addr_reg
    every threshold memory reads its own address copy (random here, one per PE)."""
    from tritium.hw.layouts import pack, result_layout, thresholds_layout
    from tritium.hw.threshold import ThresholdUnit
    from tritium.sim.amaranth_sim import receive, send, write_port
    from tritium.sim.vectors import decode_output
    from tritium.sw.model.ir import ActType
    from tritium.sw.model.reference import multi_threshold

    cfg = HwConfig(pe=3, simd=12, out_bits=2, weight_depth=4, thr_depth=4, addr_reg=addr_reg)
    copies = cfg.pe if addr_reg else 1
    dut = ThresholdUnit(cfg)
    rng = np.random.default_rng(4)
    thr = np.sort(rng.integers(-40, 40, size=(cfg.thr_depth, cfg.pe, 3)), axis=2)
    writes = [(p, t, pack(thresholds_layout(cfg), [int(v) for v in thr[t, p]]))
              for t in range(cfg.thr_depth) for p in range(cfg.pe)]
    d = rng.integers(-50, 50, size=(60, cfg.pe))
    t_addr = rng.integers(0, cfg.thr_depth, size=(60, copies))
    beats = [pack(result_layout(cfg), {"d": [int(v) for v in d[k]], "t_addr": [int(t) for t in t_addr[k]]})
             for k in range(60)]
    got = []
    stall = random.Random(9)

    async def bench(ctx):
        await write_port(ctx, dut.tload, writes)
        await send(ctx, dut.i, beats, stall, 0.3)

    async def monitor(ctx):
        await receive(ctx, dut.o, len(beats), stall, 0.3, got.append, 2000)

    m = Module()
    m.submodules.dut = dut
    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_testbench(monitor)
    sim.run()
    assert len(got) == len(beats)
    for k, raw in enumerate(got):
        acc, act = decode_output(cfg, raw)
        assert acc == list(d[k])
        thr_k = np.stack([thr[t_addr[k, p % copies], p] for p in range(cfg.pe)])
        want = multi_threshold(d[k][None, :], thr_k, ActType("unsigned", 2))[0]
        assert act == list(want)


NARROW_BINARY = HwConfig(pe=2, simd=8, weight_depth=8, thr_depth=2, max_fan_in=20)
NARROW_SERIAL = HwConfig(pe=2, simd=8, weight_kinds=("binary", "ternary"), act_bits=8,
                         out_bits=2, weight_depth=8, thr_depth=2, max_fan_in=16)


@pytest.mark.parametrize("cfg, mode, lo, hi", [
    (NARROW_BINARY, "binary", -1, 1),
    (NARROW_SERIAL, "binary", -1, 1),
    (NARROW_SERIAL, "ternary", -1, 1),
    (NARROW_SERIAL, "uint8-binary", 0, 255),
    (NARROW_SERIAL, "int8-binary", -128, 127),
    (NARROW_SERIAL, "uint8-ternary", 0, 255),
    (NARROW_SERIAL, "int8-ternary", -128, 127),
])
def test_accumulator_holds_the_extremes_of_max_fan_in(cfg, mode, lo, hi):
    """The narrowest accumulator (``min_acc_bits`` of ``max_fan_in``) at the largest
    results: all weights +1 / -1 against inputs all at the ends of their range."""
    f = cfg.max_fan_in
    weights = np.array([[1] * f, [-1] * f, [1, -1] * (f // 2)])
    inputs = np.array([[hi] * f, [lo] * f, [hi, lo] * (f // 2), [lo, hi] * (f // 2)])
    case = make_case(cfg, mode, n_vectors=len(inputs), seed=3, weights=weights, inputs=inputs)
    sb = run_case(case, seed=2)
    assert sb.done and not sb.mismatches, sb.mismatches[:5]
    assert sb.checked == len(inputs) * 2 * cfg.pe - len(inputs)  # 3 rows on 2 tiles
    assert abs(max(case.expected, key=lambda e: abs(e["ref_acc"][0]))["ref_acc"][0]) >= f


def test_max_fan_in_narrows_the_accumulator_and_refuses_longer_layers():
    assert HwConfig(pe=8, simd=64, weight_depth=256).acc_bits == 17
    assert HwConfig(pe=8, simd=64, weight_depth=256, max_fan_in=4608).acc_bits == 15
    assert HwConfig(simd=64, max_fan_in=100).padded_fan_in == 128
    assert NARROW_BINARY.acc_bits == 7 and NARROW_SERIAL.acc_bits == 14
    from tritium.hw.contract import check_layer
    from tritium.hw.errors import TritiumError
    from tritium.sim.vectors import random_layer
    from tritium.sw.model.ir import ActType
    layer = random_layer(NARROW_BINARY, "binary", ActType("bipolar"), np.random.default_rng(0),
                         fan_in=21, out_channels=2)
    with pytest.raises(TritiumError, match="max_fan_in 20"):
        check_layer(layer, ActType("bipolar"), NARROW_BINARY)
