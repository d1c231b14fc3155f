"""The run loop: input values in batches through a compiled model, on any backend.

A compiled model runs a batch of ``compiled.batch`` inputs at a time, as one program run
or, for a segmented model (docs/accelerator.md, "Segments"), one run per segment, each
with its own memory images. :func:`run_batches` packs the inputs (host layout,
:func:`~tritium.sw.model.layout.pack_input`) and, per batch and segment, asks a
:class:`Backend` to load the segment's memories, write its input words, start, and
after the last segment read the result entries; it decodes them into the reference
accumulators. The backends: the ISA simulator (:class:`tritium.sw.run.isasim.IsaBackend`),
the board driver (:class:`tritium.sw.run.driver.DeviceBackend`), the Amaranth simulation
(:class:`tritium.sim.accel_sim.AmaranthBackend`) and the Verilog harness under
cocotb or the C++ replay (:class:`tritium.sim.runner.HarnessBackend`).

A deferred backend (the simulations) records the calls and plays them in
:meth:`Backend.finish`; until then its :meth:`~Backend.start` and
:meth:`~Backend.read_results` return :class:`Pending` values, which the loop reads
after the flush.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from ..model.layout import pack_input, results_to_accumulators


class Pending:
    """A value a deferred backend knows after its :meth:`Backend.finish`."""

    __slots__ = ("value",)

    def __init__(self):
        self.value = None


def resolve(value):
    """``value``, or what a :class:`Pending` has received."""
    return value.value if isinstance(value, Pending) else value


class Backend(ABC):
    """Where a compiled model runs. A backend holds the model's memory images (those of
    its first segment) when the loop starts: its construction loads them."""

    @abstractmethod
    def load_segment(self, k):
        """Make the memories hold segment ``k``'s images (segmented models: before every
        program run; the program, banks, thresholds and store as the segment has them)."""

    @abstractmethod
    def write_input(self, words):
        """Write packed input words into activation buffer 0 from address 0."""

    @abstractmethod
    def start(self):
        """Run the program to its end; its cycles (or a :class:`Pending`)."""

    @abstractmethod
    def read_results(self, base, count):
        """``count`` result-memory entries from ``base``, each a list of ``pe`` signed
        accumulators (or a :class:`Pending` of them)."""

    def finish(self):
        """Called once after the last read: a deferred backend plays its calls here and
        fills its :class:`Pending` values."""


@dataclass
class RunResult:
    """The outcome of :func:`run_batches`."""

    #: The reference accumulators (``D - K``) of the last layer, shaped like
    #: :func:`tritium.sw.model.reference.run`'s output: the class scores of a classifier.
    accumulators: np.ndarray
    #: Per batch: its program run's cycles, or the sum over its segments' runs.
    cycles: list
    meta: dict

    @property
    def classes(self):
        """The predicted class of each input (:func:`~tritium.sw.model.reference.predicted_classes`)."""
        from ..model.reference import predicted_classes

        return predicted_classes(self.meta, self.accumulators)


def issue(compiled, values, backend):
    """The loop's calls on ``backend``, up to the reads: ``(cycles, entries)``, per batch
    the cycles of its runs and its result entries, as the backend returned them."""
    runs = compiled.runs()
    o = compiled.io["output"]
    count = o["h"] * o["w"] * o["tiles"]
    cycles, entries = [], []
    for words in pack_input(compiled, values):
        batch = []
        for k, run in enumerate(runs):
            if len(runs) > 1:
                backend.load_segment(k)
            if run.input_words is not None:
                backend.write_input(words[slice(*run.input_words)])
            batch.append(backend.start())
        cycles.append(batch)
        entries.append(backend.read_results(o["res_base"], count))
    return cycles, entries


def run_batches(compiled, values, backend):
    """Run input values (N, *input_shape; N a multiple of ``compiled.batch``) on
    ``backend``; returns a :class:`RunResult`."""
    cycles, entries = issue(compiled, values, backend)
    backend.finish()
    return RunResult(results_to_accumulators(compiled, [resolve(e) for e in entries]),
                     [sum(resolve(c) for c in batch) for batch in cycles], compiled.meta)
