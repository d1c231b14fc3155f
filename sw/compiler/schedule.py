"""The scheduling passes: weight phases, input bands, memory allocation, weight streaming.

Each takes a :class:`~.plan.ModelPlan` with a configuration and returns ``(plan,
changed)``. Segments (docs/accelerator.md, "Segments") come from the first two:

* **Weight phases** (:func:`group_phases`). The host writes a phase's weights and
  thresholds (with the program, and the weight store's image) before the phase's
  first program run.
* **Input bands** (:func:`band_input`). Before each band's run the host writes that
  band's input rows into buffer 0 from address 0; the band's output rows go where
  the whole layer would write them.

Each band but the last is a segment of its own; the last band's run goes on with the
rest of the first phase, and every later phase is one segment. The activation
buffers keep their contents from run to run.
"""

from dataclasses import replace

from ...hw import isa
from ...hw.isa import Opcode
from .checks import ISA_FIELDS
from .errors import CompileError, pow2
from .plan import Chunk


def group_phases(plan):
    """Consecutive layers in weight phases, greedily: each phase's weights fit the banks
    (or, on an accelerator with a weight store, the banks or the store to stream from)
    and its thresholds fit the threshold memories (``LayerPlan.phase``)."""
    cfg = plan.config
    core = cfg.core

    def fits(bank_words):   # a phase's bank words per PE: resident, or streamed from the store
        return (bank_words <= core.weight_depth
                or (cfg.store_depth and core.pe * bank_words <= cfg.store_depth))

    phase = bank_words = threshold_sets = 0
    layers = []
    for i, p in enumerate(plan.layers):
        words, sets = p.bank_words(cfg), p.threshold_sets(core.pe)
        if i and (not fits(bank_words + words) or threshold_sets + sets > core.thr_depth):
            phase, bank_words, threshold_sets = phase + 1, 0, 0
        layers.append(replace(p, phase=phase))
        bank_words, threshold_sets = bank_words + words, threshold_sets + sets
    return plan.with_layers(layers)


def band_input(plan):
    """The first layer's input in bands of rows (``LayerPlan.bands``) when it does not fit
    an activation buffer on an accelerator without a weight store (a pointwise first
    layer: :func:`~.checks.bandable`, which :func:`~.checks.check` lets through)."""
    cfg, first = plan.config, plan.layers[0]
    simd = cfg.simd
    if cfg.store_depth or first.in_words(simd) <= cfg.act_depth:
        return plan, False
    if first.images > 1:
        words = first.in_words(simd)
        smaller = max(1, cfg.act_depth * first.images // words)    # a batch whose input fits
        raise CompileError(f"layer {first.name}: the input of a batch of {first.images} "
                           f"takes {words} words, an activation buffer holds "
                           f"{cfg.act_depth}, and only rows of one image run in bands "
                           f"(try a batch of {smaller})")
    in_rows = cfg.act_depth // first.in_row_words(simd)       # input rows a buffer holds
    rows = in_rows // first.pool                               # output rows a band makes
    if rows < 1:
        words = first.pool * first.in_row_words(simd)
        raise CompileError(f"layer {first.name}: {first.pool} input row(s) take {words} words, "
                           f"an activation buffer holds {cfg.act_depth} (try a configuration "
                           f"with act_depth {pow2(words)})")
    bands = tuple((r, min(rows, first.out_height - r)) for r in range(0, first.out_height, rows))
    return plan.with_layers((replace(first, bands=bands),) + plan.layers[1:])


def allocate(plan):
    """Buffers alternate 0 -> 1 -> 0 ...; weights and thresholds stack up (from 0 again in
    each weight phase)."""
    cfg = plan.config
    weight_base = threshold_base = 0
    layers = []
    for i, p in enumerate(plan.layers):
        if i and p.phase != plan.layers[i - 1].phase:
            weight_base = threshold_base = 0
        layers.append(replace(p, in_buffer=i % 2, out_buffer=(i + 1) % 2,
                              weight_base=weight_base, threshold_base=threshold_base))
        weight_base += p.bank_words(cfg)
        threshold_base += p.threshold_sets(cfg.pe)
    return plan.with_layers(layers)


def stream(plan):
    """Neuron-fold chunks when a phase's weights do not fit the banks (weight streaming).

    Each layer is split into chunks of whole neuron folds whose weights fit half
    a bank; chunk ``i`` (counting over the whole program) lives in half ``i % 2``.
    :func:`~.codegen.emit` starts ``LOAD_W`` of chunk ``i + 1`` before the RUN of chunk
    ``i``, so the copy (``P`` cycles per bank word) hides under the RUN (one
    cycle per beat, ``batch`` beats per weight word and more). The first chunk
    is small, so the program waits little for its copy; the sizes then grow as
    far as each copy still hides under the RUN before it. Where a layer's copies
    cannot hide (fewer positions than P, e.g. batch 1), its chunks are as large
    as half a bank allows. Each weight phase streams from a store image of its own.
    """
    cfg = plan.config
    if not cfg.store_depth:
        return plan, False      # resident weights, or segments
    layers = []
    for phase in plan.phases():
        if sum(p.bank_words(cfg) for p in phase) <= cfg.core.weight_depth:
            layers += phase     # resident weights
        else:
            layers += _stream_phase(phase, cfg)
    return plan.with_layers(layers)


def _stream_phase(layers, cfg):
    """The layers of one streamed weight phase with their chunks (its store image from
    word 0)."""
    half = cfg.core.weight_depth // 2
    _check_streamable(layers, cfg, half)
    out, src, index, prev_run = [], 0, 0, None
    for p in layers:
        chunks = []
        for tiles in _chunk_sizes(p, cfg, half, prev_run):
            chunks.append(Chunk(first=sum(c.tiles for c in chunks), tiles=tiles,
                                weight_base=(index % 2) * half, src=src))
            src += cfg.pe * tiles * p.words_per_row(cfg.simd)
            index += 1
            prev_run = tiles * p.beats(cfg, 1) + cfg.run_drain(p.out_bits)
        out.append(replace(p, chunks=tuple(chunks)))
    if src > cfg.store_depth:
        names = layers[0].name if len(layers) == 1 else f"{layers[0].name} .. {layers[-1].name}"
        raise CompileError(f"layer {names}: the weights need {src} words of the weight store, "
                           f"it holds {cfg.store_depth} (try a store_depth of {pow2(src)})")
    _check_copies(out, cfg)
    return out


def _check_streamable(layers, cfg, half):
    for p in layers:
        row = p.words_per_row(cfg.simd)
        if row > half:
            raise CompileError(f"layer {p.name}: weight streaming needs a weight row ({row} "
                               f"words) to fit half a bank ({half} words) (try a configuration "
                               f"with weight_depth {pow2(2 * row)})")
        if p.raw and p.bank_words(cfg) > half:
            raise CompileError(f"layer {p.name}: the last layer (raw outputs) must fit half a bank "
                               f"when weights stream: {p.bank_words(cfg)} words, half a bank is "
                               f"{half} (try a configuration with weight_depth "
                               f"{pow2(2 * p.bank_words(cfg))})")
    if cfg.simd // cfg.pe - 1 > ISA_FIELDS["out_slot"].largest:
        raise CompileError(f"weight streaming needs S / P <= {ISA_FIELDS['out_slot'].largest + 1}")


def _chunk_sizes(p, cfg, half, prev_run):
    """The neuron folds of each of layer ``p``'s chunks; ``prev_run``: the cycles of the RUN
    before its first chunk's (None: its first chunk is the program's first)."""
    row, per_tile = p.words_per_row(cfg.simd), p.beats(cfg, 1)
    n_max = half // row

    def load(n):
        return cfg.load_cycles(n * row)

    def run(n):
        return n * per_tile + cfg.run_drain(p.out_bits)

    hides = run(n_max) >= load(n_max)       # a fold takes longer to run than to copy
    sizes, left = [], p.tiles(cfg.pe)
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
        sizes.append(n)
        left, prev_run = left - n, run(n)
    return sizes


def _check_copies(layers, cfg):
    limits = {f.name: f.largest for f in isa.INSTRUCTIONS[Opcode.LOAD_W].fields}
    for p in layers:
        for c in p.chunks:
            for name, value in (("count", c.tiles * p.words_per_row(cfg.simd)), ("src", c.src),
                                ("addr", c.weight_base)):
                if value > limits[name]:
                    raise CompileError(f"layer {p.name}: LOAD_W {name} = {value} exceeds the "
                                       f"ISA's limit {limits[name]}")
