"""A deliberately plain integer implementation of the numeric contract.

It shares no code with the golden reference: weights are integer arrays
(+-1 or -1/0/+1), activations integer values, and every layer is written out
with int64 multiply-accumulate loops. The property tests check that the packed
reference equals it.
"""

import numpy as np


def dense(x, weights):
    """x (N, K) values, weights (M, K) values -> int64 (N, M)."""
    x = x.reshape(x.shape[0], -1).astype(np.int64)
    out = np.zeros((x.shape[0], weights.shape[0]), np.int64)
    for k in range(x.shape[1]):
        out += x[:, k, None] * weights[None, :, k].astype(np.int64)
    return out


def conv2d(x, weights, stride, padding, pad_value):
    """x (N, H, W, C), weights (M, kh, kw, C) -> int64 (N, OH, OW, M)."""
    n, h, w, c = x.shape
    m, kh, kw, _ = weights.shape
    (sh, sw), (ph, pw) = stride, padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    padded = np.full((n, h + 2 * ph, w + 2 * pw, c), pad_value, np.int64)
    padded[:, ph:ph + h, pw:pw + w, :] = x
    out = np.zeros((n, oh, ow, m), np.int64)
    for oy in range(oh):
        for ox in range(ow):
            window = padded[:, oy * sh:oy * sh + kh, ox * sw:ox * sw + kw, :]
            for i in range(kh):
                for j in range(kw):
                    for ch in range(c):
                        out[:, oy, ox, :] += window[:, i, j, ch, None] * weights[None, :, i, j, ch]
    return out


def threshold(acc, thresholds, bipolar):
    """Multi-threshold with plain comparisons."""
    count = np.zeros(acc.shape, np.int64)
    for t in range(thresholds.shape[1]):
        count += (acc >= thresholds[:, t]).astype(np.int64)
    return 2 * count - 1 if bipolar else count


def max_pool(x, kernel, stride):
    n, h, w, c = x.shape
    (kh, kw), (sh, sw) = kernel, stride
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.empty((n, oh, ow, c), np.int64)
    for oy in range(oh):
        for ox in range(ow):
            out[:, oy, ox, :] = x[:, oy * sh:oy * sh + kh, ox * sw:ox * sw + kw, :].max(axis=(1, 2))
    return out
