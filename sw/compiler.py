"""The compiler: integer IR + accelerator configuration -> program and memory images.

Small passes over a typed plan (docs/accelerator.md describes the target):

1. :func:`lower`     IR layers -> one :class:`LayerPlan` per weight layer, a
                     following max-pool fused in, geometry of every window;
2. :func:`check`     refuse what the configuration cannot run, naming the
                     layer, the reason and a configuration that would work;
3. :func:`allocate`  activation buffers (ping-pong), weight-bank words,
                     threshold sets, result entries;
   :func:`stream`    when the weights do not fit the banks (and the accelerator
                     has a weight store): neuron-fold chunks that ``LOAD_W``
                     copies into alternate halves of the banks;
   :func:`segment`   when the weights do not fit the banks and there is no
                     store, or the first layer's input does not fit a buffer:
                     *segments*, program runs with the host writing the next
                     layers' weights (and the next band of the input) between
                     them;
4. :func:`memories`  weight-bank, weight-store and threshold-memory images,
                     row constants;
5. :func:`emit`      the program (:mod:`tritium.hw.isa` words).

:func:`compile_model` runs them all and returns a :class:`Compiled` model;
:mod:`tritium.sw.image` writes it to files.
"""

import hashlib
from dataclasses import dataclass, field

import numpy as np

from ..hw import isa
from ..hw.accel_config import Timeline
from ..hw.contract import folded_thresholds, never, row_offsets
from ..hw.errors import TritiumError
from ..hw.isa import Opcode
from ..hw.packing import to_planes
from .ir import Conv2d, Dense, MaxPool2d


class CompileError(TritiumError):
    """The model cannot run on this accelerator; the message says why and what would."""


@dataclass
class LayerPlan:
    """One RUN: an IR weight layer (with a fused max-pool) mapped onto the array."""

    index: int
    name: str
    layer: object
    in_act: object
    out_act: object            # None: raw accumulators
    pool: int                  # max-pool window = stride; 1: none
    pool_name: str | None
    # input tensor and window
    in_h: int
    in_w: int
    in_c: int
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    pad_value: int
    # output tensor (after pooling)
    conv_h: int
    conv_w: int
    out_h: int
    out_w: int
    m: int
    # filled by allocate / memories
    in_buf: int = 0
    out_buf: int = 1
    w_base: int = 0
    t_base: int = 0
    res_base: int = 0
    row_constants: np.ndarray | None = None
    #: Images of the batch this RUN loops over (CFG_IN.extra_images + 1): its input and
    #: output tensors hold them one after another. 1 where the images are rows of the
    #: tensors instead (:func:`stack_images`) or the batch is 1.
    images: int = 1
    #: The host unfolds this first convolution's windows (im2col): the RUN sees
    #: a 1x1 window over pixels holding whole patches. None, or
    #: {"kernel", "stride", "padding", "pad_value", "channels"} of the original.
    unfold: dict | None = None
    #: Weight streaming: the :class:`Chunk` RUNs of this layer (None: one RUN, resident weights).
    chunks: list | None = None
    #: Segments: the weight phase of this layer (the segments that hold its weights).
    phase: int = 0
    #: Segments, first layer only: ``[(first output row, rows), ...]``, one RUN (and one
    #: segment) per band of the input that fits a buffer; None: the whole input at once.
    bands: list | None = None

    # -- derived geometry ----------------------------------------------------

    @property
    def planes(self):
        return self.in_act.bits

    @property
    def bipolar(self):
        return self.in_act.kind == "bipolar"

    @property
    def signed(self):
        return self.in_act.kind == "signed"

    @property
    def ternary(self):
        return self.layer.weight_kind == "ternary"

    @property
    def raw(self):
        return self.out_act is None

    @property
    def out_bits(self):
        return 0 if self.out_act is None else self.out_act.bits

    def in_cw(self, simd):
        return words_for_lanes(self.in_c, simd)

    def out_cw(self, simd):
        return words_for_lanes(self.m, simd)

    def tiles(self, pe):
        return -(-self.m // pe)

    def words_per_row(self, simd):
        return self.kh * self.kw * self.in_cw(simd)

    def pad_code(self):
        """Bit b: plane b of the pad value's code."""
        if self.bipolar:
            return 1 if self.pad_value > 0 else 0
        return self.pad_value & ((1 << self.planes) - 1)

    def last_lanes(self, simd):
        return self.in_c - (self.in_cw(simd) - 1) * simd

    def beats(self, cfg, tiles=None, rows=None):
        """Input words the RUN sends through the array (docs/accelerator.md, Timing);
        ``tiles``: a RUN over that many neuron folds (default: all); ``rows``: over that
        many output rows (a band; default: all)."""
        per_word = 2 if (self.ternary and not self.bipolar) else 1
        tiles = self.tiles(cfg.pe) if tiles is None else tiles
        rows = self.out_h if rows is None else rows
        return (self.images * rows * self.out_w * tiles * self.pool ** 2 * self.planes
                * self.words_per_row(cfg.simd) * per_word)

    def runs(self, cfg):
        """The beats of each of this layer's RUNs (chunks, bands or the one RUN)."""
        if self.chunks:
            return [self.beats(cfg, c.tiles) for c in self.chunks]
        if self.bands:
            return [self.beats(cfg, rows=rows) for _, rows in self.bands]
        return [self.beats(cfg)]

    def in_row_words(self, simd):
        """Words of one row of the input tensor."""
        return self.in_w * self.planes * self.in_cw(simd)

    def out_row_words(self, simd):
        """Words of one row of the output tensor."""
        return self.out_w * max(1, self.out_bits) * self.out_cw(simd)

    def cycles(self, cfg):
        return self.beats(cfg) + cfg.run_drain()

    def useful_lane_ops(self):
        return (self.images * self.out_h * self.out_w * self.pool ** 2 * self.m * self.kh
                * self.kw * self.in_c * self.planes)

    def in_words(self, simd):
        """Words of the input tensor (every image of the RUN)."""
        return self.images * self.in_h * self.in_w * self.planes * self.in_cw(simd)

    def out_words(self, simd):
        """Words of the output tensor (every image of the RUN)."""
        return self.images * self.out_h * self.out_w * max(1, self.out_bits) * self.out_cw(simd)


def words_for_lanes(n, simd):
    return -(-int(n) // simd)


@dataclass
class Chunk:
    """One RUN of a streamed layer: neuron folds ``first .. first + tiles - 1``.

    ``LOAD_W`` copies its ``P x tiles x words_per_row`` words from weight-store
    word ``src`` (bank-major) to bank words ``w_base ..``, one half of the banks.
    """

    first: int
    tiles: int
    w_base: int
    src: int


@dataclass
class Segment:
    """One program run of a model that runs in several (docs/accelerator.md, "Segments").

    Before the run the host writes the segment's program, weight banks and
    threshold memories (each a whole image, as in a model image) and, when
    ``input_words`` is set, words ``first .. end - 1`` of the packed network
    input into activation buffer 0 from address 0. On an accelerator with a weight
    store whose model streams in several weight phases, it writes ``store_words``
    too (the phase's streamed weights). The activation buffers keep what earlier
    segments wrote. A run of the same weight phase as the run before it (a band of
    the first layer's input after the first, a later part of a streamed phase) has
    ``weight_banks`` and ``threshold_banks`` None: the memories keep their words
    (LOAD_W copies included), and its model image has no WEIGHTS or THRESHOLDS.
    """

    program: list
    weight_banks: list | None       # None: the banks keep their words
    threshold_banks: list | None    # None: the threshold memories keep their words
    input_words: tuple | None      # (first, end) of pack_input's words; None: no input write
    store_words: list | None = None  # this run's weight-store image ([]: the store keeps its
                                     # words; None: the model's, ``Compiled.store_words``)


@dataclass
class Compiled:
    """A model compiled for one accelerator configuration.

    ``io`` is everything the host needs besides the memory images (also stored
    in the model image): the input tensor's layout, the result entries and
    row constants of the last layer, and per-layer figures.

    ``program``, ``weight_banks`` and ``threshold_banks`` are the memories of
    the first (often the only) program run; a model that runs in segments
    lists every run in ``segments`` (:meth:`runs` gives them either way).
    """

    config: object                 # AccelConfig
    program: list                  # instruction words (ints)
    weight_banks: list             # [p] -> list of weight_depth ints
    threshold_banks: list          # [p] -> list of thr_depth lists of n_thresholds ints
    io: dict
    meta: dict
    plans: list | None = None      # compile-time plans (absent when loaded from an image)
    store_words: list = field(default_factory=list)   # weight-store image (weight streaming)
    segments: list = field(default_factory=list)      # [Segment] when the model runs in several
    segment_index: int | None = None                  # which one, in a segment's own image

    @property
    def batch(self):
        return self.io["batch"]

    @property
    def cycles_per_run(self):
        """Cycles from ``start`` to ``done`` of the program runs of one batch (summed over
        the segments; the ISA simulator's count, :func:`program_timing`)."""
        return self.io["cycles"]

    @property
    def cycles_per_image(self):
        return self.cycles_per_run / self.batch

    def runs(self):
        """The program runs of one batch, as :class:`Segment` (one for a model that is not
        segmented: its memories, the whole input)."""
        if self.segments:
            return list(self.segments)
        return [Segment(self.program, self.weight_banks, self.threshold_banks, (0, None))]

    def segment(self, k):
        """Segment ``k`` as a model of its own (its memories; the same io and meta): what
        one model image holds."""
        seg = self.runs()[k]
        return Compiled(config=self.config, program=seg.program, weight_banks=seg.weight_banks,
                        threshold_banks=seg.threshold_banks, io=self.io, meta=self.meta,
                        store_words=(self.store_words if seg.store_words is None
                                     else seg.store_words),
                        segment_index=k if self.segments else None)


def io_description(plans, cfg, batch, programs):
    """The host-side description of a compiled model (JSON-compatible).

    Per layer: its RUNs, their beats, and its cycles (RUNs plus the cycles the
    controller waits for ``LOAD_W`` copies before them: :func:`program_timing`).
    ``programs``: the program of each run of a batch (one unless segmented).
    The run cycles start with the instructions before a layer's first RUN.
    """
    first, last = plans[0], plans[-1]
    runs = [(p.index, beats) for p in plans for beats in p.runs(cfg)]
    total, layer_cycles, per_program = 0, [0] * len(plans), []
    for program in programs:
        n = sum(isa.decode(w)[0] == Opcode.RUN for w in program)
        cycles, layers = program_timing(program, runs[:n], len(plans), cfg)
        runs = runs[n:]
        total += cycles
        per_program.append(cycles)
        layer_cycles = [a + b for a, b in zip(layer_cycles, layers)]
    io = {
        "batch": batch,
        # A run's tensors: its images one after another (h: the rows of all of them).
        "input": {"h": first.images * first.in_h, "w": first.in_w, "c": first.in_c,
                  "act": str(first.in_act), "unfold": first.unfold},
        "output": {"h": last.images * last.out_h, "w": last.out_w, "m": last.m,
                   "tiles": last.tiles(cfg.pe),
                   "res_base": last.res_base, "row_constants": [int(k) for k in last.row_constants]},
        "cycles": total,
        "layers": [{"name": p.name, "pool": p.pool_name, "beats": sum(p.runs(cfg)),
                    "runs": len(p.runs(cfg)), "cycles": c, "useful_lane_ops": p.useful_lane_ops(),
                    "utilization": p.useful_lane_ops() / (cfg.core.lanes * c)}
                   for p, c in zip(plans, layer_cycles)],
    }
    if len(programs) > 1:
        io["segments"] = [{"cycles": c} for c in per_program]
    return io


def program_timing(program, runs, n_layers, cfg):
    """Cycles of one program run and of each layer, from the program and its RUNs
    (``runs``: ``(layer index, beats)`` of each RUN, in order).

    Follows :class:`tritium.hw.accel_config.Timeline`, as the ISA-level
    simulator does; the RTL agrees (tests/test_accel.py).
    """
    t, layer_cycles, k = Timeline(cfg), [0] * n_layers, 0
    for word in program:
        opcode, args = isa.decode(word)
        if opcode == Opcode.RUN:
            layer, beats = runs[k]
            layer_cycles[layer] += t.run(beats, args["wait_w"])
            k += 1
        elif opcode == Opcode.LOAD_W:
            t.load(args["count"])
        elif opcode == Opcode.END:
            t.end()
            break
        else:
            t.step()
    return t.cycles, layer_cycles


# ---------------------------------------------------------------- 1. lower

def lower(model, batch=1):
    """IR -> list of :class:`LayerPlan` (max-pools fused into the layer before them).

    ``batch`` > 1 runs that many images per program: every layer's RUN goes
    through all of them (``plan.images``; :func:`stack_images` turns them into
    rows where it can), so the drain latency of each RUN is paid once per batch
    instead of once per image.
    """
    infos = model.check()
    if batch < 1:
        raise CompileError("batch must be at least 1")
    plans = []
    layers = list(zip(model.layers, infos))
    i = 0
    while i < len(layers):
        layer, info = layers[i]
        if isinstance(layer, MaxPool2d):
            raise CompileError(f"layer {layer.name}: a max-pool must follow a convolution or "
                               "fully connected layer (the accelerator fuses it into that layer)")
        pool, pool_name = 1, None
        if i + 1 < len(layers) and isinstance(layers[i + 1][0], MaxPool2d):
            p = layers[i + 1][0]
            if p.kernel[0] != p.kernel[1] or p.stride != p.kernel:
                raise CompileError(f"layer {p.name}: the accelerator pools square windows with "
                                   f"stride = kernel, got kernel {p.kernel} stride {p.stride}")
            if info.out_act is None:
                raise CompileError(f"layer {p.name}: pooling raw accumulators is not supported")
            pool, pool_name = p.kernel[0], p.name
            i += 1
        plans.append(_plan(len(plans), layer, info, pool, pool_name, first=not plans))
        i += 1
    for p in plans:
        p.images = batch
    return plans


def stack_images(plans):
    """Pass: a batch's images as rows where a layer's window allows it.

    A layer with a 1x1 window, stride 1 and no padding (a fully connected layer
    over a flat input, an unfolded first convolution) reads each output row's own
    input row, so the images of its batch can simply be more rows of one tensor
    (``in_h`` x images, in the order the image loop keeps them): no image loop is
    needed, and the first layer's input can be written in bands of those rows
    (:func:`segment`). Pooling must not straddle two images (``in_h`` a multiple of
    the pool). Other layers keep ``images`` for the accelerator's image loop.
    """
    for p in plans:
        if (p.images > 1 and (p.kh, p.kw, p.sh, p.sw, p.ph, p.pw) == (1, 1, 1, 1, 0, 0)
                and p.in_h % p.pool == 0):
            p.in_h, p.conv_h, p.out_h = (p.images * v for v in (p.in_h, p.conv_h, p.out_h))
            p.images = 1
    return plans


def _plan(index, layer, info, pool, pool_name, first, simd=None):
    in_shape, act = info.in_shape, info.in_act
    pad = act.zero_code_value
    if isinstance(layer, Conv2d):
        h, w, c = in_shape
        (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.padding
        if layer.pad_value is not None:
            pad = layer.pad_value
    elif len(in_shape) == 1 or first:
        # Flat input: one pixel of F channels (the host packs it densely).
        h, w, c = 1, 1, int(np.prod(in_shape))
        kh = kw = sh = sw = 1
        ph = pw = 0
    else:
        # Fully connected over a spatial tensor: a window covering all of it.
        h, w, c = in_shape
        kh, kw, sh, sw, ph, pw = h, w, 1, 1, 0, 0
    conv_h = (h + 2 * ph - kh) // sh + 1
    conv_w = (w + 2 * pw - kw) // sw + 1
    plan = LayerPlan(index=index, name=layer.name, layer=layer, in_act=act, out_act=info.out_act,
                     pool=pool, pool_name=pool_name, in_h=h, in_w=w, in_c=c, kh=kh, kw=kw, sh=sh,
                     sw=sw, ph=ph, pw=pw, pad_value=pad, conv_h=conv_h, conv_w=conv_w,
                     out_h=conv_h // pool, out_w=conv_w // pool, m=layer.out_channels)
    return plan


def unfold_first_layer(plans, simd):
    """Pass: let the host unfold the first convolution's windows when that packs lanes better.

    A first convolution over few channels (RGB or grey pixels) wastes most
    lanes of every word (3 channels in 64 lanes). The host, which writes the
    input anyway, can write each output pixel's whole window (kh*kw*C values,
    padding included) as the channels of one pixel; the RUN becomes a 1x1
    window. The weight rows keep their (ky, kx, channel) order, which is the
    patch order. Done when it reduces the words per row.
    """
    p = plans[0]
    if not isinstance(p.layer, Conv2d) or (p.kh, p.kw) == (1, 1):
        return plans
    patch = p.kh * p.kw * p.in_c
    if words_for_lanes(patch, simd) >= p.words_per_row(simd):
        return plans
    p.unfold = {"kernel": [p.kh, p.kw], "stride": [p.sh, p.sw], "padding": [p.ph, p.pw],
                "pad_value": int(p.pad_value), "channels": p.in_c, "height": p.in_h, "width": p.in_w}
    p.in_h, p.in_w, p.in_c = p.conv_h, p.conv_w, patch
    p.kh = p.kw = p.sh = p.sw = 1
    p.ph = p.pw = 0
    return plans


# ---------------------------------------------------------------- 2. check

_ISA_LIMITS = {f.name: f for spec in isa.INSTRUCTIONS.values() for f in spec.fields}


def check(plans, cfg):
    """Refuse, with one line naming the layer, what ``cfg`` cannot run."""
    core = cfg.core
    for p in plans:
        where = f"layer {p.name}"
        if p.images > cfg.max_images:
            raise CompileError(f"{where}: a batch of {p.images} images needs an accelerator whose "
                               f"RUNs loop over that many images (max_images >= {p.images}; this "
                               f"one: {cfg.max_images}): use a batch of at most {cfg.max_images} "
                               f"for networks with convolutions")
        if p.layer.weight_kind not in core.weight_kinds:
            kinds = ",".join(sorted(set(core.weight_kinds) | {p.layer.weight_kind}))
            raise CompileError(f"{where}: {p.layer.weight_kind} weights need a core built with them "
                               f"(this one: {', '.join(core.weight_kinds)}; a configuration with "
                               f"weight_kinds {kinds} runs it)")
        if not p.bipolar and (p.planes > core.act_bits or not core.bit_serial):
            need = max(2, p.planes)
            raise CompileError(f"{where}: {p.in_act} inputs need a bit-serial core with act_bits "
                               f">= {need} (this core: {core.act_bits}; a configuration with "
                               f"act_bits {need} runs it)")
        if p.out_bits > core.out_bits:
            raise CompileError(f"{where}: {p.out_act} outputs need out_bits >= {p.out_bits} "
                               f"(this core: {core.out_bits})")
        if p.out_act is not None and p.out_act.kind not in ("bipolar", "unsigned"):
            raise CompileError(f"{where}: {p.out_act} outputs are not supported")
        for name, value in (("kh", p.kh), ("kw", p.kw), ("sh", p.sh), ("sw", p.sw), ("ph", p.ph),
                            ("pw", p.pw), ("in_h", p.in_h), ("in_w", p.in_w),
                            ("in_cw", p.in_cw(core.simd)), ("out_cw", p.out_cw(core.simd)),
                            ("tiles", p.tiles(core.pe)), ("pool", p.pool)):
            if value > _ISA_LIMITS[name].largest:
                raise CompileError(f"{where}: {name} = {value} exceeds the ISA's limit "
                                   f"{_ISA_LIMITS[name].largest}")
        # The core's accumulators are sized for rows of padded_fan_in lanes
        # (hw/config.py, max_abs_result): a longer row could overflow them.
        row_lanes = p.words_per_row(core.simd) * core.simd
        if p.words_per_row(core.simd) > core.weight_depth:
            raise CompileError(f"{where}: a weight row takes {p.words_per_row(core.simd)} words, "
                               f"a bank holds {core.weight_depth} (try a configuration with "
                               f"weight_depth "
                               f"{_pow2(p.words_per_row(core.simd))})")
        if row_lanes > core.padded_fan_in:
            raise CompileError(f"{where}: a weight row takes {row_lanes} lanes, this core's "
                               f"accumulators are sized for max_fan_in {core.max_fan_in} "
                               f"(try a core with max_fan_in >= {row_lanes})")
        for label, words in (("input", p.in_words(core.simd)), ("output", p.out_words(core.simd))):
            if label == "input" and p.index == 0 and bandable(p, cfg):
                continue            # the host writes it in bands (segment)
            if not p.raw or label == "input":
                if words > cfg.act_depth:
                    raise CompileError(f"{where}: the {label} tensor takes {words} words, an "
                                       f"activation buffer holds {cfg.act_depth} (try a "
                                       f"configuration with act_depth "
                                       f"{_pow2(words)})")
        if not cfg.store_depth:
            w_layer = p.tiles(core.pe) * p.words_per_row(core.simd)
            if w_layer > core.weight_depth:
                raise CompileError(f"{where}: its weights take {w_layer} words per bank, the core "
                                   f"has {core.weight_depth} (try a configuration with "
                                   f"weight_depth {_pow2(w_layer)}, "
                                   f"more PEs, or a weight store to stream them from)")
        if not p.raw and p.tiles(core.pe) > core.thr_depth:
            raise CompileError(f"{where}: its thresholds take {p.tiles(core.pe)} sets per PE, "
                               f"the core has {core.thr_depth} (try a configuration with thr_depth "
                               f"{_pow2(p.tiles(core.pe))})")
    last = plans[-1]
    if not last.raw:
        raise CompileError(f"layer {last.name}: the last layer must output raw accumulators")
    if any(p.raw for p in plans[:-1]):
        raise CompileError("only the last layer may output raw accumulators")
    entries = last.images * last.out_h * last.out_w * last.tiles(core.pe)
    if entries > cfg.res_depth:
        raise CompileError(f"layer {last.name}: {entries} result entries, the result memory holds "
                           f"{cfg.res_depth} (try a configuration with res_depth {_pow2(entries)})")
    return plans


def bandable(plan, cfg):
    """Whether the host can write the first layer's input in bands of rows, one segment
    each: a 1x1 window with stride 1 (a dense layer or an unfolded convolution) on an
    accelerator without a weight store (whose streamed program is one run)."""
    return (not cfg.store_depth and (plan.kh, plan.kw, plan.sh, plan.sw, plan.ph, plan.pw)
            == (1, 1, 1, 1, 0, 0))


def _pow2(n):
    return 1 << max(1, (int(n) - 1).bit_length())


# ---------------------------------------------------------------- 3. allocate

def allocate(plans, cfg):
    """Buffers alternate 0 -> 1 -> 0 ...; weights, thresholds and results stack up (from 0
    again in each weight phase of a segmented model, :func:`segment`)."""
    w_base = t_base = 0
    for i, p in enumerate(plans):
        if i and p.phase != plans[i - 1].phase:
            w_base = t_base = 0
        p.in_buf, p.out_buf = i % 2, (i + 1) % 2
        p.w_base, p.t_base = w_base, t_base
        w_base += p.tiles(cfg.pe) * p.words_per_row(cfg.simd)
        if not p.raw:
            t_base += p.tiles(cfg.pe)
    return plans


def segment(plans, cfg):
    """Pass: segments, when the model does not fit the accelerator at once
    (docs/accelerator.md, "Segments").

    * **Weight phases.** Consecutive layers are grouped, greedily, into phases whose
      weights fit the banks (or, on an accelerator with a weight store, the banks or
      the store to stream from) and whose thresholds fit the threshold memories
      (``plan.phase``). The host writes a phase's weights and thresholds (with the
      program, and the weight store's image) before the phase's first program run.
    * **Input bands.** A first layer whose input does not fit an activation buffer (a
      1x1 window with stride 1: a dense layer or an unfolded convolution, whose output
      rows each read their own input rows) runs in bands of output rows
      (``plan.bands``), one program run each; before each, the host writes that band's
      input rows into buffer 0 from address 0. The band's output rows go where the
      whole layer would write them.

    Each band but the last is a segment of its own; the last band's run goes on with the
    rest of the first phase, and every later phase is one segment. The activation
    buffers keep their contents from run to run. Input bands need an accelerator
    without a weight store (:func:`bandable`).
    """
    core = cfg.core

    def fits(w_words):      # bank words per PE of a phase: resident, or streamed from the store
        return (w_words <= core.weight_depth
                or (cfg.store_depth and core.pe * w_words <= cfg.store_depth))

    phase = w_words = t_sets = 0
    for i, p in enumerate(plans):
        w = p.tiles(core.pe) * p.words_per_row(core.simd)
        t = 0 if p.raw else p.tiles(core.pe)
        if i and (not fits(w_words + w) or t_sets + t > core.thr_depth):
            phase, w_words, t_sets = phase + 1, 0, 0
        p.phase, w_words, t_sets = phase, w_words + w, t_sets + t
    first = plans[0]
    if not cfg.store_depth and first.in_words(core.simd) > cfg.act_depth:
        if first.images > 1:
            words = first.in_words(core.simd)
            smaller = max(1, cfg.act_depth * first.images // words)    # a batch whose input fits
            raise CompileError(f"layer {first.name}: the input of a batch of {first.images} "
                               f"takes {words} words, an activation buffer holds "
                               f"{cfg.act_depth}, and only rows of one image run in bands "
                               f"(try a batch of {smaller})")
        in_rows = cfg.act_depth // first.in_row_words(core.simd)      # input rows a buffer holds
        rows = in_rows // first.pool                                   # output rows a band makes
        if rows < 1:
            raise CompileError(f"layer {first.name}: {first.pool} input row(s) take "
                               f"{first.pool * first.in_row_words(core.simd)} words, an activation "
                               f"buffer holds {cfg.act_depth} (try a configuration with act_depth "
                               f"{_pow2(first.pool * first.in_row_words(core.simd))})")
        first.bands = [(r, min(rows, first.out_h - r)) for r in range(0, first.out_h, rows)]
    return plans


def stream(plans, cfg):
    """Pass: neuron-fold chunks when the weights do not fit the banks (weight streaming).

    Each layer is split into chunks of whole neuron folds whose weights fit half
    a bank; chunk ``i`` (counting over the whole program) lives in half ``i % 2``.
    :func:`emit` starts ``LOAD_W`` of chunk ``i + 1`` before the RUN of chunk
    ``i``, so the copy (``P`` cycles per bank word) hides under the RUN (one
    cycle per beat, ``batch`` beats per weight word and more). The first chunk
    is small, so the program waits little for its copy; the sizes then grow as
    far as each copy still hides under the RUN before it. Where a layer's copies
    cannot hide (fewer positions than P, e.g. batch 1), its chunks are as large
    as half a bank allows.
    """
    if not cfg.store_depth:
        return plans            # resident weights, or segments (:func:`segment`)
    for k in range(plans[-1].phase + 1):     # each weight phase streams from a store of its own
        _stream_phase([p for p in plans if p.phase == k], cfg)
    return plans


def _stream_phase(plans, cfg):
    """:func:`stream` of one weight phase (one program run; its store image from word 0)."""
    core, s, pe = cfg.core, cfg.simd, cfg.pe
    if sum(p.tiles(pe) * p.words_per_row(s) for p in plans) <= core.weight_depth:
        return plans            # resident weights
    half = core.weight_depth // 2
    per_word = s // pe
    for p in plans:
        wpr = p.words_per_row(s)
        if wpr > half:
            raise CompileError(f"layer {p.name}: weight streaming needs a weight row ({wpr} words) "
                               f"to fit half a bank ({half} words) (try a configuration with "
                               f"weight_depth "
                               f"{_pow2(2 * wpr)})")
        if p.out_bits > 1:
            raise CompileError(f"layer {p.name}: weight streaming needs 1-bit outputs "
                               f"(this layer has {p.out_act})")
        if p.raw and p.tiles(pe) * wpr > half:
            raise CompileError(f"layer {p.name}: the last layer (raw outputs) must fit half a bank "
                               f"when weights stream: {p.tiles(pe) * wpr} words, half a bank is "
                               f"{half} (try a configuration with weight_depth "
                               f"{_pow2(2 * p.tiles(pe) * wpr)})")
    if per_word - 1 > _ISA_LIMITS["out_slot"].largest:
        raise CompileError(f"weight streaming needs S / P <= {_ISA_LIMITS['out_slot'].largest + 1}")
    src, index, prev_run = 0, 0, None
    for p in plans:
        wpr, per_tile = p.words_per_row(s), p.beats(cfg, 1)
        n_max = half // wpr
        load = lambda n: cfg.load_cycles(n * wpr)                       # noqa: E731
        run = lambda n: n * per_tile + cfg.run_drain()                  # noqa: E731
        p.chunks, first, left = [], 0, p.tiles(pe)
        hides = run(n_max) >= load(n_max)       # a fold takes longer to run than to copy
        while left:
            if not hides:              # copies set the pace: fewest chunks, fewest instructions
                n = n_max
            elif prev_run is None:     # the program's first copy is waited for: keep it short
                n = next((k for k in range(1, n_max + 1)
                          if run(k) >= load(min(n_max, left - k))), n_max)
            else:                      # as large as still hides under the previous RUN
                n = max([k for k in range(1, n_max + 1) if load(k) <= prev_run] or [1])
            n = left if p.raw else min(n, left)     # raw results: one RUN (entry layout)
            if n == n_max:             # from here on, even chunks
                n = -(-left // -(-left // n_max))
            p.chunks.append(Chunk(first=first, tiles=n, w_base=(index % 2) * half, src=src))
            src += pe * n * wpr
            first, left, index, prev_run = first + n, left - n, index + 1, run(n)
    if src > cfg.store_depth:
        names = plans[0].name if len(plans) == 1 else f"{plans[0].name} .. {plans[-1].name}"
        raise CompileError(f"layer {names}: the weights need {src} words of the weight store, "
                           f"it holds {cfg.store_depth} (try a store_depth of {_pow2(src)})")
    limits = {f.name: f.largest for f in isa.INSTRUCTIONS[Opcode.LOAD_W].fields}
    for p in plans:
        for c in p.chunks:
            for name, value in (("count", c.tiles * p.words_per_row(s)), ("src", c.src),
                                ("addr", c.w_base)):
                if value > limits[name]:
                    raise CompileError(f"layer {p.name}: LOAD_W {name} = {value} exceeds the "
                                       f"ISA's limit {limits[name]}")
    return plans


# ---------------------------------------------------------------- 4. memories

def window_rows(values, plan, simd):
    """Weight rows (M, F) -> lane bits (M, words_per_row, S), padded per kernel position."""
    m = values.shape[0]
    groups, c = plan.kh * plan.kw, plan.in_c
    cw = plan.in_cw(simd)
    v = values.reshape(m, groups, c)
    padded = np.zeros((m, groups, cw * simd), values.dtype)
    padded[:, :, :c] = v
    return padded.reshape(m, groups * cw, simd)


def lanes_to_int(bits):
    """Lane bits (..., S) -> Python ints (lane i = bit i)."""
    weights = 1 << np.arange(bits.shape[-1], dtype=object)
    return (bits.astype(object) * weights).sum(axis=-1)


def memories(plans, cfg):
    """Weight-bank, weight-store and threshold-memory images; sets ``plan.row_constants``.

    Resident weights go to the banks: row ``r`` to bank ``r % P`` from word
    ``w_base + (r // P) * words_per_row``. Streamed weights go to the store,
    chunk after chunk, bank-major within a chunk (the order ``LOAD_W`` reads).
    """
    core = cfg.core
    banks = [[0] * core.weight_depth for _ in range(core.pe)]
    store = []
    thresholds = [[[never(core)] * core.n_thresholds for _ in range(core.thr_depth)]
                  for _ in range(core.pe)]
    for p in plans:
        layer, s = p.layer, core.simd
        rows = window_rows(layer.weight_values(), p, s)          # (M, W, S)
        sign = lanes_to_int(rows > 0)
        if core.ternary:
            valid = window_rows(np.ones_like(layer.weight_values()), p, s)
            mask = lanes_to_int((rows != 0) if p.ternary else (valid != 0))
            words = sign + (mask << s)
        else:
            words = sign
        n_words = p.words_per_row(s)
        if p.chunks:
            rows = np.zeros((p.tiles(core.pe) * core.pe, n_words), object)
            rows[:p.m] = words
            rows = rows.reshape(p.tiles(core.pe), core.pe, n_words)
            for c in p.chunks:
                part = rows[c.first:c.first + c.tiles].transpose(1, 0, 2).reshape(-1)
                store += [int(w) for w in part]
        for r in range(0 if p.chunks else p.m):
            base = p.w_base + (r // core.pe) * n_words
            for j in range(n_words):
                banks[r % core.pe][base + j] = int(words[r, j])
        p.row_constants = row_offsets(layer, p.in_act, core, n_words)
        if not p.raw:
            folded = folded_thresholds(layer, p.in_act, core, n_words)
            for pe in range(core.pe):
                for tile, values in enumerate(folded[pe]):
                    thresholds[pe][p.t_base + tile] = list(values)
    return banks, thresholds, store


# ---------------------------------------------------------------- 5. emit

def emit(plans, cfg, band=None, part=None):
    """The program: per layer CFG_IN, CFG_WIN, CFG_OUT, CFG_MEM, RUN; then END.

    A streamed layer has a CFG_OUT, CFG_MEM, RUN per chunk; ``LOAD_W`` of the
    program's first chunk comes first, that of chunk ``i + 1`` right before
    the RUN of chunk ``i`` (it waits for the copy of chunk ``i``), and the last
    RUN waits for its own copy (``wait_w``). ``band``: ``(first output row, rows)``
    of the first layer's RUN (a segment's band; its input rows are in buffer 0 from
    address 0, its output rows go where the whole layer's would). ``part``:
    ``(first, end)`` of the streamed chunks (counted over ``plans``) this program
    runs: a phase whose program is longer than the program memory runs in parts
    (:func:`program_parts`).
    """
    return _fits_program_memory(_emit(plans, cfg, band, part), cfg)


def _fits_program_memory(program, cfg):
    if len(program) > cfg.prog_depth:
        raise CompileError(f"the program has {len(program)} instructions, the program memory "
                           f"holds {cfg.prog_depth} (try a configuration with prog_depth "
                           f"{_pow2(len(program))})")
    return program


def program_parts(plans, cfg):
    """The programs of one weight phase: one, or, when a streamed phase's program is longer
    than the program memory, several runs of consecutive chunks, each as many as fit
    (the weight store and the banks' halves are the same for all; each part's first
    copy is waited for)."""
    program = _emit(plans, cfg)
    n = sum(len(p.chunks or []) for p in plans)
    if len(program) <= cfg.prog_depth or not n:
        return [_fits_program_memory(program, cfg)]
    parts, first = [], 0
    while first < n:
        end = first + 1     # one chunk whose program is too long alone is refused
        program = _fits_program_memory(_emit(plans, cfg, part=(first, end)), cfg)
        while end < n:
            longer = _emit(plans, cfg, part=(first, end + 1))
            if len(longer) > cfg.prog_depth:
                break
            program, end = longer, end + 1
        parts.append(program)
        first = end
    return parts


def _emit(plans, cfg, band=None, part=None):
    s, pe = cfg.simd, cfg.pe
    program = []
    chunks = [(p, c) for p in plans for c in (p.chunks or [])]
    if part is not None:
        chunks = chunks[part[0]:part[1]]
        keep = {id(c) for _, c in chunks}
        plans = [p for p in plans if any(id(c) in keep for c in p.chunks or [])]

    def load(i):
        p, c = chunks[i]
        return _encode(cfg, f"layer {p.name}", Opcode.LOAD_W, addr=c.w_base,
                       count=c.tiles * p.words_per_row(s), src=c.src)

    if chunks:
        program.append(load(0))
    k = 0
    for p in plans:
        where = f"layer {p.name}"
        row0, out_h = band if band is not None and p is plans[0] else (0, p.out_h)
        in_h = out_h * p.pool if band is not None and p is plans[0] else p.in_h
        program += [
            _encode(cfg, where, Opcode.CFG_IN, in_buf=p.in_buf, in_base=0, in_h=in_h, in_w=p.in_w,
                       in_cw=p.in_cw(s), in_planes=p.planes, in_signed=int(p.signed),
                       in_bipolar=int(p.bipolar), extra_images=p.images - 1),
            _encode(cfg, where, Opcode.CFG_WIN, kh=p.kh, kw=p.kw, sh=p.sh, sw=p.sw, ph=p.ph, pw=p.pw,
                       pad_code=p.pad_code(), last_lanes=p.last_lanes(s)),
        ]
        for c in p.chunks or [Chunk(first=0, tiles=p.tiles(pe), w_base=p.w_base, src=0)]:
            if part is not None and id(c) not in keep:
                continue
            wait = 0
            if p.chunks:
                k += 1
                if k < len(chunks):
                    program.append(load(k))
                else:
                    wait = 1
            if p.raw:
                out_base = p.res_base + row0 * p.out_w * p.tiles(pe)
            else:
                out_base = c.first // (s // pe) + row0 * p.out_row_words(s)
            program += [
                _encode(cfg, where, Opcode.CFG_OUT, out_buf=p.out_buf, out_base=out_base, out_h=out_h,
                           out_w=p.out_w, out_cw=p.out_cw(s), out_bits=p.out_bits, pool=p.pool,
                           out_slot=c.first % (s // pe)),
                _encode(cfg, where, Opcode.CFG_MEM, w_base=c.w_base, t_base=p.t_base + c.first,
                           tiles=c.tiles, ternary=int(p.ternary)),
                _encode(cfg, where, Opcode.RUN, wait_w=wait),
            ]
    program.append(isa.encode(Opcode.END))
    return program


def _encode(cfg, where, opcode, **fields):
    """:func:`isa.encode`, refusing (one line naming ``where``) a field past what this
    accelerator's registers hold (:meth:`AccelConfig.field_limit`: sized by its memories)."""
    for name, value in fields.items():
        limit = cfg.field_limit(opcode, name)
        if value > limit:
            raise CompileError(f"{where}: {opcode.name} {name} = {value} exceeds {limit}, the "
                               f"largest this accelerator holds (its registers are sized by its "
                               f"memories; the ISA allows {_ISA_FIELDS[opcode][name].largest})")
    return isa.encode(opcode, **fields)


_ISA_FIELDS = {op: {f.name: f for f in spec.fields} for op, spec in isa.INSTRUCTIONS.items()}


# ---------------------------------------------------------------- driver

def layer_plans(model, simd, batch=1):
    """The plans of ``model`` before any configuration check: :func:`lower`,
    :func:`unfold_first_layer` (for S = ``simd``), :func:`stack_images`."""
    return stack_images(unfold_first_layer(lower(model, batch), simd))


def compile_model(model, cfg, batch=1):
    """Run every pass; returns a :class:`Compiled` model."""
    plans = check(layer_plans(model, cfg.simd, batch), cfg)
    plans = stream(allocate(segment(plans, cfg), cfg), cfg)
    segments, store = segment_runs(plans, cfg)
    first = segments[0]
    io = io_description(plans, cfg, batch, [seg.program for seg in segments])
    if len(segments) > 1:
        for seg, entry in zip(segments, io["segments"]):
            entry["input_words"] = list(seg.input_words) if seg.input_words else None
        # Names this set of segments: an image of another compilation (even of a model with
        # the same shapes) is refused beside them (tritium.sw.image.read_compiled).
        io["segment_set"] = hashlib.sha256(repr([
            (seg.program, seg.weight_banks, seg.threshold_banks, seg.store_words)
            for seg in segments
        ]).encode()).hexdigest()[:16]
    return Compiled(config=cfg, program=first.program, weight_banks=first.weight_banks,
                    threshold_banks=first.threshold_banks, io=io, meta=dict(model.meta),
                    plans=plans, store_words=store, segments=segments if len(segments) > 1 else [])


def segment_runs(plans, cfg):
    """``(segments, store words)``: the :class:`Segment` runs of one batch (each weight
    phase's memories and programs, the first layer's bands first, one run each:
    :func:`segment`) and the first run's weight-store image (weight streaming; a later
    phase's is its segment's ``store_words``)."""
    phases = [[p for p in plans if p.phase == k] for k in range(plans[-1].phase + 1)]
    first = plans[0]
    row_words = first.in_row_words(cfg.simd) * first.pool
    out, store = [], None
    for k, phase in enumerate(phases):
        banks, thresholds, words = memories(phase, cfg)
        if store is None:
            store = words
        # A phase's runs after its first keep the banks and thresholds it wrote (None).
        if k == 0 and first.bands:
            for b, band in enumerate(first.bands):
                input_words = (band[0] * row_words, (band[0] + band[1]) * row_words)
                last = b == len(first.bands) - 1
                program = emit(phase if last else phase[:1], cfg, band=band)
                out.append(Segment(program, None if b else banks, None if b else thresholds,
                                   input_words))
        else:
            for j, program in enumerate(program_parts(phase, cfg)):
                # A phase's later parts read the store its first part's image wrote: []
                # (their images carry no WSTORE section; the store keeps its words).
                store_image = None          # the first run's: Compiled.store_words
                if cfg.store_depth and (j or k):
                    store_image = [] if j else words
                out.append(Segment(program, None if j else banks, None if j else thresholds,
                                   (0, None) if k == j == 0 else None, store_image))
    return out, store


# ---------------------------------------------------------------- host-side layout

def pack_tensor(values, plan_h, plan_w, c, act, simd):
    """Values (N, H, W, C) or (N, F) -> activation-buffer words, one list of ints per image.

    The layout of docs/accelerator.md: pixel, then plane, then channel word.
    """
    n = values.shape[0]
    v = np.asarray(values).reshape(n, plan_h, plan_w, c)
    if act.kind == "bipolar":
        planes = (v > 0).astype(np.uint8)[:, :, :, None, :]
    else:
        planes = np.moveaxis(to_planes(v, act.bits, act.kind == "signed"), 0, 3)
    cw = words_for_lanes(c, simd)
    padded = np.zeros(planes.shape[:4] + (cw * simd,), np.uint8)
    padded[..., :c] = planes
    words = lanes_to_int(padded.reshape(n, plan_h, plan_w, planes.shape[3], cw, simd))
    return [list(row.reshape(-1)) for row in words]


def pack_input(compiled, values):
    """Network input values (N, *input_shape) -> buffer-0 words per program run.

    With a batch of B images per run, N must be a multiple of B; each run's
    words hold B consecutive images, image after image (rows of one tensor).
    """
    from .ir import ActType

    spec, b = compiled.io["input"], compiled.batch
    values = np.asarray(values)
    if len(values) % b:
        raise CompileError(f"{len(values)} images are not a multiple of the batch {b}")
    if spec.get("unfold"):
        values = _unfold(values, spec["unfold"])
    grouped = values.reshape(len(values) // b, -1)     # a run's images are rows of its tensor
    return pack_tensor(grouped, spec["h"], spec["w"], spec["c"], ActType.parse(spec["act"]),
                       compiled.config.simd)


def _unfold(values, u):
    """Images (N, H, W, C) -> patches (N, OH, OW, kh*kw*C) in (ky, kx, channel) order."""
    (kh, kw), (sh, sw), (ph, pw) = u["kernel"], u["stride"], u["padding"]
    x = np.asarray(values).reshape(len(values), u["height"], u["width"], u["channels"])
    if ph or pw:
        x = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), constant_values=u["pad_value"])
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]
    n, oh, ow = win.shape[:3]
    return win.transpose(0, 1, 2, 4, 5, 3).reshape(n, oh, ow, kh * kw * u["channels"])


def results_to_accumulators(compiled, entries):
    """Result-memory entries (per program run: (entries, P) values) -> reference accumulators.

    Returns int64 (N, M) for a 1x1 output (N images, batches unrolled), else
    (N, out_h, out_w, M): the hardware results ``D`` minus the row constants ``K``.
    A run's entries hold its images one after another.
    """
    o, pe, b = compiled.io["output"], compiled.config.pe, compiled.batch
    m, k = o["m"], np.array(o["row_constants"], np.int64)
    rows = o["h"] // b                                  # output rows of one image
    out = []
    for run in entries:
        d = np.array(run, np.int64).reshape(o["h"], o["w"], o["tiles"] * pe)[..., :m]
        out.extend((d - k).reshape(b, rows, o["w"], m))
    out = np.array(out, np.int64).reshape(-1, rows, o["w"], m)
    if (rows, o["w"]) == (1, 1):
        return out.reshape(len(out), m)
    return out
