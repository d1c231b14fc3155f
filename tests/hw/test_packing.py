"""The bit layout of docs/numerics.md, pinned down bit by bit."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from tritium.hw.packing import pack_bits, pack_planes, plane_weights, to_planes, unpack_bits, words_for


def test_element_i_is_bit_i_mod_64_of_word_i_div_64():
    bits = np.zeros(130, np.uint8)
    bits[[0, 63, 65, 129]] = 1
    words = pack_bits(bits)
    assert words.dtype == np.uint64 and words.shape == (3,)
    assert int(words[0]) == (1 << 0) | (1 << 63)
    assert int(words[1]) == 1 << 1
    assert int(words[2]) == 1 << 1


@given(st.integers(0, 2**32 - 1), st.integers(1, 300), st.integers(1, 3))
def test_pack_unpack_round_trip(seed, n, rows):
    bits = np.random.default_rng(seed).integers(0, 2, (rows, n)).astype(np.uint8)
    words = pack_bits(bits)
    assert words.shape == (rows, words_for(n))
    np.testing.assert_array_equal(unpack_bits(words, n), bits)
    tail = n % 64
    if tail:
        assert not np.any(words[:, -1] >> np.uint64(tail)), "bits past the end must be 0"


def test_signed_planes_match_the_worked_example():
    # docs/numerics.md: int4 values [-8, 7, -1] -> planes x0 = x1 = x2 = 011, x3 = 101.
    planes = to_planes(np.array([-8, 7, -1]), 4, signed=True)
    np.testing.assert_array_equal(planes, [[0, 1, 1], [0, 1, 1], [0, 1, 1], [1, 0, 1]])
    assert plane_weights(4, signed=True) == [1, 2, 4, -8]
    assert plane_weights(3, signed=False) == [1, 2, 4]


@given(st.integers(0, 2**32 - 1), st.integers(1, 8), st.booleans())
def test_planes_recombine_to_values(seed, bits, signed):
    rng = np.random.default_rng(seed)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed and bits > 1 else (0, (1 << bits) - 1)
    signed = signed and bits > 1
    values = rng.integers(lo, hi + 1, (4, 70))
    planes = pack_planes(values, bits, signed)
    recombined = sum(c * unpack_bits(p, 70).astype(np.int64)
                     for c, p in zip(plane_weights(bits, signed), planes))
    np.testing.assert_array_equal(recombined, values)
