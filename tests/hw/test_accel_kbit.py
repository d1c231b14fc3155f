"""k-bit hidden outputs (out_bits 2..4) on the accelerator RTL (Amaranth simulator): the output
path's pooled maxima, bit-plane packers and plane writes, bit-exact against the golden
reference, cycles equal to the ISA simulator's."""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from strategies import (accel_configs, compile_drawn, model_case, random_thresholds, random_values,
                        random_weights, streaming_config)
from tritium.hw.accel_config import AccelConfig
from tritium.hw.config import HwConfig
from tritium.sim.accel_sim import run_amaranth
from tritium.sw.compiler import CompileError, compile_model
from tritium.sw.model import reference
from tritium.sw.model.ir import ActType, Conv2d, Dense, IntModel, MaxPool2d, accumulator_range
from tritium.sw.run.isasim import simulate

CHAIN = {"weight_reg": True, "addr_reg": True, "chain": True}


def check(model, cfg, x, batch=1):
    compiled = compile_drawn(model, cfg, batch=batch)
    acc_rtl, cycles_rtl = run_amaranth(compiled, x)
    np.testing.assert_array_equal(acc_rtl, reference.run(model, x))
    assert cycles_rtl == simulate(compiled, x)[1], "RTL cycles must equal the ISA simulator's"
    return compiled


def kbit_model(seed, conv_act, fc_act, conv_kind="binary", fc_kind="binary", pool=True,
               in_act=ActType("bipolar"), channels=(3, 6, 5)):
    """A padded 3x3 convolution (``conv_kind``) with ``conv_act`` outputs, a 2x2 max-pool
    (``pool``), a dense layer (``fc_kind``) reading them with ``fc_act`` outputs and a
    binary dense layer with raw outputs: every hidden layer's outputs are read by the
    next as k-bit inputs."""
    rng = np.random.default_rng(seed)
    c_in, c_mid, c_fc = channels
    lo, hi = accumulator_range(9 * c_in, in_act, conv_kind)
    conv = Conv2d.from_values("conv", random_weights(rng, conv_kind, (c_mid, 3, 3, c_in)), conv_kind,
                              padding=1, out_act=conv_act,
                              thresholds=random_thresholds(rng, c_mid, conv_act, lo, hi))
    layers = [conv] + ([MaxPool2d("pool", 2)] if pool else [])
    side = 2 if pool else 4
    features = side * side * c_mid
    lo, hi = accumulator_range(features, conv_act, fc_kind)
    fc = Dense.from_values("fc", random_weights(rng, fc_kind, (c_fc, features)), fc_kind,
                           out_act=fc_act, thresholds=random_thresholds(rng, c_fc, fc_act, lo, hi))
    lo, hi = accumulator_range(c_fc, fc_act, "binary")
    out = Dense.from_values("out", random_weights(rng, "binary", (4, c_fc)), "binary")
    model = IntModel((4, 4, c_in), in_act, layers + [fc, out])
    return model, random_values(rng, in_act, (2, 4, 4, c_in))


def uint(bits):
    return ActType("unsigned", bits)


def small_config(out_bits, kinds=("binary", "ternary"), **core):
    """P = 2, S = 8, bit-serial (4-bit inputs), ``out_bits`` output bits."""
    return AccelConfig(core=HwConfig(pe=2, simd=8, weight_kinds=kinds, act_bits=4, out_bits=out_bits,
                                     weight_depth=256, **core), act_depth=128, res_depth=16)


@pytest.mark.parametrize("conv_act, fc_act, conv_kind, fc_kind, pool, out_bits, registers", [
    (uint(2), uint(2), "binary", "binary", True, 2, {}),
    (uint(3), uint(2), "ternary", "ternary", True, 3, {}),
    (uint(4), uint(3), "binary", "ternary", False, 4, {}),
    (uint(2), uint(4), "int2", "binary", True, 4, {"weight_reg": True, "addr_reg": True}),
    (uint(3), ActType("bipolar"), "pow2-4", "ternary", False, 3, {}),
    (uint(2), uint(3), "ternary", "binary", True, 3, CHAIN),
    (uint(4), uint(2), "binary", "ternary", False, 4, {**CHAIN, "lane_reg": True}),
])
def test_k_bit_hidden_outputs_on_the_rtl(conv_act, fc_act, conv_kind, fc_kind, pool, out_bits,
                                         registers):
    """A convolution with k-bit outputs (with and without a max-pool of unsigned values) read
    by a dense layer with k-bit outputs read by the raw last layer: bit-exact, cycles equal
    to the ISA simulator's (a RUN's later planes of its last word add out_bits - 1)."""
    model, x = kbit_model(out_bits, conv_act, fc_act, conv_kind, fc_kind, pool)
    kinds = tuple(sorted({"binary", "ternary", conv_kind}))
    check(model, small_config(out_bits, kinds, **registers), x)


@pytest.mark.parametrize("registers", [{}, CHAIN])
def test_one_bit_outputs_on_a_four_bit_core(registers):
    """Bipolar hidden outputs (runtime out_bits 1) on a core built with out_bits 4: the
    unused thresholds never fire, the pooled maximum of 0/1 is their OR."""
    model, x = kbit_model(7, ActType("bipolar"), ActType("bipolar"), "ternary", "binary", True)
    check(model, small_config(4, **registers), x)


@pytest.mark.parametrize("registers", [{}, {"weight_reg": True, "addr_reg": True}, CHAIN])
def test_k_bit_outputs_with_streamed_weights(registers):
    """A weight store: each RUN covers a range of neuron folds, starting at a P-lane slot of
    its first word in every plane; the slots below are kept, those above the last fold of a
    pixel zeroed (one write enable per slot)."""
    model, x = kbit_model(3, uint(2), uint(3), "binary", "ternary", True)
    cfg = AccelConfig(core=HwConfig(pe=2, simd=8, weight_kinds=("binary", "ternary"), act_bits=4,
                                    out_bits=3, weight_depth=20, thr_depth=16, **registers),
                      act_depth=128, res_depth=16, store_depth=128)
    compiled = check(model, cfg, x)
    assert any(c.first % (cfg.simd // cfg.pe) for p in compiled.plans for c in p.chunks)


def test_k_bit_outputs_need_a_beat_per_plane():
    """A result per beat (bipolar inputs, one channel word, a 1x1 window) leaves no cycle
    for a word's later planes: the compiler refuses the layer."""
    rng = np.random.default_rng(0)
    fc = Dense.from_values("fc", random_weights(rng, "binary", (4, 8)), "binary", out_act=uint(2),
                           thresholds=random_thresholds(rng, 4, uint(2), -8, 8))
    out = Dense.from_values("out", random_weights(rng, "binary", (3, 4)), "binary")
    model = IntModel((1, 1, 8), ActType("bipolar"), [fc, out])
    with pytest.raises(CompileError, match="layer fc: uint2 outputs .* at least 2 beats per result"):
        compile_model(model, small_config(2))


def _draw_k_bit_model(data):
    """A random network with a k-bit hidden layer and a raw last layer, fewer than 2000
    output values (a short simulation), and inputs."""
    model, x = data.draw(model_case())
    infos = model.check()
    assume(model.output_is_raw and any(i.out_act is not None and i.out_act.bits > 1 for i in infos))
    assume(sum(np.prod(i.out_shape) for i in infos) < 2000)
    return model, x


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.data())
def test_random_k_bit_models_on_the_rtl(data):
    model, x = _draw_k_bit_model(data)
    check(model, data.draw(accel_configs(model, out_bits=data.draw(st.integers(2, 4)))), x[:1])


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.data())
def test_random_streamed_k_bit_models_on_the_rtl(data):
    """Weight streaming (a weight store, LOAD_W copies beside the RUNs) with k-bit outputs."""
    model, x = _draw_k_bit_model(data)
    check(model, streaming_config(data, model, out_bits=2), x[:1])
