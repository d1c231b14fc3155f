"""A fused bit-serial popcount kernel, compiled with numba.

Computes exactly what :func:`tritium.sw.model.reference.popcount_matrix` specifies, in
one pass per (row, word) that the compiler vectorises over the output channels
(AVX2 / AVX-512 popcount where the CPU has it). ``numba`` compiles it on first
use and caches the machine code next to this file.

``available()`` is False when numba cannot be imported; the reference then
falls back to its pure-numpy kernel (same results, slower).
"""

import numpy as np

try:
    from numba import njit, prange
except ImportError:  # pragma: no cover - exercised only without numba
    njit = None

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)
_ONE, _TWO, _FOUR, _TOP = np.uint64(1), np.uint64(2), np.uint64(4), np.uint64(56)


def available():
    """True when numba is importable and the fused kernel can be used."""
    return njit is not None


if njit is not None:

    @njit(inline="always", cache=True)
    def _popcount64(v):
        # The classic SWAR popcount; LLVM turns it into POPCNT / VPOPCNTQ.
        v = v - ((v >> _ONE) & _M1)
        v = (v & _M2) + ((v >> _TWO) & _M2)
        v = (v + (v >> _FOUR)) & _M4
        return (v * _H01) >> _TOP

    def _fused_popcount_matrix(planes, wt, mt, use_xor, has_mask, signed, scale,
                               row_offset, col_offset, out):
        """Kernel body: out[r, m] = scale * sum_b c_b sum_j popcount(op(planes[b, r, j], wt[j, m]) [& mt[j, m]])
        + row_offset[r] + col_offset[m]; planes (B, R, W), wt / mt (W, M) uint64."""
        n_planes, n_rows, n_words = planes.shape
        m_total = wt.shape[1]
        for r in prange(n_rows):
            acc = np.zeros(m_total, np.int64)
            part = np.empty(m_total, np.int64)
            for b in range(n_planes - 1, -1, -1):
                part[:] = 0
                for j in range(n_words):
                    xv = planes[b, r, j]
                    if use_xor and has_mask:
                        for m in range(m_total):
                            part[m] += _popcount64((xv ^ wt[j, m]) & mt[j, m])
                    elif use_xor:
                        for m in range(m_total):
                            part[m] += _popcount64(xv ^ wt[j, m])
                    elif has_mask:
                        for m in range(m_total):
                            part[m] += _popcount64(xv & wt[j, m] & mt[j, m])
                    else:
                        for m in range(m_total):
                            part[m] += _popcount64(xv & wt[j, m])
                if b == n_planes - 1:
                    if signed:
                        for m in range(m_total):
                            acc[m] = -part[m]
                    else:
                        for m in range(m_total):
                            acc[m] = part[m]
                else:
                    for m in range(m_total):
                        acc[m] = 2 * acc[m] + part[m]
            for m in range(m_total):
                out[r, m] = scale * acc[m] + row_offset[r] + col_offset[m]

    # Two compiled variants: threads pay off on big products, but waking them
    # costs milliseconds, far more than a small product takes on one core.
    _parallel_kernel = njit(parallel=True, cache=True)(_fused_popcount_matrix)
    _serial_kernel = njit(cache=True)(_fused_popcount_matrix)

#: Word operations (rows x outputs x words x planes) above which threads are used.
PARALLEL_THRESHOLD = 1 << 18


def fused_popcount_matrix(planes, wt, mt, use_xor, has_mask, signed, scale, row_offset,
                          col_offset, out):
    """Run the fused kernel (see the module docstring); threaded for big products."""
    work = planes.size * wt.shape[1]
    kernel = _parallel_kernel if work >= PARALLEL_THRESHOLD else _serial_kernel
    kernel(planes, wt, mt, use_xor, has_mask, signed, scale, row_offset, col_offset, out)
