"""The hardware configuration of a tritium PE array, its validation and its hash.

:class:`HwConfig` is the one description of a generated core. It is checked
completely (:meth:`HwConfig.check`) before any Amaranth code is elaborated, so
an illegal combination is refused with one clear line
(:class:`~tritium.hw.errors.TritiumError`), never an elaboration traceback.

The configuration hash (:func:`config_hash`) is a stable function of the
canonical configuration (:meth:`HwConfig.canonical`): a sorted-key JSON text of
every field that changes the hardware, hashed with SHA-256. Compiled model
images record it and the driver refuses an image whose hash differs from the
hardware's. Software imports the hash from here; it is defined nowhere else.
"""

import hashlib
import json
from dataclasses import dataclass, fields

from .errors import TritiumError
from .weight_kinds import KINDS, WEIGHT_KIND_NAMES

#: Bumped whenever the meaning of a configuration field (or the hardware that
#: a given configuration generates, as seen by the compiler) changes.
CONFIG_VERSION = 3

#: Register stages of the threshold unit (:class:`tritium.hw.threshold.ThresholdUnit`):
#: the threshold read beside the result, then the read data's register.
THRESHOLD_STAGES = 2
#: The chained array's (hw/chain.py) register stage before its threshold compare.
CHAIN_COMPARE_STAGES = 1

#: The weight kinds a core can be built for (every kind of :mod:`tritium.hw.weight_kinds`).
WEIGHT_KINDS = WEIGHT_KIND_NAMES

#: Lane operations, by their command code (see :mod:`tritium.hw.pe`).
OP_XNOR, OP_MXNOR, OP_AND_S, OP_AND_M = range(4)
OP_NAMES = {OP_XNOR: "xnor", OP_MXNOR: "mxnor", OP_AND_S: "and_s", OP_AND_M: "and_m"}

# Bounds that keep generated cores sane (and simulation/compile times finite).
MAX_PE = 1024
MAX_SIMD = 1024
MAX_ACT_BITS = 16
MAX_OUT_BITS = 4
MAX_DEPTH = 1 << 16
MAX_ACC_BITS = 48


class ConfigError(TritiumError):
    """An illegal hardware configuration."""


def _ceil_log2(n):
    return max(0, (int(n) - 1).bit_length())


def carry_in_lanes(width):
    """Lanes that enter the tree as adder carry-ins rather than through the first level."""
    return max(0, (width - 2) // 3)


def tree_levels(width, carry_in=True):
    """Levels of the popcount tree of ``width`` lanes (the first level included)."""
    items = width - (carry_in_lanes(width) if carry_in else 0)
    levels = 0
    while items > 1:
        items = (items + 1) // 2
        levels += 1
    return levels


@dataclass(frozen=True)
class HwConfig:
    """Parameters of a generated PE array core.

    Parameters
    ----------
    pe : int
        P, processing elements (output channels computed in parallel).
    simd : int
        S, input lanes per PE per cycle (the width of the broadcast input word).
    weight_kinds : tuple of str
        Weight kinds the core runs, any of :data:`WEIGHT_KINDS` (``binary``, ``ternary``,
        ``pow2-2``, ``pow2-4``, ``int2``, ``int3``, ``int4``). A core with a masked kind
        (ternary, pow2-*) stores a mask word next to every sign word; a core with a
        multi-plane kind runs up to :attr:`weight_planes` weight planes per word with
        Horner shifts in its accumulators.
    act_bits : int
        Largest input activation width, in bits. 1 means bipolar inputs only;
        K > 1 adds bit-serial processing of K bit planes (AND lane op, shared
        input popcount counter, shift-and-negate accumulators).
    out_bits : int
        Output activation bits of the multi-threshold unit: it holds
        ``2**out_bits - 1`` thresholds per output channel.
    weight_depth : int
        Words in each PE's weight bank (the longest fan-in they can hold is
        ``weight_depth * simd`` lanes).
    max_fan_in : int or None
        Longest fan-in (weights per output channel) a layer may have on this
        core; ``None`` means ``weight_depth * simd``. It bounds the accumulator
        (see :meth:`min_acc_bits`): a realistic value (e.g. 4608 for CNV-sized
        models) saves accumulator bits in every PE. Layers with a longer fan-in
        are refused (:func:`tritium.hw.contract.check_layer`).
    thr_depth : int
        Threshold sets in each PE's threshold memory.
    acc_bits : int or None
        Signed accumulator width; ``None`` derives the smallest width that holds
        every result of a ``max_fan_in``-lane fan-in (see :meth:`min_acc_bits`).
    weight_reg : bool
        Register the weight-bank outputs once more (one cycle of latency; cuts
        the block RAMs' clock-to-output time from the lane-op path, for large
        arrays on ECP5; it costs flip-flop-only cells on iCE40).
    addr_reg : bool
        Register the weight address once per bank before the banks (one cycle
        of latency): each bank reads from its own copy, kept apart in synthesis
        (:data:`tritium.hw.toolchain.KEEP_COPIES`), so no net drives every bank's
        address (large arrays whose banks spread over the whole device).
    chain : bool
        Chain the PEs (:mod:`tritium.hw.chain`): each PE slice takes the input word,
        its controls, the loads, ``Q`` and the activations gathered so far from the
        slice before it, one register stage later, instead of from nets that span
        the array (P + 1 cycles of latency per RUN; arrays that cover a large device).
        Needs ``weight_reg`` and ``addr_reg``; only the accelerator builds it (not
        the stand-alone core of ``tritium generate``).
    pipeline : int or None
        Register stages inside the popcount tree (0 .. tree levels); ``None``
        derives ``max(1, levels // 2)`` (see :func:`tritium.hw.popcount.register_levels`).
    lane_reg : bool
        Register the lane word between the lane operation and the popcount tree (one
        cycle of latency per RUN): the lane op's logic (x, sign, mask and the op code:
        two LUT levels on a core with several ops) and the tree's first level no longer
        share a cycle (large ECP5 arrays).
    """

    pe: int = 8
    simd: int = 32
    weight_kinds: tuple = ("binary",)
    act_bits: int = 1
    out_bits: int = 1
    weight_depth: int = 256
    thr_depth: int = 64
    max_fan_in: int | None = None
    acc_bits: int | None = None
    pipeline: int | None = None
    weight_reg: bool = False
    addr_reg: bool = False
    chain: bool = False
    lane_reg: bool = False

    def __post_init__(self):
        kinds = self.weight_kinds
        if isinstance(kinds, str):
            kinds = tuple(k.strip() for k in kinds.split(",") if k.strip())
        object.__setattr__(self, "weight_kinds", tuple(kinds))
        if self.pipeline is None:
            ok = isinstance(self.simd, int) and 2 <= self.simd <= MAX_SIMD
            levels = self.tree_levels if ok else 0
            object.__setattr__(self, "pipeline", min(levels, max(1, levels // 2)))
        if self.max_fan_in is None and isinstance(self.weight_depth, int) and isinstance(self.simd, int):
            object.__setattr__(self, "max_fan_in", self.weight_depth * self.simd)
        self.check()
        if self.acc_bits is None:
            object.__setattr__(self, "acc_bits", self.min_acc_bits())

    # -- validation ---------------------------------------------------------

    def check(self):
        """Raise :class:`ConfigError` (one line) unless the configuration is legal."""
        for name in ("pe", "simd", "act_bits", "out_bits", "weight_depth", "thr_depth", "pipeline"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{name} must be an integer, got {value!r}")
        _range("pe", self.pe, 1, MAX_PE)
        _range("simd", self.simd, 2, MAX_SIMD)
        if self.simd % self.pe:
            lo, hi = self.simd // self.pe * self.pe, -(-self.simd // self.pe) * self.pe
            lanes = " or ".join(f"simd={s}" for s in (lo, hi) if s >= 2)
            raise ConfigError(f"simd={self.simd} with pe={self.pe}: the accelerator packs the P "
                              f"outputs of a step into words of S lanes and needs S % P == 0; "
                              f"try {lanes}, or pe={largest_divisor(self.simd, self.pe)}")
        _range("act_bits", self.act_bits, 1, MAX_ACT_BITS)
        _range("out_bits", self.out_bits, 1, MAX_OUT_BITS)
        _range("weight_depth", self.weight_depth, 2, MAX_DEPTH)
        _range("thr_depth", self.thr_depth, 1, MAX_DEPTH)
        if not self.weight_kinds:
            raise ConfigError(f"weight_kinds must name at least one of {', '.join(WEIGHT_KINDS)}")
        for kind in self.weight_kinds:
            if kind not in WEIGHT_KINDS:
                raise ConfigError(f"unknown weight kind {kind!r} in weight_kinds "
                                  f"({', '.join(WEIGHT_KINDS)})")
        if len(set(self.weight_kinds)) != len(self.weight_kinds):
            raise ConfigError("weight_kinds lists a kind twice")
        _range("pipeline", self.pipeline, 0, self.tree_levels)
        if not isinstance(self.max_fan_in, int) or isinstance(self.max_fan_in, bool):
            raise ConfigError(f"max_fan_in must be an integer, got {self.max_fan_in!r}")
        _range("max_fan_in", self.max_fan_in, 1, self.weight_depth * self.simd)
        for name in ("weight_reg", "addr_reg", "chain", "lane_reg"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.chain and not (self.weight_reg and self.addr_reg):
            raise ConfigError("chain needs weight_reg and addr_reg (each slice registers its "
                              "input and its bank's output)")
        if self.acc_bits is not None:
            if not isinstance(self.acc_bits, int) or isinstance(self.acc_bits, bool):
                raise ConfigError(f"acc_bits must be an integer, got {self.acc_bits!r}")
            need = self.min_acc_bits()
            if not need <= self.acc_bits <= MAX_ACC_BITS:
                raise ConfigError(f"acc_bits={self.acc_bits} must lie in {need}..{MAX_ACC_BITS}: "
                                  f"{need} bits hold every accumulator of a "
                                  f"{self.max_fan_in}-lane fan-in with {self.act_bits}-bit inputs")
        return self

    # -- derived quantities -------------------------------------------------

    @property
    def lanes(self):
        """P * S, the lane operations per cycle."""
        return self.pe * self.simd

    @property
    def ternary(self):
        """Whether the banks hold mask words: a masked kind (ternary, pow2-*) is built in."""
        return any(KINDS[k].masked for k in self.weight_kinds)

    @property
    def weight_planes(self):
        """The most weight planes of a built-in kind (1 for binary and ternary): the
        accumulators shift between planes (Horner) when it is above 1."""
        return max(KINDS[k].n_planes for k in self.weight_kinds)

    @property
    def bit_serial(self):
        return self.act_bits > 1

    @property
    def ops(self):
        """Lane operation codes this core implements (see :mod:`tritium.hw.lanes`)."""
        ops = [OP_MXNOR if self.ternary else OP_XNOR]
        if self.bit_serial:
            ops.append(OP_AND_S)
            if self.ternary:
                ops.append(OP_AND_M)
        return tuple(ops)

    @property
    def weight_width(self):
        """Bits per weight-bank word: S sign bits, then S mask bits when ternary."""
        return self.simd * (2 if self.ternary else 1)

    @property
    def n_thresholds(self):
        return (1 << self.out_bits) - 1

    @property
    def pop_bits(self):
        """Width of a popcount of S lanes."""
        return self.simd.bit_length()

    @property
    def tree_levels(self):
        """Levels of the popcount tree of S lanes (the pipeline can register each)."""
        return tree_levels(self.simd)

    @property
    def padded_fan_in(self):
        """``max_fan_in`` rounded up to whole words: the lanes a row of the longest
        fan-in occupies (padding lanes count in the bipolar popcounts)."""
        return -(-self.max_fan_in // self.simd) * self.simd

    @property
    def w_addr_bits(self):
        return max(1, _ceil_log2(self.weight_depth))

    @property
    def t_addr_bits(self):
        return max(1, _ceil_log2(self.thr_depth))

    @property
    def data_every_step(self):
        """Whether data registers after the PE array's accumulators (the output register,
        the threshold unit's, the accelerator's register of the core's results) load on
        every step, without an enable from the valid bits or a reset: on the large
        ECP5-class arrays (``weight_reg``) those would be nets to all P * acc_bits
        flip-flops; an iCE40 flip-flop's enable and reset are free, so they stay there."""
        return self.weight_reg

    @property
    def pe_latency(self):
        """Cycles from a PE's inputs (x, sign, mask) to its popcount at the accumulator: the
        lane register (``lane_reg``) and the popcount tree's registers (``pipeline``)."""
        return self.pipeline + int(self.lane_reg)

    @property
    def latency(self):
        """Cycles from an accepted input word to its result leaving the threshold unit
        (no stalls): weight read, popcount registers, accumulate, threshold read and its
        register."""
        stages = int(self.addr_reg) + 1 + int(self.weight_reg) + self.pe_latency + 1 + THRESHOLD_STAGES
        # The chain: slice p is p cycles behind slice 0; a compare stage (D and thresholds
        # in fabric registers); the activation vector leaves the last slice's register.
        return stages + (self.pe + CHAIN_COMPARE_STAGES if self.chain else 0)

    def max_abs_result(self):
        """Largest |value| the accumulators, the input counter and D can take.

        With Fp = :attr:`padded_fan_in` and K = ``act_bits``: a bipolar word adds
        ``2 * popcount <= 2S`` (``dbl``), so bipolar results lie in ``[0, 2Fp]``.
        A bit plane adds at most ``2Fp`` in magnitude over its words (``and_s``
        doubled, ``and_m`` at most ``Fp`` the other way), and Horner doubles
        what came before, so after K planes ``|A| <= 2Fp * (2**K - 1)``; the
        input counter ``|Q| <= Fp * (2**K - 1)`` and ``|D| = |A - Q|`` stay
        inside the same bound. With P weight planes every (weight plane, bit plane)
        term adds at most ``2Fp`` (``Fp`` to Q) and Horner weighs term ``(e, b)`` by
        ``2**(e+b)``, so ``|A| <= 2Fp * (2**K - 1) * (2**P - 1)`` (bipolar inputs: K = 1
        in effect, below that bound). Folded thresholds are clamped to the signed
        range by the compiler, which is exact as long as "never" lies past
        every result (:meth:`min_acc_bits` keeps one value of margin).
        """
        return 2 * self.padded_fan_in * ((1 << self.act_bits) - 1) * ((1 << self.weight_planes) - 1)

    def min_acc_bits(self):
        """Signed width whose largest value (the "never" threshold) exceeds every result."""
        return (self.max_abs_result() + 1).bit_length() + 1

    # -- canonical form and hash -------------------------------------------

    def canonical(self):
        """The canonical configuration: a dict of every hardware-relevant field."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["weight_kinds"] = sorted(self.weight_kinds)
        for name in ("chain", "lane_reg"):      # added later: configurations without them
            if not d[name]:                     # keep their hash
                del d[name]
        d["config_version"] = CONFIG_VERSION
        return d

    def canonical_json(self):
        return json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))

    @property
    def hash(self):
        return config_hash(self)

    def describe(self):
        kinds = "+".join(self.weight_kinds)
        act = "bipolar" if self.act_bits == 1 else f"bipolar+{self.act_bits}-bit"
        return f"P={self.pe} S={self.simd} ({self.lanes} lanes), {kinds} weights, {act} inputs"


def config_hash(config):
    """Stable hash of a :class:`HwConfig` (or its canonical dict): 16 hex digits of SHA-256."""
    canon = config.canonical() if isinstance(config, HwConfig) else dict(config)
    text = json.dumps(canon, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


#: Core fields a configuration must give; every other field has a default (docs/config.md).
REQUIRED_FIELDS = ("pe", "simd")


def versioned_fields(d, version_key, version, known, what="configuration", prefix=""):
    """Copy of a configuration dict without its version key (optional; it must equal
    ``version`` when given); refuses anything but a dict, and a field outside ``known``,
    named with ``prefix`` as in the configuration file (one line each)."""
    if not isinstance(d, dict):
        raise ConfigError(f"{what} must be a JSON object of fields, got {d!r}")
    d = dict(d)
    found = d.pop(version_key, version)
    if found != version:
        raise ConfigError(f"{what} version {found} is not supported "
                          f"(this tritium reads version {version})")
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ConfigError(f"unknown configuration field {prefix}{unknown[0]} (the {what} has "
                          f"{', '.join(sorted(known))}; docs/config.md)")
    return d


def config_from_dict(d, prefix=""):
    """A :class:`HwConfig` from its fields as a configuration file gives them
    (:meth:`HwConfig.canonical` output is one such dict): ``pe`` and ``simd`` are
    required, every other field has its default; checked, one-line errors that name
    the field (with ``prefix``, e.g. ``"core."``)."""
    d = versioned_fields(d, "config_version", CONFIG_VERSION, {f.name for f in fields(HwConfig)},
                         "core configuration", prefix)
    for name in REQUIRED_FIELDS:
        if name not in d:
            raise ConfigError(f"configuration field {prefix}{name} is missing (required: "
                              f"{', '.join(prefix + n for n in REQUIRED_FIELDS)}; docs/config.md)")
    kinds = d.get("weight_kinds", ["binary"])
    if isinstance(kinds, list) and all(isinstance(k, str) for k in kinds):
        kinds = tuple(kinds)
    elif not isinstance(kinds, str):
        raise ConfigError(f"{prefix}weight_kinds must be a list of {', '.join(WEIGHT_KINDS)}, "
                          f"got {kinds!r}")
    d["weight_kinds"] = kinds
    return HwConfig(**d)


def largest_divisor(s, p):
    """The largest divisor of ``s`` that is at most ``p`` (a P that S lanes can hold)."""
    return max(d for d in range(1, p + 1) if s % d == 0)


def _range(name, value, lo, hi):
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value} is out of range {lo}..{hi}")


__all__ = ["HwConfig", "ConfigError", "config_hash", "config_from_dict", "CONFIG_VERSION",
           "REQUIRED_FIELDS",
           "OP_XNOR", "OP_MXNOR", "OP_AND_S", "OP_AND_M", "OP_NAMES", "WEIGHT_KINDS"]
