"""What the compiler passes read and return: immutable plans.

A :class:`ModelPlan` is the whole model on its way through the passes; each
:class:`LayerPlan` in it is one weight layer (with a fused max-pool) mapped onto
the array. Both are frozen: a pass returns new plans (``dataclasses.replace``)
and never changes the ones it was given.
"""

from dataclasses import dataclass, replace

from ...hw.weight_kinds import weight_kind
from ..model.layout import words_for_lanes


@dataclass(frozen=True)
class Unfold:
    """The first convolution's window, unfolded by the host (im2col): the RUN sees a 1x1
    window over pixels that hold whole patches."""

    kernel: tuple
    stride: tuple
    padding: tuple
    pad_value: int
    channels: int
    height: int
    width: int

    def as_dict(self):
        """The io description's ``input.unfold`` (JSON-compatible)."""
        return {"kernel": list(self.kernel), "stride": list(self.stride),
                "padding": list(self.padding), "pad_value": self.pad_value,
                "channels": self.channels, "height": self.height, "width": self.width}


@dataclass(frozen=True)
class Chunk:
    """One RUN of a streamed layer: neuron folds ``first .. first + tiles - 1``.

    ``LOAD_W`` copies its ``P x tiles x words_per_row`` words from weight-store
    word ``src`` (bank-major) to bank words ``weight_base ..``, one half of the banks.
    """

    first: int
    tiles: int
    weight_base: int
    src: int


@dataclass(frozen=True)
class LayerPlan:
    """One weight layer (with a fused max-pool) mapped onto the array: one RUN, or one
    per chunk (weight streaming) or band (input bands)."""

    index: int
    name: str
    layer: object              # the IR layer (Dense or Conv2d)
    in_act: object             # ActType of the input
    out_act: object            # ActType of the output; None: raw accumulators
    pool: int                  # max-pool window = stride; 1: none
    pool_name: str | None
    # the input tensor of one image and the window over it
    in_height: int
    in_width: int
    in_channels: int
    kernel: tuple              # (height, width)
    stride: tuple              # (rows, columns)
    padding: tuple             # (rows, columns) on each side
    pad_value: int
    # the output tensor of one image, before and after pooling
    conv_height: int
    conv_width: int
    out_height: int
    out_width: int
    out_channels: int
    #: Where the RUN reads and writes (allocate): activation buffers, the first bank word
    #: of its weights, its first threshold set, its first result entry.
    in_buffer: int = 0
    out_buffer: int = 1
    weight_base: int = 0
    threshold_base: int = 0
    result_base: int = 0
    #: ``K[row]``: reference accumulator = hardware result - K (attach_row_constants).
    row_constants: tuple | None = None
    #: Images of the batch this RUN loops over (CFG_IN.extra_images + 1): its input and
    #: output tensors hold them one after another. 1 where the images are rows of the
    #: tensors instead (stack_images) or the batch is 1.
    images: int = 1
    #: The host unfolds this first convolution's windows (:class:`Unfold`); None: it does not.
    unfold: Unfold | None = None
    #: Weight streaming: the :class:`Chunk` RUNs of this layer (None: one RUN, resident weights).
    chunks: tuple | None = None
    #: Segments: the weight phase of this layer (the segments that hold its weights).
    phase: int = 0
    #: Segments, first layer only: ``((first output row, rows), ...)``, one RUN (and one
    #: segment) per band of the input that fits a buffer; None: the whole input at once.
    bands: tuple | None = None

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
        """Masked weight planes (ternary, pow2-*): the lanes use the mask words."""
        return weight_kind(self.layer.weight_kind).masked

    @property
    def weight_planes(self):
        """Weight planes of the layer's kind (1 for binary and ternary)."""
        return weight_kind(self.layer.weight_kind).n_planes

    @property
    def raw(self):
        return self.out_act is None

    @property
    def out_bits(self):
        return 0 if self.out_act is None else self.out_act.bits

    @property
    def pointwise(self):
        """A 1x1 window with stride 1 and no padding: each output row reads its own input row."""
        return (self.kernel, self.stride, self.padding) == ((1, 1), (1, 1), (0, 0))

    def in_channel_words(self, simd):
        return words_for_lanes(self.in_channels, simd)

    def out_channel_words(self, simd):
        return words_for_lanes(self.out_channels, simd)

    def tiles(self, pe):
        """Neuron folds: RUN passes over the PE array, ``pe`` output channels each."""
        return -(-self.out_channels // pe)

    def plane_words(self, simd):
        """Words of one weight plane of a row (and input words of one accumulation's plane)."""
        return self.kernel[0] * self.kernel[1] * self.in_channel_words(simd)

    def words_per_row(self, simd):
        """Bank words of a weight row: its planes, top plane first."""
        return self.weight_planes * self.plane_words(simd)

    def bank_words(self, cfg):
        """Words per bank of this layer's weights."""
        return self.tiles(cfg.pe) * self.words_per_row(cfg.simd)

    def threshold_sets(self, pe):
        """Threshold sets per PE (none for raw outputs)."""
        return 0 if self.raw else self.tiles(pe)

    def pad_code(self):
        """Bit b: plane b of the pad value's code."""
        if self.bipolar:
            return 1 if self.pad_value > 0 else 0
        return self.pad_value & ((1 << self.planes) - 1)

    def last_lanes(self, simd):
        return self.in_channels - (self.in_channel_words(simd) - 1) * simd

    def beats(self, cfg, tiles=None, rows=None):
        """Input words the RUN sends through the array (docs/accelerator.md, Timing);
        ``tiles``: a RUN over that many neuron folds (default: all); ``rows``: over that
        many output rows (a band; default: all)."""
        tiles = self.tiles(cfg.pe) if tiles is None else tiles
        rows = self.out_height if rows is None else rows
        return self.images * rows * self.out_width * tiles * self.pool ** 2 * self.result_beats(cfg)

    def result_beats(self, cfg):
        """Beats of one accumulation (one result): every input plane of every word of the
        weight row, two beats per word for ternary weights on k-bit inputs."""
        per_word = 2 if (self.ternary and not self.bipolar) else 1
        return self.planes * self.words_per_row(cfg.simd) * per_word

    def run_beats(self, cfg):
        """The beats of each of this layer's RUNs (chunks, bands or the one RUN)."""
        if self.chunks:
            return [self.beats(cfg, c.tiles) for c in self.chunks]
        if self.bands:
            return [self.beats(cfg, rows=rows) for _, rows in self.bands]
        return [self.beats(cfg)]

    def in_row_words(self, simd):
        """Words of one row of the input tensor."""
        return self.in_width * self.planes * self.in_channel_words(simd)

    def out_row_words(self, simd):
        """Words of one row of the output tensor."""
        return self.out_width * max(1, self.out_bits) * self.out_channel_words(simd)

    def cycles(self, cfg):
        return self.beats(cfg) + cfg.run_drain(self.out_bits)

    def useful_lane_ops(self):
        return (self.images * self.out_height * self.out_width * self.pool ** 2
                * self.out_channels * self.kernel[0] * self.kernel[1] * self.in_channels
                * self.planes * self.weight_planes)

    def in_words(self, simd):
        """Words of the input tensor (every image of the RUN)."""
        return (self.images * self.in_height * self.in_width * self.planes
                * self.in_channel_words(simd))

    def out_words(self, simd):
        """Words of the output tensor (every image of the RUN)."""
        return (self.images * self.out_height * self.out_width * max(1, self.out_bits)
                * self.out_channel_words(simd))


@dataclass(frozen=True)
class ModelPlan:
    """A model on its way through the compiler passes (:data:`~.pipeline.PASSES`).

    ``config`` is None while only the planning passes run (:func:`~.pipeline.layer_plans`,
    which needs the lanes per word, ``simd``, and nothing else of the accelerator).
    ``runs`` and ``store_words`` are empty until :func:`~.codegen.emit_runs`.
    """

    model: object                  # IntModel
    batch: int
    simd: int
    config: object | None = None   # AccelConfig
    layers: tuple = ()             # LayerPlan, one per weight layer
    runs: tuple = ()               # Segment, the program runs of one batch
    store_words: list | None = None    # the first run's weight-store image

    def with_layers(self, layers):
        """``(plan with these layers, whether they differ)``: what a layer pass returns."""
        layers = tuple(layers)
        return replace(self, layers=layers), layers != self.layers

    def phases(self):
        """The layers of each weight phase, in order (segments)."""
        return [[p for p in self.layers if p.phase == k]
                for k in range(self.layers[-1].phase + 1)]
