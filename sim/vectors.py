"""Random test cases for the core and their scoreboard against the golden reference.

A :class:`Case` is what a testbench needs: the memory writes (weights,
folded thresholds), the input beats (packed with the layouts of
:mod:`tritium.hw.layouts`) and, per output beat, the expected integers from
:func:`tritium.sw.model.reference.accumulate` and :func:`~tritium.sw.model.reference.multi_threshold`.
The same case drives the Amaranth simulation and the cocotb testbenches.
"""

import json
from dataclasses import asdict, dataclass

import numpy as np

from ..hw.config import config_from_dict
from ..hw.contract import (bank_images, check_layer, folded_thresholds, input_words,
                           row_offsets, schedule)
from ..hw.layouts import input_layout, output_layout, pack, thresholds_layout, unpack_signed
from ..hw.weight_kinds import weight_kind as weight_kind_info
from ..sw.model import reference
from ..sw.model.ir import ActType, Dense, accumulator_range

#: Modes the testbenches exercise: (weight kind, input activation type).
MODES = {
    "binary": ("binary", "bipolar"),
    "ternary": ("ternary", "bipolar"),
    "uint8-binary": ("binary", "uint8"),
    "int8-ternary": ("ternary", "int8"),
    "int8-binary": ("binary", "int8"),
    "uint8-ternary": ("ternary", "uint8"),
    "pow2-2": ("pow2-2", "bipolar"),
    "pow2-4": ("pow2-4", "bipolar"),
    "int2": ("int2", "bipolar"),
    "int3": ("int3", "bipolar"),
    "int4": ("int4", "bipolar"),
    "uint4-pow2-2": ("pow2-2", "uint4"),
    "int8-pow2-4": ("pow2-4", "int8"),
    "uint3-int2": ("int2", "uint3"),
    "int4-int3": ("int3", "int4"),
    "uint8-int4": ("int4", "uint8"),
}


@dataclass
class Case:
    config: dict
    mode: str
    weight_writes: list      # (bank, addr, data)
    threshold_writes: list   # (bank, addr, raw)
    beats: list              # packed input words
    expected: list           # per output beat: {"rows": [...], "ref_acc": [...], "k": [...], "act": [...]}

    @property
    def cfg(self):
        return config_from_dict(self.config)

    def to_json(self):
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text):
        return cls(**json.loads(text))


def random_layer(cfg, weight_kind, in_act, rng, fan_in=None, out_channels=None, weights=None):
    """A random Dense layer that fits ``cfg`` (thresholds spread over the accumulator range).

    ``weights`` (an ``(out_channels, fan_in)`` array of the kind's levels) replaces the
    random weights; every plane of a row fits the bank (``E`` words per input word).
    """
    if weights is not None:
        out_channels, fan_in = np.shape(weights)
    tiles_max = 2
    if out_channels is None:
        out_channels = int(rng.integers(1, tiles_max * cfg.pe + 1))
    tiles = -(-out_channels // cfg.pe)
    if fan_in is None:
        planes = weight_kind_info(weight_kind).n_planes
        max_words = max(1, min(4, cfg.weight_depth // (tiles * planes)))
        fan_in = int(rng.integers(1, max_words * cfg.simd + 1))
    if weights is not None:
        w = np.asarray(weights, np.int64)
    else:
        w = rng.choice(np.array(weight_kind_info(weight_kind).levels), size=(out_channels, fan_in))
    out_bits = int(rng.integers(1, cfg.out_bits + 1))
    out_act = ActType("bipolar") if out_bits == 1 else ActType("unsigned", out_bits)
    lo, hi = accumulator_range(fan_in, in_act, weight_kind)
    # Centre thresholds on typical accumulators so every output value occurs.
    spread = max(2, int(np.sqrt(fan_in) * max(1, in_act.max)))
    t = np.sort(rng.integers(-spread, spread + 1, size=(out_channels, out_act.n_thresholds)), axis=1)
    t = np.clip(t, lo, hi + 1).astype(np.int64)
    return Dense.from_values("fc", w, weight_kind, thresholds=t, out_act=out_act)


def random_inputs(in_act, n, fan_in, rng):
    if in_act.kind == "bipolar":
        return rng.choice(np.array([-1, 1]), size=(n, fan_in))
    return rng.integers(in_act.min, in_act.max + 1, size=(n, fan_in))


def make_case(cfg, mode, n_vectors, seed, fan_in=None, out_channels=None, weights=None,
              inputs=None):
    """A random case of ``n_vectors`` input vectors in ``mode`` (see :data:`MODES`).

    ``weights`` (see :func:`random_layer`) and ``inputs`` (an ``(n_vectors,
    fan_in)`` array) replace the random ones, e.g. for extreme values.
    """
    weight_kind, act_text = MODES[mode]
    in_act = ActType.parse(act_text)
    rng = np.random.default_rng(seed)
    layer = random_layer(cfg, weight_kind, in_act, rng, fan_in, out_channels, weights)
    check_layer(layer, in_act, cfg)
    x = random_inputs(in_act, n_vectors, layer.fan_in, rng) if inputs is None else np.asarray(inputs)

    # The golden reference: the one implementation of the arithmetic.
    ref_acc = reference.accumulate(x, in_act, layer)
    ref_out = reference.multi_threshold(ref_acc, layer.thresholds, layer.out_act)
    if layer.out_act.kind == "bipolar":
        ref_count = (ref_out.astype(np.int64) + 1) // 2
    else:
        ref_count = ref_out.astype(np.int64)
    k = row_offsets(layer, in_act, cfg)

    weight_writes = [(p, a, w) for p, image in enumerate(bank_images(layer, cfg))
                     for a, w in enumerate(image)]
    tl = thresholds_layout(cfg)
    threshold_writes = [(p, t, pack(tl, values)) for p, sets in enumerate(folded_thresholds(layer, in_act, cfg))
                        for t, values in enumerate(sets)]
    words = input_words(x, in_act, cfg)
    il, tiles = input_layout(cfg), -(-layer.out_channels // cfg.pe)
    steps = [schedule(layer, in_act, cfg, tile) for tile in range(tiles)]
    beats, expected = [], []
    for r in range(n_vectors):
        for tile in range(tiles):
            for plane, j, cmd in steps[tile]:
                xw = int(words[0 if plane is None else plane][r][j])
                beats.append(pack(il, {"x": xw, "cmd": cmd}))
            rows = [tile * cfg.pe + p for p in range(cfg.pe)]
            rows = [row if row < layer.out_channels else None for row in rows]
            expected.append({
                "rows": rows,
                "ref_acc": [None if row is None else int(ref_acc[r, row]) for row in rows],
                "k": [None if row is None else int(k[row]) for row in rows],
                "act": [0 if row is None else int(ref_count[r, row]) for row in rows],
            })
    return Case(cfg.canonical(), mode, weight_writes, threshold_writes, beats, expected)


def decode_output(cfg, raw):
    """Raw output payload -> (D list, act list)."""
    layout = output_layout(cfg)
    acc_off, act_off = layout["acc"].offset, layout["act"].offset
    d = [unpack_signed(raw, acc_off + p * cfg.acc_bits, cfg.acc_bits) for p in range(cfg.pe)]
    act = [(raw >> (act_off + p * cfg.out_bits)) & ((1 << cfg.out_bits) - 1) for p in range(cfg.pe)]
    return d, act


class Scoreboard:
    """Compares every output beat with the reference: ``D - K == acc`` and the activations."""

    def __init__(self, case):
        self.case, self.cfg = case, case.cfg
        self.index, self.mismatches, self.checked = 0, [], 0

    def check(self, raw):
        if self.index >= len(self.case.expected):
            self.mismatches.append(f"unexpected output beat {self.index}")
            self.index += 1
            return
        exp = self.case.expected[self.index]
        d, act = decode_output(self.cfg, raw)
        for p in range(self.cfg.pe):
            if exp["rows"][p] is None:
                continue
            self.checked += 1
            if d[p] - exp["k"][p] != exp["ref_acc"][p] or act[p] != exp["act"][p]:
                self.mismatches.append(
                    f"beat {self.index} row {exp['rows'][p]}: hardware D-K={d[p] - exp['k'][p]} "
                    f"act={act[p]}, reference acc={exp['ref_acc'][p]} act={exp['act'][p]}")
        self.index += 1

    @property
    def done(self):
        return self.index >= len(self.case.expected)

    def summary(self):
        return (f"{self.case.mode}: {self.index} beats, {self.checked} results checked, "
                f"{len(self.mismatches)} mismatches")

