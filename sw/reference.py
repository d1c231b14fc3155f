"""The golden reference: the bit-exact integer meaning of every IR layer.

Everything here works on packed 64-bit words (:mod:`tritium.sw.packing`) with
vectorised popcount (``numpy.bitwise_count``), exactly as docs/numerics.md
writes the arithmetic:

* bipolar x binary:   ``acc = F - 2 * popcount(a ^ w)``
  (equal to ``2 * popcount(xnor(a, w)) - F`` over the F valid lanes);
* bipolar x ternary:  ``acc = popcount(m) - 2 * popcount(m & (a ^ s))``
  (equal to ``2 * popcount(m & xnor(a, s)) - popcount(m)``);
* k-bit x binary:     ``acc = sum_b c_b * (2 * popcount(x_b & w) - popcount(x_b))``;
* k-bit x ternary:    ``acc = sum_b c_b * (2 * popcount(x_b & m & s) - popcount(x_b & m))``;

where ``c_b = 2**b`` and, for signed inputs, ``c_{k-1} = -2**(k-1)``.
Outputs: ``sum_t [acc >= T[c, t]]`` (bipolar: ``2 * [acc >= T[c]] - 1``), or the
raw accumulators on a last layer.

Activations enter and leave as integer *values* (bipolar as -1/+1, k-bit as
their integer values), so the results compare directly with any other path.
"""

import numpy as np

from .errors import ModelError
from .ir import Conv2d, Dense, MaxPool2d
from .packing import pack_bits, pack_planes, plane_weights

# Rows processed at once by the popcount kernel: keeps the (rows x outputs)
# scratch arrays inside the CPU caches.
_CHUNK_ELEMENTS = 1 << 17


def popcount_rows(x):
    """Popcount of each row of packed words: (R, W) uint64 -> (R,) int64."""
    return np.bitwise_count(x).sum(axis=-1, dtype=np.int64)


def popcount_matrix(x, w, op, mask=None):
    """``out[r, m] = sum_j popcount(op(x[r, j], w[m, j]) [& mask[m, j]])``.

    ``x`` is (R, W) and ``w``/``mask`` (M, W), all uint64; ``op`` is
    ``numpy.bitwise_xor`` or ``numpy.bitwise_and``. Returns int32 (R, M).
    Loops over words (W is small), vectorised over rows and outputs.
    """
    r_total, n_words = x.shape
    m = w.shape[0]
    out = np.zeros((r_total, m), np.int32)
    rows = max(1, _CHUNK_ELEMENTS // max(m, 1))
    xt = np.ascontiguousarray(x.T)
    wt = np.ascontiguousarray(w.T)
    mt = None if mask is None else np.ascontiguousarray(mask.T)
    tmp = np.empty((min(rows, r_total), m), np.uint64)
    cnt = np.empty((min(rows, r_total), m), np.uint8)
    for r0 in range(0, r_total, rows):
        r1 = min(r0 + rows, r_total)
        t, c, acc = tmp[: r1 - r0], cnt[: r1 - r0], out[r0:r1]
        for j in range(n_words):
            op(xt[j, r0:r1, None], wt[j][None, :], out=t)
            if mt is not None:
                np.bitwise_and(t, mt[j][None, :], out=t)
            np.bitwise_count(t, out=c)
            acc += c
    return out


def accumulate(x, in_act, layer):
    """Accumulators of a weight layer for flattened inputs ``x`` (R, F) of values.

    Returns int64 (R, M). This is the one implementation of the lane
    arithmetic; see the module docstring for the formulas.
    """
    f = layer.fan_in
    if in_act.kind == "bipolar":
        a = pack_bits(x > 0)
        if layer.weight_kind == "binary":
            return f - 2 * popcount_matrix(a, layer.w_sign, np.bitwise_xor).astype(np.int64)
        row_const = popcount_rows(layer.w_mask)
        diff = popcount_matrix(a, layer.w_sign, np.bitwise_xor, mask=layer.w_mask)
        return row_const[None, :] - 2 * diff.astype(np.int64)
    planes = pack_planes(x, in_act.bits, in_act.kind == "signed")
    acc = np.zeros((x.shape[0], layer.out_channels), np.int64)
    for plane, weight in zip(planes, plane_weights(in_act.bits, in_act.kind == "signed")):
        if layer.weight_kind == "binary":
            # popcount(x_b) is the same for every output: one shared counter.
            term = 2 * popcount_matrix(plane, layer.w_sign, np.bitwise_and).astype(np.int64)
            term -= popcount_rows(plane)[:, None]
        else:
            pos = popcount_matrix(plane, layer.w_sign, np.bitwise_and)
            nonzero = popcount_matrix(plane, layer.w_mask, np.bitwise_and)
            term = 2 * pos.astype(np.int64) - nonzero
        acc += weight * term
    return acc


def multi_threshold(acc, thresholds, out_act):
    """Apply per-channel thresholds (M, T) to accumulators (..., M).

    Returns ``sum_t [acc >= T[:, t]]``; for bipolar outputs the 0/1 result is
    mapped to -1/+1.
    """
    count = np.zeros(acc.shape, np.int64)
    for t in range(thresholds.shape[1]):
        count += acc >= thresholds[:, t]
    if out_act.kind == "bipolar":
        return (2 * count - 1).astype(np.int8)
    return count.astype(np.int32 if out_act.bits > 7 else np.int8)


def im2col(x, layer, in_act):
    """Sliding-window patches of NHWC values: (N, H, W, C) -> (N*OH*OW, kh*kw*C).

    Padded pixels take the layer's pad value. Patch elements are ordered
    (kernel row, kernel column, channel), the IR's weight order.
    """
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.padding
    pad_value = in_act.zero_code_value if layer.pad_value is None else layer.pad_value
    if ph or pw:
        x = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), constant_values=pad_value)
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
    windows = windows[:, ::sh, ::sw]                       # (N, OH, OW, C, kh, kw)
    n, oh, ow = windows.shape[:3]
    patches = windows.transpose(0, 1, 2, 4, 5, 3)          # (N, OH, OW, kh, kw, C)
    return patches.reshape(n * oh * ow, layer.fan_in), (n, oh, ow)


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
        patches, (n, oh, ow) = im2col(x, layer, in_act)
        acc = accumulate(patches, in_act, layer).reshape(n, oh, ow, layer.out_channels)
    elif isinstance(layer, Dense):
        acc = accumulate(x.reshape(x.shape[0], -1), in_act, layer)
    else:
        raise ModelError(f"layer {layer.name}: unknown layer type {type(layer).__name__}")
    if layer.is_raw:
        return acc
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
    """Run a whole :class:`~tritium.sw.ir.IntModel` on a batch of input values.

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
    affine = model.meta["output_affine"]
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
