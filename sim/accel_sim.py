"""Amaranth-simulator harness for the whole accelerator.

:func:`run_amaranth` loads a compiled model through the accelerator's host
ports (program, weight banks, threshold memories, activation buffer 0), runs
each program and reads the result memory back: what the ISA-level simulator
(:func:`tritium.sw.run.isasim.simulate`) returns, from the RTL. The host's side is
:class:`HostWrites`, a deferred backend of the run loop
(:func:`tritium.sw.run.loop.run_batches`) that records the port writes, starts and
reads; :class:`AmaranthBackend` plays them in the simulator, the Verilog harness
(:class:`tritium.sim.runner.HarnessBackend`) from a file.
"""

from amaranth.sim import Simulator

from ..hw import isa
from ..hw.accel import Accelerator
from ..sw.compiler.image import threshold_words
from ..sw.run.loop import Backend, Pending, run_batches


async def _write(ctx, en, addr, data, items):
    for a, d in items:
        ctx.set(en, 1)
        ctx.set(addr, a)
        ctx.set(data, d)
        await ctx.tick()
    ctx.set(en, 0)


def model_writes(compiled):
    """The host's writes that load a model, in the form of a :func:`segment_writes`
    entry: the program, the banks' and the store's nonzero words (they start at 0), every
    threshold word."""
    return {"program": list(compiled.program),
            "weights": [[(a, w) for a, w in enumerate(bank) if w] for bank in compiled.weight_banks],
            "thresholds": [list(enumerate(words)) for words in threshold_words(compiled)],
            "store": [(a, w) for a, w in enumerate(compiled.store_words) if w]}


def segment_writes(compiled):
    """The host's writes before each program run of a batch, after :func:`model_writes`.

    One dict per run (:meth:`~tritium.sw.compiler.Compiled.runs`): ``program`` (the
    words, or None when the program memory already holds them), ``weights`` and
    ``thresholds`` (per bank, the ``(address, word)`` writes that turn what the memories
    hold into this run's images: none for a run that keeps them, the words that differ
    from the last images written otherwise, and every bank word when LOAD_W copies have
    written the banks since; after the last run of a batch comes the first of the
    next), ``store`` (the weight-store writes of a run whose weight phase streams from an
    image of its own: :func:`store_writes`). A model that runs once needs no writes but
    its input.
    """
    runs = compiled.runs()
    parts = [compiled.segment(k) for k in range(len(runs))]
    banks = [part.weight_banks for part in parts]
    thresholds = [None if part.threshold_banks is None else threshold_words(part) for part in parts]
    stores = [part.store_words for part in parts]
    copies = [any(isa.decode(w)[0] == isa.Opcode.LOAD_W for w in run.program) for run in runs]

    def diff(old, new, every=False):
        return [[(a, w) for a, (v, w) in enumerate(zip(o, n)) if v != w or every]
                for o, n in zip(old, new)]

    # What the memories hold: the last images written, and whether LOAD_W copies have
    # written the banks since. Run 0's images are loaded first (:func:`load`); one pass
    # over the batch gives the state its first run starts from in every later batch.
    held = {"w": banks[0], "t": thresholds[0], "copied": False}

    def writes(k):
        w, t = [[] for _ in banks[0]], [[] for _ in thresholds[0]]
        if banks[k] is not None:
            w = diff(held["w"], banks[k], held["copied"])
            held.update(w=banks[k], copied=False)
        if thresholds[k] is not None:
            t = diff(held["t"], thresholds[k])
            held["t"] = thresholds[k]
        held["copied"] = held["copied"] or copies[k]
        return w, t

    for k in range(len(runs)):
        writes(k)
    out = []
    for k, run in enumerate(runs):
        writes_w, writes_t = writes(k)
        out.append({
            "store": store_writes(stores, k),
            "program": None if len(runs) == 1 else list(run.program),
            "weights": writes_w,
            "thresholds": writes_t,
        })
    return out


def store_writes(stores, k):
    """The ``(address, word)`` writes that give the weight store run ``k``'s image.

    ``stores``: each run's image (empty: the store keeps its words; run 0's is the
    model's, written by :func:`load`). The store
    holds the last image written, over its words; words past it are unknown, so they
    are written, and so is every word when no earlier run (of this batch, or for run 0
    the batch before) wrote an image.
    """
    target = stores[k]
    if not target:
        return []
    before = [s for s in (stores[:k] if k else stores) if s]
    prev = before[-1] if before else []
    return [(a, w) for a, w in enumerate(target) if a >= len(prev) or prev[a] != w]


class HostWrites(Backend):
    """A deferred backend that records what the host does through the accelerator's
    ports, in order, in :attr:`ops`: ``("write", port, bank, [(address, word)])``
    (port: ``prog``, ``wload``, ``tload``, ``sload``, ``act``), ``("start", pending
    cycles)``, ``("read", base, count, pending entries)``. The model load
    (:func:`model_writes`) comes first; a segment's writes are those of
    :func:`segment_writes` (none for the segment the memories hold)."""

    def __init__(self, compiled):
        self.compiled = compiled
        self.ops = []
        self.segments = segment_writes(compiled)
        self.held = 0               # the segment whose images the memories hold
        self._memories(model_writes(compiled))

    def _memories(self, writes):
        if writes["program"] is not None:
            self.ops.append(("write", "prog", 0, list(enumerate(writes["program"]))))
        self.ops += [("write", "wload", p, items) for p, items in enumerate(writes["weights"])]
        self.ops += [("write", "tload", p, items) for p, items in enumerate(writes["thresholds"])]
        if writes["store"]:
            self.ops.append(("write", "sload", 0, writes["store"]))

    def load_segment(self, k):
        if k != self.held:
            self._memories(self.segments[k])
            self.held = k

    def write_input(self, words):
        self.ops.append(("write", "act", 0, [(a, int(w)) for a, w in enumerate(words)]))

    def start(self):
        cycles = Pending()
        self.ops.append(("start", cycles))
        return cycles

    def read_results(self, base, count):
        entries = Pending()
        self.ops.append(("read", base, count, entries))
        return entries

    def finish(self):
        """Play :attr:`ops` and fill the pending values (a subclass's)."""
        raise NotImplementedError


class AmaranthBackend(HostWrites):
    """:class:`HostWrites` played on :class:`~tritium.hw.accel.Accelerator` in the
    Amaranth simulator; a run not done after ``max_cycles`` cycles fails."""

    def __init__(self, compiled, max_cycles):
        super().__init__(compiled)
        self.max_cycles = max_cycles

    def finish(self):
        dut = Accelerator(self.compiled.config)
        ports = {"prog": (None, dut.prog_we, dut.prog_addr, dut.prog_data),
                 "wload": (dut.wload.bank, dut.wload.en, dut.wload.addr, dut.wload.data),
                 "tload": (dut.tload.bank, dut.tload.en, dut.tload.addr, dut.tload.data.as_value()),
                 "act": (None, dut.act_we, dut.act_addr, dut.act_data)}
        if self.compiled.config.store_depth:
            ports["sload"] = (None, dut.sload.en, dut.sload.addr, dut.sload.data)

        async def bench(ctx):
            for op in self.ops:
                if op[0] == "write":
                    bank, *port = ports[op[1]]
                    if bank is not None:
                        ctx.set(bank, op[2])
                    await _write(ctx, *port, op[3])
                elif op[0] == "start":
                    op[1].value = await _start(ctx, dut, self.max_cycles)
                else:
                    op[3].value = await _read(ctx, dut, op[1], op[2],
                                              self.compiled.config.res_latency)

        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(bench)
        sim.run()


async def _start(ctx, dut, max_cycles):
    """Start the program, wait for done; returns the cycle count."""
    ctx.set(dut.start, 1)
    await ctx.tick()
    ctx.set(dut.start, 0)
    for _ in range(max_cycles):
        if ctx.get(dut.done) or ctx.get(dut.error):
            break
        await ctx.tick()
    if ctx.get(dut.error):
        raise RuntimeError(f"accelerator error code {ctx.get(dut.error_code)}")
    if not ctx.get(dut.done):
        raise RuntimeError(f"accelerator not done after {max_cycles} cycles")
    return ctx.get(dut.cycles)


async def _read(ctx, dut, base, count, latency):
    """``count`` result-memory entries from ``base``."""
    entries = []
    for e in range(count):
        ctx.set(dut.res_addr, base + e)
        await ctx.tick().repeat(latency)
        entries.append([int(v) for v in ctx.get(dut.res_data)])
    return entries


def run_amaranth(compiled, values, max_cycles=None):
    """Run inputs on the RTL in the Amaranth simulator: (accumulators, cycles per batch:
    its program run's, or the sum over its segments' runs).

    ``max_cycles`` per run defaults to twice the compiled cycle model plus a
    margin, so a design that never finishes fails quickly.
    """
    if max_cycles is None:
        expected = compiled.io.get("cycles") or (sum(l["cycles"] for l in compiled.io["layers"])
                                                 + len(compiled.program))
        max_cycles = 2 * expected + 100
    result = run_batches(compiled, values, AmaranthBackend(compiled, max_cycles))
    return result.accumulators, result.cycles
