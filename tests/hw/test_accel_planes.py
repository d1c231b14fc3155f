"""Multi-plane weights (pow2-*, intK) on the accelerator RTL (Amaranth simulator): bit-exact
against the golden reference, cycles equal to the ISA simulator's."""

import numpy as np
import pytest

from strategies import random_thresholds, random_values, random_weights
from tritium.hw.accel_config import AccelConfig
from tritium.hw.config import HwConfig
from tritium.sim.accel_sim import run_amaranth
from tritium.sw.compiler import compile_model
from tritium.sw.model import reference
from tritium.sw.model.ir import ActType, Conv2d, Dense, IntModel, MaxPool2d, accumulator_range
from tritium.sw.run.isasim import simulate


def plane_model(kind, seed, conv_kind=None, in_act=ActType("bipolar")):
    """A padded 3x3 convolution (``conv_kind`` weights, default ``kind``) over ``in_act``
    inputs, a 2x2 max-pool and a dense layer with ``kind`` weights and bipolar inputs."""
    rng = np.random.default_rng(seed)
    bipolar, conv_kind = ActType("bipolar"), conv_kind or kind
    w = random_weights(rng, conv_kind, (6, 3, 3, 3))
    lo, hi = accumulator_range(27, in_act, conv_kind)
    conv = Conv2d.from_values("conv", w, conv_kind, padding=1, out_act=bipolar,
                              thresholds=random_thresholds(rng, 6, bipolar, lo, hi))
    fc = Dense.from_values("fc", random_weights(rng, kind, (5, 2 * 2 * 6)), kind)
    model = IntModel((4, 4, 3), in_act, [conv, MaxPool2d("pool", 2), fc])
    return model, random_values(rng, in_act, (2, 4, 4, 3))


@pytest.mark.parametrize("kind, kinds, registers", [
    ("pow2-4", ("pow2-4",), {}),
    ("int2", ("int2",), {}),
    ("int2", ("binary", "ternary", "int2"), {"weight_reg": True, "addr_reg": True}),
    ("pow2-4", ("ternary", "pow2-4"), {"weight_reg": True, "addr_reg": True, "chain": True}),
])
def test_weight_planes_on_the_rtl(kind, kinds, registers):
    model, x = plane_model(kind, seed=len(kinds))
    cfg = AccelConfig(core=HwConfig(pe=2, simd=8, weight_kinds=kinds, weight_depth=256,
                                    **registers), act_depth=128, res_depth=16)
    compiled = compile_model(model, cfg)
    acc_rtl, cycles_rtl = run_amaranth(compiled, x)
    np.testing.assert_array_equal(acc_rtl, reference.run(model, x))
    _, cycles_isa, layers = simulate(compiled, x)
    assert cycles_rtl == cycles_isa
    # Every input word once per weight plane: conv 16 window positions (2x2 outputs, 2x2
    # pool) x 3 neuron folds x 4 words (27-value patches unfolded by the host); dense 3
    # folds x 4 words (4 pixels of 6 channels).
    planes = 3 if kind == "pow2-4" else 2
    assert [l.beats for l in layers] == [16 * 3 * 4 * planes, 3 * 4 * planes]


@pytest.mark.parametrize("conv_kind", ["binary", "ternary"])
def test_k_bit_layers_beside_weight_planes_on_the_rtl(conv_kind):
    """A bit-serial core with a multi-plane kind: a k-bit input layer (one weight plane,
    bit planes with their Horner shifts, two beats per word for ternary) and an int3 layer
    in one program, bit-exact, cycles equal to the ISA simulator's."""
    model, x = plane_model("int3", seed=5, conv_kind=conv_kind, in_act=ActType.parse("int4"))
    cfg = AccelConfig(core=HwConfig(pe=2, simd=8, weight_kinds=("binary", "ternary", "int3"),
                                    act_bits=4, weight_depth=256), act_depth=128, res_depth=16)
    compiled = compile_model(model, cfg)
    acc_rtl, cycles_rtl = run_amaranth(compiled, x)
    np.testing.assert_array_equal(acc_rtl, reference.run(model, x))
    assert cycles_rtl == simulate(compiled, x)[1]


MULTI_PLANE = ["pow2-2", "pow2-4", "int2", "int3", "int4"]
PLANES = {"pow2-2": 2, "pow2-4": 3, "int2": 2, "int3": 3, "int4": 4}


def median_thresholds(layer, in_shape, in_act, x):
    """Per-channel thresholds of ``layer`` at the median of its accumulators on ``x`` (about
    half its outputs flip with any error in them)."""
    acc = reference.run(IntModel(in_shape, in_act, [layer]), x)
    return np.median(acc.reshape(-1, layer.out_channels), axis=0).astype(np.int64)[:, None]


def k_bit_plane_model(kind, in_act, seed):
    """A padded 3x3 convolution of ``kind`` over ``in_act`` inputs (thresholds at its
    accumulators' medians), a 2x2 max-pool and a raw dense layer of ``kind``."""
    rng = np.random.default_rng(seed)
    bipolar = ActType("bipolar")
    w, x = random_weights(rng, kind, (6, 3, 3, 3)), random_values(rng, in_act, (2, 4, 4, 3))
    t = median_thresholds(Conv2d.from_values("conv", w, kind, padding=1), (4, 4, 3), in_act, x)
    conv = Conv2d.from_values("conv", w, kind, padding=1, out_act=bipolar, thresholds=t)
    fc = Dense.from_values("fc", random_weights(rng, kind, (5, 2 * 2 * 6)), kind)
    return IntModel((4, 4, 3), in_act, [conv, MaxPool2d("pool", 2), fc]), x


def run_k_bit_planes(model, x, kinds, act_bits, **registers):
    """The model on the RTL of a bit-serial core with ``kinds``: bit-exact against the
    golden reference, cycles equal to the ISA simulator's; returns its layers' beats."""
    cfg = AccelConfig(core=HwConfig(pe=2, simd=8, weight_kinds=kinds, act_bits=act_bits,
                                    weight_depth=256, **registers), act_depth=256, res_depth=16)
    compiled = compile_model(model, cfg)
    acc_rtl, cycles_rtl = run_amaranth(compiled, x)
    np.testing.assert_array_equal(acc_rtl, reference.run(model, x))
    _, cycles_isa, layers = simulate(compiled, x)
    assert cycles_rtl == cycles_isa
    return [l.beats for l in layers]


@pytest.mark.parametrize("kind, in_type", [("pow2-2", "uint3"), ("pow2-4", "uint2"),
                                           ("int2", "int4"), ("int3", "uint4"), ("int4", "uint2")])
def test_k_bit_inputs_with_weight_planes_on_the_rtl(kind, in_type):
    """k-bit inputs x every multi-plane kind in the conv (its terms by diagonals, the Horner
    shift on each diagonal's first word), pooled, then the kind with bipolar inputs in the
    dense layer; the core's act_bits above the inputs' where they allow. Each kind with one
    input type here (the Amaranth simulator takes 5 to 40 s a case); every kind with every
    input type runs on the Verilog in tests/sim/test_low_bit_verilator.py."""
    in_act = ActType.parse(in_type)
    model, x = k_bit_plane_model(kind, in_act, seed=PLANES[kind] + 7 * in_act.bits)
    act_bits = 8 if in_act.bits < 4 else in_act.bits
    beats = run_k_bit_planes(model, x, (kind,), act_bits)
    # conv: 16 window positions x 3 folds x 4 words x weight planes x bit planes (x 2 beats
    # per word for masked planes); dense: 3 folds x 4 words x weight planes.
    per_word = 2 if kind.startswith("pow2") else 1
    assert beats == [16 * 3 * 4 * PLANES[kind] * in_act.bits * per_word, 3 * 4 * PLANES[kind]]


@pytest.mark.parametrize("kind, in_type, kinds, registers", [
    ("int4", "int3", ("binary", "int4"), {"weight_reg": True, "addr_reg": True}),
    ("pow2-4", "uint4", ("ternary", "pow2-4"), {"weight_reg": True, "addr_reg": True, "chain": True}),
    ("int2", "int4", ("ternary", "int2", "pow2-2"), {"weight_reg": True, "addr_reg": True, "chain": True}),
    ("pow2-2", "uint1", ("pow2-2",), {"addr_reg": True}),
])
def test_k_bit_planes_with_the_chain_and_registers(kind, in_type, kinds, registers):
    """The diagonal walk with the chain, weight_reg and addr_reg, on cores with more kinds
    (and more weight planes) than the layer uses; uint1: one bit plane, diagonals of one
    term."""
    in_act = ActType.parse(in_type)
    model, x = k_bit_plane_model(kind, in_act, seed=3)
    run_k_bit_planes(model, x, kinds, max(2, in_act.bits), **registers)


@pytest.mark.parametrize("kind, in_type", [("int3", "uint8"), ("pow2-4", "int2")])
def test_k_bit_dense_layers_with_weight_planes_on_the_rtl(kind, in_type):
    """A dense first layer with k-bit inputs and multi-plane weights (several channel
    words), then a second dense layer."""
    rng = np.random.default_rng(11)
    in_act, bipolar = ActType.parse(in_type), ActType("bipolar")
    w, x = random_weights(rng, kind, (5, 20)), random_values(rng, in_act, (3, 20))
    t = median_thresholds(Dense.from_values("fc0", w, kind), (20,), in_act, x)
    fc0 = Dense.from_values("fc0", w, kind, out_act=bipolar, thresholds=t)
    fc1 = Dense.from_values("fc1", random_weights(rng, kind, (3, 5)), kind)
    run_k_bit_planes(IntModel((20,), in_act, [fc0, fc1]), x, (kind,), in_act.bits)
