"""The packed golden reference equals plain integer arithmetic (property-based)."""

import zlib

import numpy as np
import pytest
from hypothesis import given

import naive
from strategies import (ALL_WEIGHT_KINDS, conv_case, dense_case, model_case, random_thresholds,
                        random_values, random_weights)
from tritium.hw.errors import ModelError
from tritium.hw.weight_kinds import WEIGHT_KIND_NAMES
from tritium.sw.model import reference
from tritium.sw.model.ir import ActType, Conv2d, Dense, IntModel, MaxPool2d, accumulator_range


def naive_output(layer, acc):
    if layer.is_raw:
        return acc
    return naive.threshold(acc, layer.thresholds, layer.out_act.kind == "bipolar")


KERNELS = ["fused", "numpy"]


@pytest.mark.parametrize("kernel", KERNELS)
@given(dense_case())
def test_dense_matches_naive(kernel, case):
    layer, in_act, x, w = case
    with reference.using_kernel(kernel):
        got = reference.run_layer(layer, x, in_act)
    want = naive_output(layer, naive.dense(x, w))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kernel", KERNELS)
@given(conv_case())
def test_conv_matches_naive(kernel, case):
    layer, in_act, x, w = case
    pad = in_act.zero_code_value if layer.pad_value is None else layer.pad_value
    with reference.using_kernel(kernel):
        got = reference.run_layer(layer, x, in_act)
    want = naive_output(layer, naive.conv2d(x, w, layer.stride, layer.padding, pad))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kernel", KERNELS)
@given(model_case(kinds=ALL_WEIGHT_KINDS))
def test_whole_network_matches_naive(kernel, case):
    model, x = case
    want = x.astype(np.int64)
    for layer, info in zip(model.layers, model.check()):
        if isinstance(layer, MaxPool2d):
            want = naive.max_pool(want, layer.kernel, layer.stride)
            continue
        w = layer.weight_values()
        if isinstance(layer, Conv2d):
            w = w.reshape(layer.out_channels, *layer.kernel, layer.in_channels)
            pad = info.in_act.zero_code_value if layer.pad_value is None else layer.pad_value
            acc = naive.conv2d(want, w, layer.stride, layer.padding, pad)
        else:
            acc = naive.dense(want, w)
        want = naive_output(layer, acc)
    with reference.using_kernel(kernel):
        np.testing.assert_array_equal(reference.run(model, x), want)


def test_bipolar_max_pool_is_or_of_bits():
    rng = np.random.default_rng(1)
    x = 2 * rng.integers(0, 2, (3, 6, 6, 5)) - 1
    got = reference.max_pool(x, MaxPool2d("p", 2))
    bits = (x > 0).reshape(3, 3, 2, 3, 2, 5)
    np.testing.assert_array_equal(got, np.where(bits.any(axis=(2, 4)), 1, -1))


def test_worked_examples_from_numerics_doc():
    # Binary: a = [+1,-1,+1,+1], w = [+1,+1,-1,+1] -> dot = 1 - 1 - 1 + 1 = 0.
    fc = Dense.from_values("b", [[1, 1, -1, 1]], "binary")
    assert reference.run_layer(fc, np.array([[1, -1, 1, 1]]), ActType("bipolar"))[0, 0] == 0
    # Ternary: w = [+1, 0, -1, +1] -> 1 + 0 - 1 + 1 = 1.
    fc = Dense.from_values("t", [[1, 0, -1, 1]], "ternary")
    assert reference.run_layer(fc, np.array([[1, -1, 1, 1]]), ActType("bipolar"))[0, 0] == 1
    # Unsigned 8-bit pixels [200, 3, 0] with binary [+1, -1, +1] -> 197.
    fc = Dense.from_values("k", [[1, -1, 1]], "binary")
    assert reference.run_layer(fc, np.array([[200, 3, 0]]), ActType("unsigned", 8))[0, 0] == 197
    # Signed 4-bit [-8, 7, -1] with ternary [+1, -1, -1] -> -8 - 7 + 1 = -14.
    fc = Dense.from_values("s", [[1, -1, -1]], "ternary")
    assert reference.run_layer(fc, np.array([[-8, 7, -1]]), ActType("signed", 4))[0, 0] == -14
    # pow2-4: a = [+1, -1, +1, -1], w = [+4, -2, 0, +1] -> 4 + 2 + 0 - 1 = 5.
    fc = Dense.from_values("p", [[4, -2, 0, 1]], "pow2-4")
    assert [p.tolist() for p in fc.w_sign] == [[[0b1000]], [[0]], [[0b0001]]]
    assert [p.tolist() for p in fc.w_mask] == [[[0b1000]], [[0b0010]], [[0b0001]]]
    assert reference.run_layer(fc, np.array([[1, -1, 1, -1]]), ActType("bipolar"))[0, 0] == 5
    # int2 weights [+3, -1, -3] (planes s_0 = 110, s_1 = 100) on uint2 [3, 1, 2] -> 2.
    fc = Dense.from_values("i", [[3, -1, -3]], "int2")
    assert fc.w_mask is None and [p.tolist() for p in fc.w_sign] == [[[0b011]], [[0b001]]]
    assert reference.run_layer(fc, np.array([[3, 1, 2]]), ActType("unsigned", 2))[0, 0] == 2
    # Two-bit multi-threshold: thresholds [-2, 0, 3] on acc 0 -> 2.
    fc = Dense.from_values("q", [[1, -1]], "binary", thresholds=[[-2, 0, 3]], out_act="uint2")
    assert reference.run_layer(fc, np.array([[1, 1]]), ActType("bipolar"))[0, 0] == 2


def test_padding_uses_the_pad_value():
    # A 3x3 all-(+1) kernel on a 1x1 (+1) image with padding 1:
    # pad -1 gives 1 - 8 = -7, pad +1 gives 9.
    w = np.ones((1, 3, 3, 1), np.int8)
    x = np.ones((1, 1, 1, 1), np.int64)
    for pad, want in ((-1, -7), (1, 9), (None, -7)):
        conv = Conv2d.from_values("c", w, "binary", padding=1, pad_value=pad)
        assert reference.run_layer(conv, x, ActType("bipolar"))[0, 0, 0, 0] == want


def test_run_checks_inputs():
    model = IntModel((3,), ActType("bipolar"), [Dense.from_values("fc", [[1, 1, 1]], "binary")])
    with pytest.raises(ModelError, match="shape"):
        reference.run(model, np.ones((2, 4), np.int64))
    with pytest.raises(ModelError, match="outside"):
        reference.run(model, np.zeros((2, 3), np.int64))
    with pytest.raises(ModelError, match="integers"):
        reference.run(model, np.ones((2, 3), np.float32))


def test_batched_run_equals_single_run():
    rng = np.random.default_rng(3)
    w = 2 * rng.integers(0, 2, (10, 100)) - 1
    model = IntModel((100,), ActType("bipolar"), [Dense.from_values("fc", w, "binary")])
    x = 2 * rng.integers(0, 2, (37, 100)) - 1
    np.testing.assert_array_equal(reference.run(model, x, batch=8), reference.run(model, x))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("channels", [64, 128, 63])
@pytest.mark.parametrize("in_act", [ActType("bipolar"), ActType("unsigned", 3), ActType("signed", 4)])
@pytest.mark.parametrize("kind", WEIGHT_KIND_NAMES)
def test_per_pixel_and_dense_conv_layouts_agree(kernel, channels, in_act, kind):
    """conv_accumulate packs per pixel for these channel counts; im2col packs densely."""
    rng = np.random.default_rng(channels)
    w = random_weights(rng, kind, (5, 3, 3, channels))
    conv = Conv2d.from_values("c", w, kind, stride=2, padding=1, pad_value=in_act.max)
    x = rng.integers(in_act.min, in_act.max + 1, (2, 6, 5, channels))
    if in_act.kind == "bipolar":
        x = 2 * rng.integers(0, 2, x.shape) - 1
    with reference.using_kernel(kernel):
        per_pixel = reference.conv_accumulate(x, conv, in_act)
        patches, dims = reference.im2col(x, conv, in_act)
        dense = reference.accumulate(patches, in_act, conv).reshape(*dims, 5)
    np.testing.assert_array_equal(per_pixel, dense)
    np.testing.assert_array_equal(per_pixel, naive.conv2d(x, w, conv.stride, conv.padding, in_act.max))


IN_ACTS = [ActType("bipolar"), ActType("unsigned", 3), ActType("signed", 4)]
OUT_ACTS = [None, ActType("bipolar"), ActType("unsigned", 2)]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("layer_type", ["dense", "conv"])
@pytest.mark.parametrize("out_act", OUT_ACTS, ids=str)
@pytest.mark.parametrize("in_act", IN_ACTS, ids=str)
@pytest.mark.parametrize("kind", WEIGHT_KIND_NAMES)
def test_every_weight_kind_input_and_output_matches_naive(kernel, layer_type, out_act, in_act, kind):
    """Each weight kind x input type x output type, dense and padded convolution
    (fan-ins that cross word boundaries), against plain integer arithmetic."""
    rng = np.random.default_rng(zlib.crc32(f"{kind} {in_act} {out_act} {layer_type}".encode()))
    pad = in_act.max
    if layer_type == "dense":
        w = random_weights(rng, kind, (7, 130))
        x = random_values(rng, in_act, (5, 130))
        want = naive.dense(x, w)
    else:
        w = random_weights(rng, kind, (6, 3, 3, 66))
        x = random_values(rng, in_act, (2, 5, 4, 66))
        want = naive.conv2d(x, w, (2, 1), (1, 1), pad)
    lo, hi = accumulator_range(int(np.prod(w.shape[1:])), in_act, kind)
    assert lo <= want.min() and want.max() <= hi
    t = random_thresholds(rng, w.shape[0], out_act, lo, hi)
    if layer_type == "dense":
        layer = Dense.from_values("fc", w, kind, thresholds=t, out_act=out_act)
    else:
        layer = Conv2d.from_values("conv", w, kind, stride=(2, 1), padding=1, pad_value=pad,
                                   thresholds=t, out_act=out_act)
    np.testing.assert_array_equal(layer.weight_values().reshape(w.shape), w)
    with reference.using_kernel(kernel):
        got = reference.run_layer(layer, x, in_act)
    np.testing.assert_array_equal(got, naive_output(layer, want))
