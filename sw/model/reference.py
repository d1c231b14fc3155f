"""The golden reference: the bit-exact integer meaning of every IR layer.

Everything here works on packed 64-bit words (:mod:`tritium.hw.packing`) with
vectorised popcount (``numpy.bitwise_count``), exactly as docs/numerics.md
writes the arithmetic:

* bipolar x binary:   ``acc = F - 2 * popcount(a ^ w)``
  (equal to ``2 * popcount(xnor(a, w)) - F`` over the F valid lanes);
* bipolar x ternary:  ``acc = popcount(m) - 2 * popcount(m & (a ^ s))``
  (equal to ``2 * popcount(m & xnor(a, s)) - popcount(m)``);
* k-bit x binary:     ``acc = sum_b c_b * (2 * popcount(x_b & w) - popcount(x_b))``;
* k-bit x ternary:    ``acc = sum_b c_b * (2 * popcount(x_b & m & s) - popcount(x_b & m))``;

where ``c_b = 2**b`` and, for signed inputs, ``c_{k-1} = -2**(k-1)``.
Weights of several planes (``W = sum_e 2**e * T_e``, :mod:`tritium.hw.weight_kinds`)
accumulate ``acc = sum_e 2**e * acc_e``, ``acc_e`` the binary (unmasked plane)
or ternary (masked plane) formula above for plane ``e``, combined from the top
plane down by shift-and-add.
Outputs: ``sum_t [acc >= T[c, t]]`` (bipolar: ``2 * [acc >= T[c]] - 1``), or the
raw accumulators on a last layer.

Activations enter and leave as integer *values* (bipolar as -1/+1, k-bit as
their integer values), so the results compare directly with any other path.
"""

import contextlib
import os
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import popcount_kernel
from ...hw.errors import ModelError
from ...hw.packing import pack_bits, pack_planes, plane_weights, words_for
from ...hw.weight_kinds import split_weights
from .ir import Conv2d, Dense, MaxPool2d

# Elements (rows x outputs) processed per work item by the popcount kernel:
# keeps the scratch arrays inside the CPU caches.
_CHUNK_ELEMENTS = 1 << 17
_POOL = None


def _pool():
    """A small thread pool: numpy's ufuncs release the GIL, so chunks run in parallel."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)))
    return _POOL


def popcount_rows(x):
    """Popcount of each row of packed words: (..., W) uint64 -> (...) int64."""
    return np.bitwise_count(x).sum(axis=-1, dtype=np.int64)


#: Which popcount kernel :func:`popcount_matrix` uses: "fused" (numba) or "numpy".
KERNEL = "fused" if popcount_kernel.available() else "numpy"


@contextlib.contextmanager
def using_kernel(name):
    """Temporarily switch :data:`KERNEL` (``"fused"`` or ``"numpy"``); for tests and benchmarks."""
    global KERNEL
    if name not in ("fused", "numpy") or (name == "fused" and not popcount_kernel.available()):
        raise ModelError(f"popcount kernel {name!r} is not available here")
    previous, KERNEL = KERNEL, name
    try:
        yield
    finally:
        KERNEL = previous


def popcount_matrix(planes, w, op, mask=None, signed=False, scale=1, row_offset=None,
                    col_offset=None):
    """Bit-serial popcount product of packed planes with packed weight rows.

    ``out[r, m] = scale * S[r, m] + row_offset[r] + col_offset[m]`` where
    ``S[r, m] = sum_b c_b * sum_j popcount(op(planes[b, r, j], w[m, j]) [& mask[m, j]])``
    with ``c_b = 2**b`` (the MSB plane negated when ``signed``). ``planes`` is
    (B, R, W), ``w``/``mask`` (M, W), all uint64; ``op`` is ``numpy.bitwise_xor``
    or ``numpy.bitwise_and``; the offsets are optional int arrays. Returns int64
    (R, M).

    Two kernels compute it: a fused numba kernel (:mod:`.popcount_kernel`,
    the default) and the pure-numpy one below; the tests run both.
    """
    if KERNEL == "fused":
        n_rows = planes.shape[1]
        out = np.empty((n_rows, w.shape[0]), np.int64)
        wt = np.ascontiguousarray(w.T)
        mt = wt if mask is None else np.ascontiguousarray(mask.T)
        rows = np.zeros(n_rows, np.int64) if row_offset is None else np.asarray(row_offset, np.int64)
        cols = np.zeros(w.shape[0], np.int64) if col_offset is None else np.asarray(col_offset, np.int64)
        popcount_kernel.fused_popcount_matrix(
            np.ascontiguousarray(planes), wt, mt, op is np.bitwise_xor, mask is not None,
            bool(signed), int(scale), rows, cols, out)
        return out
    return _popcount_matrix_numpy(planes, w, op, mask, signed, scale, row_offset, col_offset)


def _popcount_matrix_numpy(planes, w, op, mask, signed, scale, row_offset, col_offset):
    """Pure-numpy kernel: loops over planes and words (few), vectorised over
    rows and outputs, int32 accumulators while every value fits, chunks of rows
    spread over a thread pool. Planes combine MSB first by shift-and-add, as
    the hardware's accumulator does."""
    n_planes, r_total, n_words = planes.shape
    m = w.shape[0]
    bound = abs(scale) * 64 * n_words * (1 << n_planes)
    for off in (row_offset, col_offset):
        bound += 0 if off is None or not len(off) else int(np.abs(off).max())
    wide = bound >= (1 << 31)
    out = np.zeros((r_total, m), np.int64 if wide else np.int32)
    rows = max(1, _CHUNK_ELEMENTS // max(m, 1))
    xt = np.ascontiguousarray(planes.transpose(0, 2, 1))     # (B, W, R)
    wt = np.ascontiguousarray(w.T)
    mt = None if mask is None else np.ascontiguousarray(mask.T)
    count_dtype = np.uint16 if 64 * n_words < (1 << 16) else np.int32
    single_word = n_words == 1

    def work(r0):
        r1 = min(r0 + rows, r_total)
        t = np.empty((r1 - r0, m), np.uint64)
        c = np.empty((r1 - r0, m), np.uint8)
        plane_sum = np.empty((r1 - r0, m), count_dtype)
        acc = out[r0:r1]
        for b in reversed(range(n_planes)):
            if not single_word:
                plane_sum[...] = 0
            for j in range(n_words):
                op(xt[b, j, r0:r1, None], wt[j][None, :], out=t)
                if mt is not None:
                    np.bitwise_and(t, mt[j][None, :], out=t)
                np.bitwise_count(t, out=c)
                if not single_word:
                    np.add(plane_sum, c, out=plane_sum)
            if single_word:
                plane_sum = c
            if b == n_planes - 1:
                np.copyto(acc, plane_sum)
                if signed:
                    np.negative(acc, out=acc)
            else:
                np.left_shift(acc, 1, out=acc)
                np.add(acc, plane_sum, out=acc)
        if scale != 1:
            np.multiply(acc, scale, out=acc)
        if row_offset is not None:
            np.add(acc, row_offset[r0:r1, None], out=acc, casting="unsafe")
        if col_offset is not None:
            np.add(acc, col_offset[None, :], out=acc, casting="unsafe")

    starts = range(0, r_total, rows)
    if len(starts) > 1:
        list(_pool().map(work, starts))
    elif r_total:
        work(0)
    return out.astype(np.int64, copy=False)


def activation_planes(values, act):
    """Pack activation values (..., C) into planes: uint64 (B, ..., ceil(C/64)).

    Bipolar: one plane of sign bits. k-bit: B = k planes of the two's-complement
    code (see :mod:`tritium.hw.packing`).
    """
    if act.kind == "bipolar":
        return pack_bits(np.asarray(values) > 0)[None]
    return pack_planes(values, act.bits, act.kind == "signed")


def accumulate_packed(planes, in_act, fan_in, w_sign, w_mask, exponents=(0,)):
    """Accumulators from packed input planes (B, R, W) and packed weight planes
    ``w_sign`` / ``w_mask`` (P, M, W) with exponents ``exponents`` (P, ascending).

    ``acc = sum_e 2**e * acc_e``, combined from the top weight plane down by
    shift-and-add. Bits that are zero in both operands (padding of the packed
    layout) contribute nothing. Returns int64 (R, M).
    """
    acc = None
    for p in reversed(range(len(exponents))):
        part = plane_accumulate(planes, in_act, fan_in, w_sign[p],
                                None if w_mask is None else w_mask[p])
        acc = part if acc is None else (acc << (exponents[p + 1] - exponents[p])) + part
    return acc << exponents[0]


def plane_accumulate(planes, in_act, fan_in, w_sign, w_mask):
    """Accumulators of one weight plane: packed input planes (B, R, W), packed
    sign (and mask) bits (M, W); binary without a mask, ternary with one.

    This is the one implementation of the lane arithmetic; see the module
    docstring for the formulas. Returns int64 (R, M).
    """
    if in_act.kind == "bipolar":
        if w_mask is None:
            const = np.full(w_sign.shape[0], fan_in, np.int64)
            return popcount_matrix(planes, w_sign, np.bitwise_xor, scale=-2, col_offset=const)
        return popcount_matrix(planes, w_sign, np.bitwise_xor, mask=w_mask, scale=-2,
                               col_offset=popcount_rows(w_mask))
    signed = in_act.kind == "signed"
    if w_mask is None:
        # popcount(x_b) is the same for every output: one shared counter.
        shared = sum(c * popcount_rows(p) for c, p in zip(plane_weights(in_act.bits, signed), planes))
        return popcount_matrix(planes, w_sign, np.bitwise_and, signed=signed, scale=2,
                               row_offset=-shared)
    nonzero = popcount_matrix(planes, w_mask, np.bitwise_and, signed=signed)
    return 2 * popcount_matrix(planes, w_sign, np.bitwise_and, signed=signed) - nonzero


def accumulate(x, in_act, layer):
    """Accumulators of a weight layer for flattened input values ``x`` (R, F)."""
    return accumulate_packed(activation_planes(x, in_act), in_act, layer.fan_in,
                             layer.w_sign, layer.w_mask, layer.plane_exponents)


def multi_threshold(acc, thresholds, out_act):
    """Apply per-channel thresholds (M, T) to accumulators (..., M).

    Returns ``sum_t [acc >= T[:, t]]``; for bipolar outputs the 0/1 result is
    mapped to -1/+1.
    """
    if out_act.kind == "bipolar":
        out = (acc >= thresholds[:, 0]).astype(np.int8)
        return 2 * out - 1
    count = np.zeros(acc.shape, np.int32 if out_act.bits > 7 else np.int8)
    for t in range(thresholds.shape[1]):
        count += acc >= thresholds[:, t]
    return count


def im2col(x, layer, in_act):
    """Sliding-window patches of NHWC values: (N, H, W, C) -> (N*OH*OW, kh*kw*C).

    Padded pixels take the layer's pad value. Patch elements are ordered
    (kernel row, kernel column, channel), the IR's weight order.
    """
    pad_value = in_act.zero_code_value if layer.pad_value is None else layer.pad_value
    patches, dims = _windows(x, layer, pad_value)
    return patches.reshape(patches.shape[0], -1), dims


def _windows(x, layer, pad):
    """(N, H, W, D) -> (N*OH*OW, kh, kw, D) windows, padding with ``pad`` (scalar or (D,))."""
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.padding
    if ph or pw:
        n, h, w, d = x.shape
        padded = np.empty((n, h + 2 * ph, w + 2 * pw, d), x.dtype)
        padded[...] = pad
        padded[:, ph:ph + h, pw:pw + w] = x
        x = padded
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
    windows = windows[:, ::sh, ::sw]                       # (N, OH, OW, D, kh, kw)
    n, oh, ow = windows.shape[:3]
    patches = windows.transpose(0, 1, 2, 4, 5, 3)          # (N, OH, OW, kh, kw, D)
    return patches.reshape(n * oh * ow, kh, kw, x.shape[3]), (n, oh, ow)


# Per-pixel packed weights of conv layers, built once per layer object.
_PIXEL_WEIGHTS = weakref.WeakKeyDictionary()


def _pixel_packed_weights(layer):
    """Weight planes re-packed per kernel position: (P, M, kh*kw*ceil(C/64)) sign and mask."""
    cached = _PIXEL_WEIGHTS.get(layer)
    if cached is None:
        m, (kh, kw), c = layer.out_channels, layer.kernel, layer.in_channels
        values = layer.weight_values().reshape(m, kh, kw, c)
        sign, mask = split_weights(values, layer.weight_kind)
        n_planes = sign.shape[0]
        sign = pack_bits(sign).reshape(n_planes, m, -1)
        mask = None if mask is None else pack_bits(mask).reshape(n_planes, m, -1)
        cached = _PIXEL_WEIGHTS[layer] = (sign, mask)
    return cached


def conv_accumulate(x, layer, in_act):
    """Accumulators of a convolution over NHWC values: int64 (N, OH, OW, M).

    Two equivalent layouts: when the channels fill whole words (the hardware's
    NHWC layout, channels packed per pixel) each pixel is packed once and the
    windows gather words; for a few channels (e.g. RGB pixels) the windows are
    gathered first and packed densely, which wastes no lanes.
    """
    (kh, kw), c = layer.kernel, layer.in_channels
    pad_value = in_act.zero_code_value if layer.pad_value is None else layer.pad_value
    per_pixel_words = kh * kw * words_for(c)
    if per_pixel_words * 4 <= words_for(layer.fan_in) * 5:
        planes = activation_planes(x, in_act)                       # (B, N, H, W, Cw)
        pad_planes = activation_planes(np.full((1, c), pad_value), in_act)[:, 0]
        cols = [_windows(p, layer, pad_planes[b]) for b, p in enumerate(planes)]
        (n, oh, ow) = cols[0][1]
        packed = np.stack([w.reshape(w.shape[0], -1) for w, _ in cols])
        sign, mask = _pixel_packed_weights(layer)
    else:
        patches, (n, oh, ow) = im2col(x, layer, in_act)
        packed = activation_planes(patches, in_act)
        sign, mask = layer.w_sign, layer.w_mask
    acc = accumulate_packed(packed, in_act, layer.fan_in, sign, mask, layer.plane_exponents)
    return acc.reshape(n, oh, ow, layer.out_channels)


def max_pool(x, layer):
    """Max-pool NHWC values (for bipolar -1/+1 this is the OR of the bits)."""
    (kh, kw), (sh, sw) = layer.kernel, layer.stride
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
    return windows[:, ::sh, ::sw].max(axis=(-2, -1))


def run_layer(layer, x, in_act):
    """Run one IR layer on a batch of input values; returns output values."""
    if isinstance(layer, MaxPool2d):
        return max_pool(x, layer)
    if isinstance(layer, Conv2d):
        acc = conv_accumulate(x, layer, in_act)
    elif isinstance(layer, Dense):
        acc = accumulate(x.reshape(x.shape[0], -1), in_act, layer)
    else:
        raise ModelError(f"layer {layer.name}: unknown layer type {type(layer).__name__}")
    if layer.is_raw:
        return acc.astype(np.int64, copy=False)
    return multi_threshold(acc, layer.thresholds, layer.out_act)


def check_input(model, x):
    """Check a batch of input values against the model's input type and shape."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.integer):
        raise ModelError(f"inputs must be integers ({model.input_act} values), got {x.dtype}")
    if x.shape[1:] != tuple(model.input_shape):
        raise ModelError(f"inputs must have shape (N, {', '.join(map(str, model.input_shape))}), "
                         f"got {x.shape}")
    if not np.all(model.input_act.is_valid(x)):
        raise ModelError(f"inputs hold values outside the {model.input_act} range")
    return x


def run(model, x, return_all=False, batch=None):
    """Run a whole :class:`~tritium.sw.model.ir.IntModel` on a batch of input values.

    Returns the last layer's output (raw int64 accumulators or activation
    values); with ``return_all`` a list of every layer's output. ``batch``
    splits the images into chunks of that many to bound memory.
    """
    infos = model.check()
    x = check_input(model, x)
    if batch and x.shape[0] > batch and not return_all:
        return np.concatenate([run(model, x[i:i + batch]) for i in range(0, x.shape[0], batch)])
    outputs = []
    for layer, info in zip(model.layers, infos):
        x = run_layer(layer, x, info.in_act)
        outputs.append(x)
    return outputs if return_all else x


def predict(model, x, batch=None):
    """Class predictions: argmax of the last layer's output (first maximum wins).

    When the last layer outputs raw accumulators and ``model.meta`` holds an
    ``output_affine`` map (written by the exporter), the argmax is taken over
    the logits :func:`output_logits` computes; otherwise over the raw outputs.
    """
    out = run(model, x, batch=batch)
    if model.output_is_raw and model.meta.get("output_affine") is not None:
        out = output_logits(model, out)
    return out.reshape(out.shape[0], -1).argmax(axis=1)


def output_logits(model, acc):
    """Apply ``meta["output_affine"]`` to raw last-layer accumulators (..., M).

    ``logit_c = float32(acc_c) * scale_c + offset_c``, two separately rounded
    float32 operations: bit-identical to the exporting PyTorch model's logits.
    """
    return meta_logits(model.meta, acc)


def meta_logits(meta, acc):
    """:func:`output_logits` from a model's metadata alone (a compiled model carries it)."""
    affine = meta["output_affine"]
    try:
        scale = np.asarray(affine["scale"], np.float32)
        offset = np.asarray(affine["offset"], np.float32)
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"meta output_affine is malformed ({type(e).__name__}: {e})") from None
    m = acc.shape[-1]
    if affine.get("dtype", "float32") != "float32" or scale.shape != (m,) or offset.shape != (m,):
        raise ModelError(f"meta output_affine must hold float32 scale and offset lists of "
                         f"{m} entries (one per output channel)")
    return np.asarray(acc).astype(np.float32) * scale + offset


def predicted_classes(meta, acc):
    """Classes from last-layer accumulators (N, ...): the argmax of the logits when
    ``meta`` has an output affine map, else of the accumulators."""
    acc = np.asarray(acc)
    if meta.get("output_affine") is not None:
        acc = meta_logits(meta, acc)
    return acc.reshape(len(acc), -1).argmax(axis=1)
