"""Amaranth-simulator harness for the whole accelerator.

:func:`run_amaranth` loads a compiled model through the accelerator's host
ports (program, weight banks, threshold memories, activation buffer 0), runs
each program and reads the result memory back: what the ISA-level simulator
(:func:`tritium.sw.run.isasim.simulate`) returns, from the RTL.
"""

from amaranth.sim import Simulator

from ..hw import isa
from ..hw.accel import Accelerator
from ..hw.layouts import pack, thresholds_layout
from ..sw.compiler.image import threshold_words
from ..sw.model.layout import pack_input, results_to_accumulators


async def _write(ctx, en, addr, data, items, extra=None):
    for a, d in items:
        ctx.set(en, 1)
        ctx.set(addr, a)
        ctx.set(data, d)
        if extra:
            extra(a)
        await ctx.tick()
    ctx.set(en, 0)


async def load(ctx, dut, compiled):
    """Write program, weights, thresholds and the weight store through the host ports."""
    await _write(ctx, dut.prog_we, dut.prog_addr, dut.prog_data, enumerate(compiled.program))
    for p, bank in enumerate(compiled.weight_banks):
        ctx.set(dut.wload.bank, p)
        await _write(ctx, dut.wload.en, dut.wload.addr, dut.wload.data,
                     [(a, w) for a, w in enumerate(bank) if w])
    for p, words in enumerate(threshold_words(compiled)):
        ctx.set(dut.tload.bank, p)
        await _write(ctx, dut.tload.en, dut.tload.addr, dut.tload.data.as_value(), enumerate(words))
    if compiled.store_words:
        await _write(ctx, dut.sload.en, dut.sload.addr, dut.sload.data,
                     [(a, w) for a, w in enumerate(compiled.store_words) if w])


def segment_writes(compiled):
    """The host's writes before each program run of a batch, after :func:`load`.

    One dict per run (:meth:`~tritium.sw.compiler.Compiled.runs`): ``program`` (the
    words, or None when the program memory already holds them), ``weights`` and
    ``thresholds`` (per bank, the ``(address, word)`` writes that turn what the memories
    hold into this run's images: none for a run that keeps them, the words that differ
    from the last images written otherwise, and every bank word when LOAD_W copies have
    written the banks since; after the last run of a batch comes the first of the
    next), ``store`` (the weight-store writes of a run whose weight phase streams from an
    image of its own: :func:`store_writes`) and ``input`` (``(first, end)`` of the packed
    input words written into buffer 0 from address 0, or None). A model that runs once
    needs no writes but its input.
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
            "input": run.input_words,
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


async def write_segment(ctx, dut, writes):
    """Apply one entry of :func:`segment_writes` (program, banks, thresholds, store)."""
    if writes["program"] is not None:
        await _write(ctx, dut.prog_we, dut.prog_addr, dut.prog_data, enumerate(writes["program"]))
    for p, items in enumerate(writes["weights"]):
        ctx.set(dut.wload.bank, p)
        await _write(ctx, dut.wload.en, dut.wload.addr, dut.wload.data, items)
    for p, items in enumerate(writes["thresholds"]):
        ctx.set(dut.tload.bank, p)
        await _write(ctx, dut.tload.en, dut.tload.addr, dut.tload.data.as_value(), items)
    if writes["store"]:
        await _write(ctx, dut.sload.en, dut.sload.addr, dut.sload.data, writes["store"])


async def run_once(ctx, dut, compiled, words, max_cycles, read=True):
    """Write one program run's input, start, wait for done; returns (entries, cycles)
    (entries: the result memory's, none without ``read``)."""
    await _write(ctx, dut.act_we, dut.act_addr, dut.act_data, enumerate(words))
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
    o = compiled.io["output"]
    entries = []
    for e in range(o["h"] * o["w"] * o["tiles"] if read else 0):
        ctx.set(dut.res_addr, o["res_base"] + e)
        await ctx.tick().repeat(compiled.config.res_latency)
        entries.append([int(v) for v in ctx.get(dut.res_data)])
    return entries, ctx.get(dut.cycles)


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
    dut = Accelerator(compiled.config)
    batches = pack_input(compiled, values)
    segments = segment_writes(compiled)
    results, cycles = [], []

    async def bench(ctx):
        await load(ctx, dut, compiled)
        for i, words in enumerate(batches):
            total = 0
            for k, writes in enumerate(segments):
                if len(segments) > 1 and (i or k):
                    await write_segment(ctx, dut, writes)
                part = [] if writes["input"] is None else words[slice(*writes["input"])]
                entries, n = await run_once(ctx, dut, compiled, part, max_cycles,
                                            read=k == len(segments) - 1)
                total += n
            results.append(entries)
            cycles.append(total)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return results_to_accumulators(compiled, results), cycles
