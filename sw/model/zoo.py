"""Integer models with random weights for benchmarks and tests.

Thresholds sit near the middle of each channel's accumulator distribution, so
activations are about half +1, half -1, as in a trained network.
"""

import numpy as np

from . import topologies as topo
from ...hw.weight_kinds import weight_kind as kind_info
from .ir import ActType, Conv2d, Dense, IntModel, MaxPool2d, accumulator_range


def random_model(arch, input_shape=None, input_act="bipolar", n_classes=10,
                 weight_kind="binary", seed=0):
    """A random :class:`IntModel` with the layers of topology ``arch``.

    Dense layers flatten spatial inputs; the first layer sees ``input_act``
    (e.g. ``"uint8"`` for CNV pixels), later layers bipolar activations.
    """
    rng = np.random.default_rng(seed)
    input_shape = tuple(input_shape or topo.BENCH_INPUT[arch])
    act = ActType.parse(input_act) if isinstance(input_act, str) else input_act
    in_act, shape, layers = act, input_shape, []
    bipolar = ActType("bipolar")
    specs = topo.topology(arch)
    for i, spec in enumerate(specs):
        last = i == len(specs) - 1
        if isinstance(spec, topo.Pool):
            pool = MaxPool2d(f"pool{i}", spec.kernel)
            layers.append(pool)
            shape = pool.output_hw(shape[0], shape[1]) + (shape[2],)
            continue
        out = n_classes if isinstance(spec, topo.Dense) and spec.out_features == topo.CLASSES \
            else getattr(spec, "out_features", None) or spec.out_channels
        if isinstance(spec, topo.Conv):
            fan_in = spec.kernel * spec.kernel * shape[2]
            w = _weights(rng, weight_kind, (out, spec.kernel, spec.kernel, shape[2]))
        else:
            fan_in = int(np.prod(shape))
            w = _weights(rng, weight_kind, (out, fan_in))
        t = None if last else _thresholds(rng, out, fan_in, act, weight_kind)
        kw = dict(thresholds=t, out_act=None if last else bipolar)
        if isinstance(spec, topo.Conv):
            layer = Conv2d.from_values(f"conv{i}", w, weight_kind, stride=spec.stride,
                                       padding=spec.padding, **kw)
            shape = layer.output_hw(shape[0], shape[1]) + (out,)
        else:
            layer = Dense.from_values(f"fc{i}", w, weight_kind, **kw)
            shape = (out,)
        layers.append(layer)
        act = bipolar
    return IntModel(input_shape, in_act, layers, meta={"arch": arch, "random_seed": seed})


#: Input shape and type of the FINN reference networks (FINN / BNN-PYNQ).
NETWORK_INPUTS = {
    "tfc": ((784,), "bipolar"), "sfc": ((784,), "bipolar"), "lfc": ((784,), "bipolar"),
    "cnv": ((32, 32, 3), "uint8"),
}


def reference_network(arch, seed=1):
    """A random-weight integer model of a reference topology (for shape-driven figures)."""
    shape, act = NETWORK_INPUTS[arch]
    return random_model(arch, shape, act, seed=seed)


def random_inputs(model, n, seed=0):
    """``n`` random legal input values for ``model``."""
    rng = np.random.default_rng(seed)
    act, shape = model.input_act, (n,) + tuple(model.input_shape)
    if act.kind == "bipolar":
        return (2 * rng.integers(0, 2, shape) - 1).astype(np.int8)
    return rng.integers(act.min, act.max + 1, shape).astype(np.int16)


def _weights(rng, kind, shape):
    """Random weights of ``kind``: zero-mean, every level of the kind drawn."""
    if kind == "binary":
        return (2 * rng.integers(0, 2, shape) - 1).astype(np.int8)
    if kind == "ternary":
        return rng.choice(np.array([-1, 0, 1], np.int8), size=shape, p=[0.3, 0.4, 0.3])
    return rng.choice(np.array(kind_info(kind).levels, np.int8), size=shape)


def _thresholds(rng, m, fan_in, act, kind):
    lo, hi = accumulator_range(fan_in, act, kind)
    # Accumulators of random weight products spread like sqrt(fan_in) * input
    # scale * the weights' root mean square (at least 1, so binary and ternary
    # models keep the spread of +-1 products).
    rms = max(1.0, float(np.sqrt(np.mean(np.square(kind_info(kind).levels)))))
    scale = np.sqrt(fan_in) * max(abs(act.min), abs(act.max)) * (0.6 if act.kind != "bipolar" else 1) * rms
    t = np.rint(rng.normal(0, 0.3, m) * scale).astype(np.int64)  # weights have zero mean
    return np.clip(t, lo, hi + 1)[:, None]
