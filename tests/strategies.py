"""Random IR layers, models and accelerator configurations for property-based tests.

Large arrays come from a numpy generator seeded by a hypothesis-drawn seed, so
hypothesis still shrinks (towards seed 0 and the smallest shapes).
"""

import numpy as np
from hypothesis import assume, reject
from hypothesis import strategies as st

from tritium.hw.accel_config import AccelConfig
from tritium.hw.config import MAX_DEPTH, HwConfig
from tritium.sw.compiler import CompileError, bandable, compile_model, layer_plans
from tritium.hw.weight_kinds import WEIGHT_KIND_NAMES, weight_kind
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
#: The one-plane weight kinds (every input kind runs them).
WEIGHT_KINDS = st.sampled_from(["binary", "ternary"])
#: Every weight kind of the IR and the golden reference.
ALL_WEIGHT_KINDS = st.sampled_from(WEIGHT_KIND_NAMES)


def random_values(rng, act, shape):
    """Random legal values of ``act``."""
    if act.kind == "bipolar":
        return (2 * rng.integers(0, 2, shape) - 1).astype(np.int64)
    return rng.integers(act.min, act.max + 1, shape).astype(np.int64)


def random_weights(rng, kind, shape):
    """Random weights of ``kind``, every level equally likely."""
    if kind == "binary":
        return (2 * rng.integers(0, 2, shape) - 1).astype(np.int8)
    if kind == "ternary":
        return rng.integers(-1, 2, shape).astype(np.int8)
    return rng.choice(np.array(weight_kind(kind).levels, np.int8), size=shape)


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
def dense_case(draw, kinds=ALL_WEIGHT_KINDS):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    in_act, kind, out_act = draw(ACT_TYPES), draw(kinds), draw(OUT_TYPES)
    k = draw(st.one_of(st.integers(1, 200), st.sampled_from([63, 64, 65, 127, 128, 129])))
    m, n = draw(st.integers(1, 20)), draw(st.integers(1, 4))
    w = random_weights(rng, kind, (m, k))
    lo, hi = accumulator_range(k, in_act, kind)
    t = random_thresholds(rng, m, out_act, lo, hi)
    layer = Dense.from_values("fc", w, kind, thresholds=t, out_act=out_act)
    x = random_values(rng, in_act, (n, k))
    return layer, in_act, x, w


@st.composite
def conv_case(draw, kinds=ALL_WEIGHT_KINDS):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    in_act, kind, out_act = draw(ACT_TYPES), draw(kinds), draw(OUT_TYPES)
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
def model_case(draw, kinds=WEIGHT_KINDS, bipolar=False):
    """A random small network: convs (with optional pooling), then dense layers, with
    weights of ``kinds`` (default: binary and ternary); ``bipolar``: bipolar inputs and
    hidden activations only."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    in_act = ActType("bipolar") if bipolar else draw(ACT_TYPES)
    hidden_act = ActType("bipolar") if bipolar else draw(
        st.sampled_from([ActType("bipolar"), ActType("unsigned", 2)]))
    h = draw(st.integers(4, 10))
    c = draw(st.integers(1, 4))
    shape, act, layers = (h, h, c), in_act, []
    for i in range(draw(st.integers(0, 2))):
        pad = draw(st.integers(0, 1))
        k = draw(st.integers(1, min(3, shape[0] + 2 * pad)))
        kind = draw(kinds)
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
        kind = draw(kinds)
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


# ---------------------------------------------------------------- accelerator configurations

@st.composite
def accel_configs(draw, model, out_bits=2, batch=1):
    """A configuration with memories just large enough for ``model`` at ``batch`` (an image
    loop of at least ``batch`` images where it needs one)."""
    pe = draw(st.sampled_from([1, 2, 3, 4, 8]))
    simd = pe * draw(st.sampled_from([1, 2, 3, 4, 8])) * (2 if pe == 1 else 1)
    kinds = {l.weight_kind for l in model.layers if hasattr(l, "weight_kind")}
    if draw(st.booleans()):
        kinds |= {"binary", "ternary"}
    kbit = [i.in_act.bits for i in model.check() if i.in_act.kind != "bipolar"]
    bits = max([2] + kbit) if kbit else 1       # K-bit inputs need a bit-serial core
    plans = layer_plans(model, simd, batch)
    pow2 = lambda n: 1 << max(1, (int(n) - 1).bit_length())   # noqa: E731
    assume(sum(p.tiles(pe) * p.words_per_row(simd) for p in plans) <= MAX_DEPTH)
    core = HwConfig(pe=pe, simd=simd, weight_kinds=tuple(sorted(kinds)),
                    act_bits=max(bits, draw(st.sampled_from([1, 2, 8]))), out_bits=out_bits,
                    weight_depth=pow2(sum(p.tiles(pe) * p.words_per_row(simd) for p in plans)),
                    thr_depth=pow2(sum(p.tiles(pe) for p in plans)), **register_options(draw))
    words = max(max(p.in_words(simd), p.out_words(simd)) for p in plans)
    entries = plans[-1].images * plans[-1].out_height * plans[-1].out_width * plans[-1].tiles(pe)
    images = max(p.images for p in plans)
    max_images = draw(st.integers(images, images + 2)) if images > 1 else 1
    return AccelConfig(core=core, act_depth=pow2(words), res_depth=pow2(entries),
                       act_reg=draw(st.booleans()), max_images=max_images)


def register_options(draw):
    """``weight_reg``, ``addr_reg``, ``chain`` (which needs both) and ``lane_reg`` of a drawn
    core."""
    weight_reg, addr_reg = draw(st.booleans()), draw(st.booleans())
    return {"weight_reg": weight_reg, "addr_reg": addr_reg,
            "chain": weight_reg and addr_reg and draw(st.booleans()),
            "lane_reg": draw(st.booleans())}


def _pow2(n):
    return 1 << max(1, (int(n) - 1).bit_length())


def _small_array(draw, model):
    """(P, S, weight kinds, K-bit input widths, plans) of a small drawn array for ``model``."""
    pe = draw(st.sampled_from([1, 2, 3, 4]))
    simd = pe * draw(st.sampled_from([1, 2, 4])) * (2 if pe == 1 else 1)
    kinds = tuple(sorted({l.weight_kind for l in model.layers if hasattr(l, "weight_kind")}))
    kbit = [i.in_act.bits for i in model.check() if i.in_act.kind != "bipolar"]
    return pe, simd, kinds, kbit, layer_plans(model, simd)


def streaming_config(data, model, out_bits=1):
    """A configuration whose weight banks are too small for ``model``: its weights stream
    from a weight store (the banks hold two chunks of at least one neuron fold).
    (A plain function of ``data``: a composite strategy would print the model in its repr.)"""
    draw = data.draw
    pe, simd, kinds, kbit, plans = _small_array(draw, model)
    wpr = max(p.words_per_row(simd) for p in plans)
    last = plans[-1].tiles(pe) * plans[-1].words_per_row(simd)
    depth = 2 * max(wpr, last) + draw(st.sampled_from([0, 2, 8]))
    words = sum(p.tiles(pe) * p.words_per_row(simd) for p in plans)
    assume(words > depth)
    core = HwConfig(pe=pe, simd=simd, weight_kinds=kinds, act_bits=max([2] + kbit) if kbit else 1,
                    out_bits=out_bits, weight_depth=depth,
                    thr_depth=_pow2(sum(p.tiles(pe) for p in plans)), **register_options(draw))
    acts = max(max(p.in_words(simd), p.out_words(simd)) for p in plans)
    entries = plans[-1].out_height * plans[-1].out_width * plans[-1].tiles(pe)
    return AccelConfig(core=core, act_depth=_pow2(acts), res_depth=_pow2(entries),
                       prog_depth=1024, store_depth=_pow2(words * pe))


def segment_config(data, model, out_bits=1):
    """A configuration without a weight store whose banks (and, at times, activation
    buffers) are too small for ``model`` at once: it runs in segments. (A plain function
    of ``data``, as :func:`streaming_config`.)"""
    draw = data.draw
    pe, simd, kinds, kbit, plans = _small_array(draw, model)
    layer_words = [p.tiles(pe) * p.words_per_row(simd) for p in plans]
    depth = max(layer_words) + draw(st.sampled_from([0, 1, 4]))
    assume(sum(layer_words) > depth)
    first = plans[0]
    acts = max([p.in_words(simd) for p in plans[1:]] + [p.out_words(simd) for p in plans])
    if bandable(first, AccelConfig(core=HwConfig(pe=pe, simd=simd))) and draw(st.booleans()):
        acts = max(acts, first.pool * first.in_row_words(simd))
    else:
        acts = max(acts, first.in_words(simd))
    core = HwConfig(pe=pe, simd=simd, weight_kinds=kinds, act_bits=max([2] + kbit) if kbit else 1,
                    out_bits=out_bits, weight_depth=depth,
                    thr_depth=max(p.tiles(pe) for p in plans), **register_options(draw))
    entries = plans[-1].out_height * plans[-1].out_width * plans[-1].tiles(pe)
    return AccelConfig(core=core, act_depth=acts, res_depth=_pow2(entries),
                       act_reg=draw(st.booleans()))


def streamed_segment_config(data, model):
    """A configuration with a weight store too small for ``model``'s streamed weights at
    once: it streams them in several weight phases, one segment each, and at times its
    program memory is so small that a phase's program runs in parts. (A plain function
    of ``data``, as :func:`streaming_config`.)"""
    draw = data.draw
    pe, simd, kinds, kbit, plans = _small_array(draw, model)
    wpr = max(p.words_per_row(simd) for p in plans)
    last = plans[-1].tiles(pe) * plans[-1].words_per_row(simd)
    depth = 2 * max(wpr, last) + draw(st.sampled_from([0, 2]))
    layer_words = [p.tiles(pe) * p.words_per_row(simd) for p in plans]
    store = pe * max(layer_words) + draw(st.sampled_from([0, pe * wpr]))
    assume(sum(layer_words) > depth and pe * sum(layer_words) > store)
    core = HwConfig(pe=pe, simd=simd, weight_kinds=kinds, act_bits=max([2] + kbit) if kbit else 1,
                    out_bits=1, weight_depth=depth, thr_depth=max(p.tiles(pe) for p in plans),
                    **register_options(draw))
    acts = max(max(p.in_words(simd), p.out_words(simd)) for p in plans)
    entries = plans[-1].out_height * plans[-1].out_width * plans[-1].tiles(pe)
    prog = draw(st.sampled_from([1024, max(16, 5 * len(plans) + 2)]))
    return AccelConfig(core=core, act_depth=_pow2(acts), res_depth=_pow2(entries),
                       prog_depth=prog, store_depth=store)


def one_bit_hidden(model):
    return all(i.out_act is None or i.out_act.bits == 1 for i in model.check())


def compile_drawn(model, cfg, **options):
    """``compile_model`` of a drawn model, rejecting the example where a layer's k-bit
    outputs have more bit planes than its accumulation has beats (the accelerator writes
    a word's planes one a cycle; the compiler refuses such a layer)."""
    try:
        return compile_model(model, cfg, **options)
    except CompileError as e:
        if "beats per result" in str(e):
            reject()
        raise
