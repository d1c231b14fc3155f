"""The weight kinds: their levels, and weights split into planes and joined back exactly."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tritium.hw.errors import ModelError
from tritium.hw.weight_kinds import (KINDS, WEIGHT_KIND_NAMES, illegal_values, join_planes,
                                     max_magnitude, split_weights, weight_kind)

# The levels as the numeric contract writes them down (docs/numerics.md §1).
LEVELS = {
    "binary": (-1, 1),
    "ternary": (-1, 0, 1),
    "pow2-2": (-2, -1, 0, 1, 2),
    "pow2-4": (-4, -2, -1, 0, 1, 2, 4),
    "int2": (-3, -1, 1, 3),
    "int3": (-7, -5, -3, -1, 1, 3, 5, 7),
    "int4": tuple(range(-15, 16, 2)),
}
PLANES = {"binary": ((0,), False), "ternary": ((0,), True), "pow2-2": ((0, 1), True),
          "pow2-4": ((0, 1, 2), True), "int2": ((0, 1), False), "int3": ((0, 1, 2), False),
          "int4": ((0, 1, 2, 3), False)}


def test_the_table_holds_exactly_the_documented_kinds():
    assert set(WEIGHT_KIND_NAMES) == set(LEVELS)
    for name, kind in KINDS.items():
        assert kind.levels == LEVELS[name]
        assert (kind.exponents, kind.masked) == PLANES[name]
        assert max_magnitude(name) == max(LEVELS[name])


@st.composite
def weights_of_a_kind(draw):
    name = draw(st.sampled_from(WEIGHT_KIND_NAMES))
    shape = (draw(st.integers(1, 5)), draw(st.integers(1, 70)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return name, rng.choice(np.array(LEVELS[name]), size=shape)


@given(weights_of_a_kind())
def test_split_then_join_gives_the_weights_back(case):
    name, values = case
    sign, mask = split_weights(values, name)
    kind = weight_kind(name)
    assert sign.shape == (kind.n_planes,) + values.shape and sign.dtype == np.uint8
    assert (mask is not None) == kind.masked
    np.testing.assert_array_equal(join_planes(sign, mask, name), values)
    # The planes' weighted sum is the weight: W = sum_e 2^e * T_e.
    planes = 2 * sign.astype(np.int64) - 1
    if mask is not None:
        planes = planes * mask
    total = sum((1 << e) * planes[p] for p, e in enumerate(kind.exponents))
    np.testing.assert_array_equal(total, values)


@given(weights_of_a_kind())
def test_masked_planes_are_canonical_and_pow2_planes_disjoint(case):
    name, values = case
    sign, mask = split_weights(values, name)
    if mask is None:
        return
    assert not np.any(sign & ~mask & 1), "a sign bit where the mask is 0"
    assert np.all(mask.sum(axis=0) == (values != 0)), "one plane per non-zero weight"
    for p, e in enumerate(weight_kind(name).exponents):
        np.testing.assert_array_equal(mask[p], np.abs(values) == (1 << e))


@pytest.mark.parametrize("name", ["int2", "int3", "int4"])
def test_int_planes_are_the_bits_of_the_offset_code(name):
    k = weight_kind(name).n_planes
    values = np.array(LEVELS[name])
    sign, _ = split_weights(values, name)
    u = (values + (1 << k) - 1) // 2
    assert list(u) == list(range(1 << k)), "each level has its own K-bit code"
    for b in range(k):
        np.testing.assert_array_equal(sign[b], (u >> b) & 1)


def test_binary_and_ternary_planes_are_the_single_plane_bits():
    sign, mask = split_weights(np.array([[1, -1, 1]]), "binary")
    assert mask is None and sign.tolist() == [[[1, 0, 1]]]
    sign, mask = split_weights(np.array([[1, 0, -1]]), "ternary")
    assert sign.tolist() == [[[1, 0, 0]]] and mask.tolist() == [[[1, 0, 1]]]


def test_values_outside_a_kind_are_found():
    assert illegal_values([[1, 3, -2, 0]], "pow2-4").tolist() == [[False, True, False, False]]
    assert illegal_values([[0, 2, 3, -3]], "int2").tolist() == [[True, True, False, False]]


def test_an_unknown_kind_is_one_line():
    with pytest.raises(ModelError, match="unknown weight kind 'int8' .*pow2-4"):
        weight_kind("int8")
