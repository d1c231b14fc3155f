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
