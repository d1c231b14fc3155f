"""Bit packing: the one layout that every tritium component uses.

Words
    Packed data is held in unsigned 64-bit words (``numpy.uint64``). Element
    ``i`` of a packed vector lives in word ``i // 64`` at bit ``i % 64``; bit 0 is
    the least significant bit (LSB-first). Bits past the end of the vector are
    zero. Files store words little-endian.

Activations
    Tensors are NHWC (dense layers: N, C). The channel axis is packed into
    words: a pixel with C channels takes ``ceil(C / 64)`` words.

Bipolar bits
    Bit 1 means +1, bit 0 means -1.

k-bit integers (bit planes)
    A k-bit value is split into planes ``b = 0 .. k-1`` (plane b holds bit b of
    the value's k-bit two's-complement code). Each plane is packed like a bit
    vector. For signed values the MSB plane carries weight ``-2**(k-1)``.
"""

import numpy as np

WORD_BITS = 64


def words_for(n_bits):
    """Number of 64-bit words needed to hold ``n_bits`` bits."""
    return (int(n_bits) + WORD_BITS - 1) // WORD_BITS


def pack_bits(bits):
    """Pack a 0/1 array along its last axis into uint64 words (LSB-first).

    ``bits`` has shape (..., n); the result has shape (..., ceil(n/64)) and
    dtype uint64, with bits past ``n`` set to zero.
    """
    bits = np.asarray(bits)
    n = bits.shape[-1]
    n_words = words_for(n)
    if bits.dtype != np.bool_:
        bits = bits.astype(np.uint8, copy=False)
    packed = np.packbits(bits, axis=-1, bitorder="little")
    pad = n_words * 8 - packed.shape[-1]
    if pad:
        packed = np.concatenate(
            [packed, np.zeros(packed.shape[:-1] + (pad,), np.uint8)], axis=-1)
    packed = np.ascontiguousarray(packed)
    return packed.view("<u8").astype(np.uint64, copy=False).reshape(bits.shape[:-1] + (n_words,))


def unpack_bits(words, n_bits):
    """Inverse of :func:`pack_bits`: uint64 words (..., W) -> 0/1 uint8 (..., n_bits)."""
    words = np.ascontiguousarray(np.asarray(words, dtype=np.uint64))
    as_bytes = words.astype("<u8", copy=False).view(np.uint8)
    bits = np.unpackbits(as_bytes, axis=-1, bitorder="little")
    return bits[..., :n_bits]


def to_planes(values, bits, signed):
    """Split integers into ``bits`` bit planes of their two's-complement code.

    Returns a uint8 array of shape (bits, ...) holding 0/1. Values must already
    lie in the k-bit range (checked by the caller).
    """
    codes = np.asarray(values, dtype=np.int64) & ((1 << bits) - 1)
    return np.stack([((codes >> b) & 1).astype(np.uint8) for b in range(bits)])


def plane_weights(bits, signed):
    """Weight of each bit plane: 2**b, with the MSB negated for signed values."""
    weights = [1 << b for b in range(bits)]
    if signed:
        weights[-1] = -weights[-1]
    return weights


def pack_planes(values, bits, signed):
    """Pack k-bit integers (..., C) into planes: uint64 (bits, ..., ceil(C/64))."""
    return pack_bits(to_planes(values, bits, signed))
