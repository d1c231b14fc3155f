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
bipolar x E planes      per plane, top first       ``sum_e 2**e * K_e``
k-bit   x E planes      per term, by diagonals     0
=====================  =========================  ==========================

k-bit inputs are sent plane by plane, most significant plane first; the first
word of every plane but the first has ``shl`` (Horner), and the words of the
MSB plane of signed inputs have ``neg`` (and the ``and_m`` words the opposite
of the plane's ``neg``). Thresholds fold as ``T' = T + K``.

Multi-plane weights (``W = sum_e 2**e * T_e`` over planes ``e = 0 .. E-1``,
:mod:`tritium.hw.weight_kinds`): a weight row holds its planes one after
another, top plane first (``E * W`` words). Every (weight plane ``e``, bit plane
``b``) pair is one *term*: the input words of bit plane ``b`` (the one plane of
bipolar inputs) with the words of weight plane ``e``, each word sent as the
table says for one plane of that kind (bipolar inputs: ``mxnor`` with the
plane's mask for masked planes, ``xnor`` or ``mxnor`` with the valid-lane mask
for bipolar planes; k-bit inputs: ``and_s, dbl, count`` for bipolar planes,
``and_s, dbl; and_m`` for masked ones, ``neg`` on the MSB plane of signed
inputs). The product needs ``sum 2**(e+b) * term(e, b)``, so the terms come by
diagonals ``s = e + b`` from ``(E-1) + (B-1)`` down to 0 (:func:`diagonal_terms`,
``e`` counting down within a diagonal) and the first word of every diagonal but
the first has ``shl``: one Horner shift per diagonal. With ``E = 1`` or ``B = 1``
every diagonal is one term and the order is the one above. So
``D_p = sum_e 2**e * D_p,e`` and ``K[row] = sum_e 2**e * K_e[row]``: for bipolar
inputs with masked planes ``K_e = popcount(mask_e row)``, with bipolar planes
the one-plane binary constant (so ``(2**E - 1) * F`` on a core with mask words);
for k-bit inputs ``K = 0`` (each term is exact).
"""

import numpy as np

from .errors import TritiumError
from .packing import pack_planes, unpack_bits
from .config import OP_AND_M, OP_AND_S, OP_MXNOR, OP_XNOR
from .weight_kinds import weight_kind


def words_per_row(fan_in, cfg):
    """Words of S lanes of one weight plane of a row (the dense layout)."""
    return -(-fan_in // cfg.simd)


def weight_planes(layer):
    """The number of weight planes of ``layer``'s kind."""
    return weight_kind(layer.weight_kind).n_planes


def _check_kind(layer, cfg):
    if layer.weight_kind not in cfg.weight_kinds:
        raise TritiumError(f"layer {layer.name}: {layer.weight_kind} weights need a core "
                           f"built with them (this one: {', '.join(cfg.weight_kinds)})")


def check_layer(layer, in_act, cfg):
    """Refuse a layer that this core cannot run (one line)."""
    _check_kind(layer, cfg)
    planes = weight_planes(layer)
    if in_act.kind != "bipolar" and in_act.bits > cfg.act_bits:
        raise TritiumError(f"layer {layer.name}: {in_act} inputs need act_bits >= {in_act.bits} "
                           f"(this core: {cfg.act_bits})")
    if layer.fan_in > cfg.max_fan_in:
        raise TritiumError(f"layer {layer.name}: fan-in {layer.fan_in} is longer than this core's "
                           f"max_fan_in {cfg.max_fan_in} (its accumulators are sized for it)")
    tiles = -(-layer.out_channels // cfg.pe)
    row_words = planes * words_per_row(layer.fan_in, cfg)
    if tiles * row_words > cfg.weight_depth:
        raise TritiumError(f"layer {layer.name}: needs {tiles} x {row_words} "
                           f"weight words per bank, the core has {cfg.weight_depth}")
    if tiles > cfg.thr_depth:
        raise TritiumError(f"layer {layer.name}: needs {tiles} threshold sets, the core has {cfg.thr_depth}")
    if layer.out_act is not None and layer.out_act.n_thresholds > cfg.n_thresholds:
        raise TritiumError(f"layer {layer.name}: {layer.out_act} outputs need out_bits >= "
                           f"{layer.out_act.bits} (this core: {cfg.out_bits})")


def _row_words(packed, fan_in, simd):
    """Unpacked rows (M, F) of a packed array -> python ints per (row, word) of S lanes."""
    bits = unpack_bits(packed, fan_in)
    n_words = -(-fan_in // simd)
    pad = n_words * simd - fan_in
    bits = np.concatenate([bits, np.zeros(bits.shape[:-1] + (pad,), np.uint8)], axis=-1)
    bits = bits.reshape(bits.shape[:-1] + (n_words, simd))
    weights = (1 << np.arange(simd, dtype=object))
    return (bits.astype(object) * weights).sum(axis=-1)


def weight_row_words(layer, cfg):
    """Bank words of every row, planes top plane first: ints (M, E * W) for W words per
    plane (the dense layout), the sign word in the low S bits and, on a core with mask
    words, the mask word above it (the plane's mask, or the valid lanes for bipolar
    planes)."""
    f, s = layer.fan_in, cfg.simd
    valid = _row_words(np.full((1, -(-f // 64)), np.uint64(0xFFFF_FFFF_FFFF_FFFF)), f, s)
    planes = []
    for e in reversed(range(weight_planes(layer))):
        word = _row_words(layer.w_sign[e], f, s)
        if cfg.ternary:
            mask = (_row_words(layer.w_mask[e], f, s) if layer.w_mask is not None
                    else np.repeat(valid, layer.out_channels, axis=0))
            word = word + mask * (1 << s)
        planes.append(word)
    return np.concatenate(planes, axis=1)


def bank_images(layer, cfg):
    """Weight-bank contents: ``images[p][addr]`` (ints), rows tiled P at a time.

    Row ``r`` goes to bank ``r % P``, words ``(r // P) * E * W + k * W + j`` for word
    ``j`` of its plane ``E - 1 - k`` (top plane first; ``E`` planes of ``W`` words). A
    bipolar plane on a core with mask words gets the valid-lane mask.
    """
    _check_kind(layer, cfg)
    words = weight_row_words(layer, cfg)
    row_words = words.shape[1]
    tiles = -(-layer.out_channels // cfg.pe)
    images = [[0] * (tiles * row_words) for _ in range(cfg.pe)]
    for r in range(layer.out_channels):
        base = (r // cfg.pe) * row_words
        images[r % cfg.pe][base:base + row_words] = [int(w) for w in words[r]]
    return images


def row_offsets(layer, in_act, cfg, n_words=None):
    """``K[row]``: ``reference accumulator = D - K`` (see the module docstring).

    ``n_words`` is the number of S-lane words of one plane of a weight row; it defaults to
    the dense layout ``ceil(F / S)`` (a windowed layout pads every kernel
    position to whole words and so has more).
    """
    m, f = layer.out_channels, layer.fan_in
    if n_words is None:
        n_words = words_per_row(f, cfg)
    if in_act.kind != "bipolar":
        return np.zeros(m, np.int64)
    if layer.w_mask is not None:
        counts = np.bitwise_count(layer.w_mask).sum(axis=2, dtype=np.int64)     # (E, M)
        scales = np.int64(1) << np.arange(len(counts), dtype=np.int64)
        return (counts * scales[:, None]).sum(axis=0)
    scale = (1 << weight_planes(layer)) - 1
    if cfg.ternary:
        return np.full(m, scale * f, np.int64)
    return np.full(m, scale * (2 * n_words * cfg.simd - f), np.int64)


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


def diagonal_terms(planes, weight_planes):
    """The (weight plane, bit plane) terms of one accumulation in Horner order:
    ``(k, b, first)`` for weight plane ``weight_planes - 1 - k`` (``k`` counts from the top
    plane, as the row holds them) and bit plane ``b``; ``first`` marks the first term of a
    diagonal.

    The terms go by diagonals ``s = e + b`` from the top one down (their weights
    ``2**s`` never increase, so one Horner shift per diagonal doubles what came before);
    within a diagonal ``e`` counts down and ``b`` up, so ``k`` counts up and the next
    term's weight words follow the last one's in the row.
    """
    for s in reversed(range(weight_planes + planes - 1)):
        top_e = min(weight_planes - 1, s)
        for e in reversed(range(max(0, s - planes + 1), top_e + 1)):
            yield weight_planes - 1 - e, s - e, e == top_e


def beat_commands(bipolar, ternary_core, ternary_weights, signed, planes, n_words,
                  weight_planes=1):
    """The beats of one accumulation, in order: ``(plane, word, w_word, fields)``.

    ``word`` is the input word of bit plane ``plane`` (``None`` for bipolar inputs),
    ``w_word`` the weight word of the row (``k * n_words + word`` for weight plane
    ``weight_planes - 1 - k``: the row holds its planes top plane first). The terms
    (weight plane x bit plane) come in :func:`diagonal_terms` order, each sending its
    words as a one-plane layer of its kind does; the first word of every diagonal but the
    first has ``shl``. ``fields`` holds the command fields ``op, shl, neg, dbl, count``
    (the PE contract above). The controller RTL (hw/accel_blocks.py) generates the same
    sequence; the ISA-level simulator and :func:`schedule` take it from here.
    """
    beats = []
    bit_planes = 1 if bipolar else planes
    for k, b, first in diagonal_terms(bit_planes, weight_planes):
        top = k == 0 and b == bit_planes - 1            # the first diagonal's only term
        neg = int(signed and not bipolar and b == planes - 1)
        for j in range(n_words):
            w_word, shl = k * n_words + j, int(j == 0 and first and not top)
            if bipolar:
                op = OP_MXNOR if ternary_core else OP_XNOR
                beats.append((None, j, w_word, dict(op=op, shl=shl, neg=0, dbl=1, count=0)))
            elif ternary_weights:
                beats.append((b, j, w_word, dict(op=OP_AND_S, shl=shl, neg=neg, dbl=1, count=0)))
                beats.append((b, j, w_word, dict(op=OP_AND_M, shl=0, neg=1 - neg, dbl=0, count=0)))
            else:
                beats.append((b, j, w_word, dict(op=OP_AND_S, shl=shl, neg=neg, dbl=1, count=1)))
    return beats


def schedule(layer, in_act, cfg, tile=0):
    """Commands of one input vector on one tile of P rows.

    Returns a list of ``(plane, word, cmd)``: the input word to send is word
    ``word`` of bit plane ``plane`` (``None`` for bipolar inputs), ``cmd`` a dict
    of :func:`tritium.hw.layouts.command_layout` fields.
    """
    n_words = words_per_row(layer.fan_in, cfg)
    planes = weight_planes(layer)
    base = tile * planes * n_words
    steps = [(plane, j, dict(fields, w_addr=base + w_word)) for plane, j, w_word, fields in
             beat_commands(in_act.kind == "bipolar", cfg.ternary, layer.w_mask is not None,
                           in_act.kind == "signed", in_act.bits, n_words, planes)]
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
