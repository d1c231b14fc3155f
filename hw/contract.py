"""The PE contract in software: how a weight layer maps onto the PE array.

This is what the compiler does for one layer (and what the testbenches do):
bank images, the command sequence of each mode, the row constants ``K`` and
the folded thresholds. With ``D_p`` the hardware result of
:mod:`tritium.hw.pe`,

    ``reference.accumulate(x, in_act, layer)[:, row] == D_p - K[row]``

where (W words of S lanes per fan-in, F the fan-in, lanes past F zero)

=====================  =========================  ==========================
mode                   commands per word           ``K[row]``
=====================  =========================  ==========================
bipolar x binary        xnor,  dbl                 ``2*W*S - F`` (binary core)
                        mxnor, dbl, mask = valid   ``F``         (ternary core)
bipolar x ternary       mxnor, dbl                 ``popcount(mask row)``
k-bit   x binary        and_s, dbl, count          0
k-bit   x ternary       and_s, dbl; and_m          0
=====================  =========================  ==========================

k-bit inputs are sent plane by plane, most significant plane first; the first
word of every plane but the first has ``shl`` (Horner), and the words of the
MSB plane of signed inputs have ``neg`` (and the ``and_m`` words the opposite
of the plane's ``neg``). Thresholds fold as ``T' = T + K``.
"""

import numpy as np

from .errors import TritiumError
from .packing import pack_planes, unpack_bits
from .config import OP_AND_M, OP_AND_S, OP_MXNOR, OP_XNOR


def words_per_row(fan_in, cfg):
    return -(-fan_in // cfg.simd)


def check_layer(layer, in_act, cfg):
    """Refuse a layer that this core cannot run (one line)."""
    if layer.weight_kind not in cfg.weight_kinds:
        raise TritiumError(f"layer {layer.name}: {layer.weight_kind} weights need a core "
                           f"built with them (this one: {', '.join(cfg.weight_kinds)})")
    if in_act.kind != "bipolar" and in_act.bits > cfg.act_bits:
        raise TritiumError(f"layer {layer.name}: {in_act} inputs need act_bits >= {in_act.bits} "
                           f"(this core: {cfg.act_bits})")
    if layer.fan_in > cfg.max_fan_in:
        raise TritiumError(f"layer {layer.name}: fan-in {layer.fan_in} is longer than this core's "
                           f"max_fan_in {cfg.max_fan_in} (its accumulators are sized for it)")
    tiles = -(-layer.out_channels // cfg.pe)
    if tiles * words_per_row(layer.fan_in, cfg) > cfg.weight_depth:
        raise TritiumError(f"layer {layer.name}: needs {tiles} x {words_per_row(layer.fan_in, cfg)} "
                           f"weight words per bank, the core has {cfg.weight_depth}")
    if tiles > cfg.thr_depth:
        raise TritiumError(f"layer {layer.name}: needs {tiles} threshold sets, the core has {cfg.thr_depth}")
    if layer.out_act is not None and layer.out_act.n_thresholds > cfg.n_thresholds:
        raise TritiumError(f"layer {layer.name}: {layer.out_act} outputs need out_bits >= "
                           f"{layer.out_act.bits} (this core: {cfg.out_bits})")


def _single_plane(layer, packed):
    """The one weight plane (M, words) of a binary or ternary layer."""
    if packed.shape[0] != 1:
        raise TritiumError(f"layer {layer.name}: {layer.weight_kind} weights need a core "
                           f"built with them (this one runs binary and ternary weights)")
    return packed[0]


def _row_words(packed, fan_in, simd):
    """Unpacked rows (M, F) of a packed array -> python ints per (row, word) of S lanes."""
    bits = unpack_bits(packed, fan_in)
    n_words = -(-fan_in // simd)
    pad = n_words * simd - fan_in
    bits = np.concatenate([bits, np.zeros(bits.shape[:-1] + (pad,), np.uint8)], axis=-1)
    bits = bits.reshape(bits.shape[:-1] + (n_words, simd))
    weights = (1 << np.arange(simd, dtype=object))
    return (bits.astype(object) * weights).sum(axis=-1)


def bank_images(layer, cfg):
    """Weight-bank contents: ``images[p][addr]`` (ints), rows tiled P at a time.

    Row ``r`` goes to bank ``r % P``, words ``(r // P) * W + j``. A binary layer
    on a ternary-capable core gets the valid-lane mask.
    """
    f, s = layer.fan_in, cfg.simd
    n_words = words_per_row(f, cfg)
    sign = _row_words(_single_plane(layer, layer.w_sign), f, s)
    if layer.weight_kind == "ternary":
        mask = _row_words(_single_plane(layer, layer.w_mask), f, s)
    else:
        valid = _row_words(np.full((1, -(-f // 64)), np.uint64(0xFFFF_FFFF_FFFF_FFFF)), f, s)
        mask = np.repeat(valid, layer.out_channels, axis=0)
    tiles = -(-layer.out_channels // cfg.pe)
    images = [[0] * (tiles * n_words) for _ in range(cfg.pe)]
    for r in range(layer.out_channels):
        for j in range(n_words):
            word = int(sign[r, j])
            if cfg.ternary:
                word |= int(mask[r, j]) << s
            images[r % cfg.pe][(r // cfg.pe) * n_words + j] = word
    return images


def row_offsets(layer, in_act, cfg, n_words=None):
    """``K[row]``: ``reference accumulator = D - K`` (see the module docstring).

    ``n_words`` is the number of S-lane words of a weight row; it defaults to
    the dense layout ``ceil(F / S)`` (a windowed layout pads every kernel
    position to whole words and so has more).
    """
    m, f = layer.out_channels, layer.fan_in
    if n_words is None:
        n_words = words_per_row(f, cfg)
    if in_act.kind != "bipolar":
        return np.zeros(m, np.int64)
    if layer.weight_kind == "ternary":
        return np.bitwise_count(_single_plane(layer, layer.w_mask)).sum(axis=1, dtype=np.int64)
    if cfg.ternary:
        return np.full(m, f, np.int64)
    return np.full(m, 2 * n_words * cfg.simd - f, np.int64)


def never(cfg):
    """A threshold no result reaches."""
    return (1 << (cfg.acc_bits - 1)) - 1


def folded_thresholds(layer, in_act, cfg, n_words=None):
    """Threshold-memory contents ``[p][tile] -> list of n_thresholds ints`` (``T + K``).

    Missing thresholds (fewer output bits than the core has) and rows past the
    layer's outputs read "never". ``n_words`` as for :func:`row_offsets`.
    """
    k = row_offsets(layer, in_act, cfg, n_words)
    tiles = -(-layer.out_channels // cfg.pe)
    lo, hi = -(1 << (cfg.acc_bits - 1)), never(cfg)
    out = [[[hi] * cfg.n_thresholds for _ in range(tiles)] for _ in range(cfg.pe)]
    if layer.thresholds is None:
        return out
    for r in range(layer.out_channels):
        t = layer.thresholds[r] + k[r]
        out[r % cfg.pe][r // cfg.pe][:len(t)] = [int(min(max(v, lo), hi)) for v in t]
    return out


def beat_commands(bipolar, ternary_core, ternary_weights, signed, planes, n_words):
    """The beats of one accumulation, in order: ``(plane, word, fields)``.

    ``fields`` holds the command fields ``op, shl, neg, dbl, count`` (the PE
    contract above); ``plane`` is ``None`` for bipolar inputs. The controller
    RTL (hw/accel_blocks.py) generates the same sequence; the ISA-level simulator and
    :func:`schedule` take it from here.
    """
    beats = []
    if bipolar:
        op = OP_MXNOR if ternary_core else OP_XNOR
        for j in range(n_words):
            beats.append((None, j, dict(op=op, shl=0, neg=0, dbl=1, count=0)))
        return beats
    for b in reversed(range(planes)):
        neg = int(signed and b == planes - 1)
        for j in range(n_words):
            shl = int(j == 0 and b != planes - 1)
            if ternary_weights:
                beats.append((b, j, dict(op=OP_AND_S, shl=shl, neg=neg, dbl=1, count=0)))
                beats.append((b, j, dict(op=OP_AND_M, shl=0, neg=1 - neg, dbl=0, count=0)))
            else:
                beats.append((b, j, dict(op=OP_AND_S, shl=shl, neg=neg, dbl=1, count=1)))
    return beats


def schedule(layer, in_act, cfg, tile=0):
    """Commands of one input vector on one tile of P rows.

    Returns a list of ``(plane, word, cmd)``: the input word to send is word
    ``word`` of bit plane ``plane`` (``None`` for bipolar inputs), ``cmd`` a dict
    of :func:`tritium.hw.layouts.command_layout` fields.
    """
    n_words = words_per_row(layer.fan_in, cfg)
    base = tile * n_words
    steps = [(plane, j, dict(fields, w_addr=base + j)) for plane, j, fields in beat_commands(
        in_act.kind == "bipolar", cfg.ternary, layer.weight_kind == "ternary",
        in_act.kind == "signed", in_act.bits, n_words)]
    steps[-1][2]["last"] = 1
    steps[-1][2]["t_addr"] = tile
    return steps


def input_words(x, in_act, cfg):
    """Input values (R, F) -> ints ``[plane][row][word]`` of S lanes (bipolar: one plane)."""
    x = np.asarray(x)
    if in_act.kind == "bipolar":
        planes = (x > 0).astype(np.uint8)[None]
    else:
        planes = np.stack([unpack_bits(p, x.shape[1])
                           for p in pack_planes(x, in_act.bits, in_act.kind == "signed")])
    n_words = words_per_row(x.shape[1], cfg)
    pad = n_words * cfg.simd - x.shape[1]
    planes = np.concatenate([planes, np.zeros(planes.shape[:-1] + (pad,), np.uint8)], axis=-1)
    planes = planes.reshape(planes.shape[:-1] + (n_words, cfg.simd)).astype(object)
    return (planes * (1 << np.arange(cfg.simd, dtype=object))).sum(axis=-1)
