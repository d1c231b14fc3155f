"""The run loop (sw/run/loop.py): one loop over batches and segments, four backends."""

import inspect

import numpy as np
import pytest

from tritium.hw.accel_config import AccelConfig
from tritium.hw.config import HwConfig
from tritium.sim.accel_sim import AmaranthBackend
from tritium.sim.runner import HarnessBackend
from tritium.sw.compiler import compile_model
from tritium.sw.model import reference
from tritium.sw.model.zoo import random_inputs, random_model
from tritium.sw.run.driver import DeviceBackend
from tritium.sw.run.isasim import IsaBackend, simulate
from tritium.sw.run.loop import Backend, Pending, run_batches


class Recording(Backend):
    """Forwards to ``inner`` and logs each call; ``deferred``: answers start and reads
    with :class:`Pending` values filled in :meth:`finish`, as a simulation backend does."""

    def __init__(self, inner, deferred=False):
        self.inner, self.deferred, self.calls, self.pending = inner, deferred, [], []

    def load_segment(self, k):
        self.calls.append(("segment", k))
        self.inner.load_segment(k)

    def write_input(self, words):
        self.calls.append(("input", len(words)))
        self.inner.write_input(words)

    def _answer(self, value):
        if not self.deferred:
            return value
        self.pending.append((Pending(), value))
        return self.pending[-1][0]

    def start(self):
        self.calls.append(("start",))
        return self._answer(self.inner.start())

    def read_results(self, base, count):
        self.calls.append(("read", base, count))
        return self._answer(self.inner.read_results(base, count))

    def finish(self):
        self.calls.append(("finish",))
        for pending, value in self.pending:
            pending.value = value


def _segmented():
    """A CNN whose 8-bit input runs in four bands and its weights in three phases."""
    model = random_model("cnn", (8, 8, 1), "uint8", weight_kind="binary", seed=3)
    cfg = AccelConfig(core=HwConfig(pe=4, simd=16, weight_kinds=("binary",), act_bits=8,
                                    weight_depth=256, thr_depth=32),
                      act_depth=128, res_depth=16)
    return model, compile_model(model, cfg), random_inputs(model, 3, seed=1)


def test_the_loop_calls_the_backend_per_batch_and_segment():
    model, compiled, values = _segmented()
    runs = compiled.runs()
    assert len(runs) > 2
    o = compiled.io["output"]
    for deferred in (False, True):
        backend = Recording(IsaBackend(compiled), deferred)
        result = run_batches(compiled, values, backend)
        one_batch = []
        for k, run in enumerate(runs):
            one_batch.append(("segment", k))
            if run.input_words is not None:
                one_batch.append(("input", run.input_words[1] - run.input_words[0]))
            one_batch.append(("start",))
        one_batch.append(("read", o["res_base"], o["h"] * o["w"] * o["tiles"]))
        assert backend.calls == one_batch * len(values) + [("finish",)]
        acc, cycles, _ = simulate(compiled, values)
        np.testing.assert_array_equal(result.accumulators, acc)
        np.testing.assert_array_equal(result.accumulators, reference.run(model, values))
        assert result.cycles == cycles and len(cycles) == len(values)
        assert list(result.classes) == list(reference.predicted_classes(compiled.meta, acc))


def test_a_model_that_runs_once_loads_no_segment():
    model = random_model("tfc", (6, 6, 1), "bipolar", seed=3)
    cfg = AccelConfig(core=HwConfig(pe=2, simd=8, weight_depth=128, thr_depth=128), act_depth=64,
                      res_depth=32, store_depth=2048)
    compiled = compile_model(model, cfg, batch=4)
    values = random_inputs(model, 8, seed=1)
    backend = Recording(IsaBackend(compiled))
    result = run_batches(compiled, values, backend)
    assert [c[0] for c in backend.calls] == ["input", "start", "read"] * 2 + ["finish"]
    np.testing.assert_array_equal(result.accumulators, reference.run(model, values))


def test_the_four_backends_implement_the_interface():
    """Each backend is a complete Backend; the two simulations are deferred: they play
    their calls in finish. A backend missing a method cannot be made."""
    for backend in (IsaBackend, DeviceBackend, AmaranthBackend, HarnessBackend):
        assert issubclass(backend, Backend) and not inspect.isabstract(backend), backend
    for backend in (AmaranthBackend, HarnessBackend):
        assert backend.finish is not Backend.finish

    class NoReads(Backend):
        load_segment = write_input = start = lambda self, *args: None

    with pytest.raises(TypeError, match="read_results"):
        NoReads()
