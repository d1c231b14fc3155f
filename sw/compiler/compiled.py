"""What the compiler hands the host: :class:`Compiled` and its :class:`Segment` runs."""

from dataclasses import dataclass, field


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
    plans: tuple | None = None     # compile-time LayerPlans (absent when loaded from an image)
    store_words: list = field(default_factory=list)   # weight-store image (weight streaming)
    segments: list = field(default_factory=list)      # [Segment] when the model runs in several
    segment_index: int | None = None                  # which one, in a segment's own image

    @property
    def batch(self):
        return self.io["batch"]

    @property
    def cycles_per_run(self):
        """Cycles from ``start`` to ``done`` of the program runs of one batch (summed over
        the segments; the ISA simulator's count, :func:`~.analysis.program_timing`)."""
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
