"""Random IR layers and models for property-based tests.

Large arrays come from a numpy generator seeded by a hypothesis-drawn seed, so
hypothesis still shrinks (towards seed 0 and the smallest shapes).
"""

import numpy as np
from hypothesis import strategies as st

from tritium.sw.model.ir import ActType, Conv2d, Dense, IntModel, MaxPool2d, accumulator_range

ACT_TYPES = st.one_of(
    st.just(ActType("bipolar")),
    st.integers(1, 8).map(lambda b: ActType("unsigned", b)),
    st.integers(2, 8).map(lambda b: ActType("signed", b)),
)
OUT_TYPES = st.one_of(
    st.none(),
    st.just(ActType("bipolar")),
    st.integers(1, 3).map(lambda b: ActType("unsigned", b)),
)
WEIGHT_KINDS = st.sampled_from(["binary", "ternary"])


def random_values(rng, act, shape):
    """Random legal values of ``act``."""
    if act.kind == "bipolar":
        return (2 * rng.integers(0, 2, shape) - 1).astype(np.int64)
    return rng.integers(act.min, act.max + 1, shape).astype(np.int64)


def random_weights(rng, kind, shape):
    if kind == "binary":
        return (2 * rng.integers(0, 2, shape) - 1).astype(np.int8)
    return rng.integers(-1, 2, shape).astype(np.int8)


def random_thresholds(rng, m, out_act, lo, hi):
    """Sorted thresholds in [lo, hi + 1], with the ends (always / never) mixed in."""
    if out_act is None:
        return None
    t = rng.integers(lo, hi + 2, (m, out_act.n_thresholds))
    ends = rng.random(t.shape)
    t[ends < 0.05] = lo
    t[ends > 0.95] = hi + 1
    # Concentrate the rest near zero so outputs vary.
    mid = rng.random(t.shape) < 0.7
    spread = max(1, (hi - lo) // 8)
    t[mid] = np.clip(rng.integers(-spread, spread + 1, int(mid.sum())), lo, hi + 1)
    return np.sort(t, axis=1)


@st.composite
def dense_case(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    in_act, kind, out_act = draw(ACT_TYPES), draw(WEIGHT_KINDS), draw(OUT_TYPES)
    k = draw(st.one_of(st.integers(1, 200), st.sampled_from([63, 64, 65, 127, 128, 129])))
    m, n = draw(st.integers(1, 20)), draw(st.integers(1, 4))
    w = random_weights(rng, kind, (m, k))
    lo, hi = accumulator_range(k, in_act, kind)
    t = random_thresholds(rng, m, out_act, lo, hi)
    layer = Dense.from_values("fc", w, kind, thresholds=t, out_act=out_act)
    x = random_values(rng, in_act, (n, k))
    return layer, in_act, x, w


@st.composite
def conv_case(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    in_act, kind, out_act = draw(ACT_TYPES), draw(WEIGHT_KINDS), draw(OUT_TYPES)
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    c = draw(st.one_of(st.integers(1, 8), st.sampled_from([63, 64, 65, 70])))
    h = draw(st.integers(max(1, kh - 2 * padding[0]), 9))
    wd = draw(st.integers(max(1, kw - 2 * padding[1]), 9))
    m, n = draw(st.integers(1, 9)), draw(st.integers(1, 2))
    pad_value = draw(st.none() | st.integers(in_act.min, in_act.max).filter(
        lambda v: in_act.kind != "bipolar" or v != 0))
    w = random_weights(rng, kind, (m, kh, kw, c))
    lo, hi = accumulator_range(kh * kw * c, in_act, kind)
    t = random_thresholds(rng, m, out_act, lo, hi)
    layer = Conv2d.from_values("conv", w, kind, stride=stride, padding=padding,
                               pad_value=pad_value, thresholds=t, out_act=out_act)
    x = random_values(rng, in_act, (n, h, wd, c))
    return layer, in_act, x, w


@st.composite
def model_case(draw):
    """A random small network: convs (with optional pooling), then dense layers."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    in_act = draw(ACT_TYPES)
    hidden_act = draw(st.sampled_from([ActType("bipolar"), ActType("unsigned", 2)]))
    h = draw(st.integers(4, 10))
    c = draw(st.integers(1, 4))
    shape, act, layers = (h, h, c), in_act, []
    for i in range(draw(st.integers(0, 2))):
        pad = draw(st.integers(0, 1))
        k = draw(st.integers(1, min(3, shape[0] + 2 * pad)))
        kind = draw(WEIGHT_KINDS)
        m = draw(st.integers(1, 70))
        w = random_weights(rng, kind, (m, k, k, shape[2]))
        lo, hi = accumulator_range(k * k * shape[2], act, kind)
        conv = Conv2d.from_values(f"conv{i}", w, kind, padding=pad,
                                  thresholds=random_thresholds(rng, m, hidden_act, lo, hi),
                                  out_act=hidden_act)
        layers.append(conv)
        shape, act = conv.output_hw(shape[0], shape[1]) + (m,), hidden_act
        if shape[0] >= 2 and draw(st.booleans()):
            pool = MaxPool2d(f"pool{i}", 2)
            layers.append(pool)
            shape = pool.output_hw(shape[0], shape[1]) + (m,)
    features = int(np.prod(shape))
    for i in range(draw(st.integers(1, 3))):
        kind = draw(WEIGHT_KINDS)
        last = i == 2 or draw(st.booleans())
        m = draw(st.integers(2, 40))
        w = random_weights(rng, kind, (m, features))
        lo, hi = accumulator_range(features, act, kind)
        out_act = None if last else hidden_act
        layers.append(Dense.from_values(f"fc{i}", w, kind, out_act=out_act,
                                        thresholds=random_thresholds(rng, m, out_act, lo, hi)))
        features, act = m, out_act
        if last:
            break
    model = IntModel((h, h, c), in_act, layers)
    x = random_values(rng, in_act, (draw(st.integers(1, 3)), h, h, c))
    return model, x
