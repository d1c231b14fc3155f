"""Code generation: row constants, memory images and programs.

:func:`attach_row_constants` and :func:`emit_runs` are passes (``plan -> (plan,
changed)``); :func:`memories` and :func:`emit` make one weight phase's images and
one program.
"""

from dataclasses import replace

import numpy as np

from ...hw import isa
from ...hw.contract import folded_thresholds, never, row_offsets
from ...hw.isa import Opcode
from ...hw.weight_kinds import split_weights
from ..model.layout import lanes_to_int, window_rows
from .compiled import Segment
from .errors import CompileError, pow2
from .plan import Chunk


def attach_row_constants(plan):
    """Every layer's row constants ``K`` (``reference accumulator = D - K``)."""
    core = plan.config.core
    return plan.with_layers(
        replace(p, row_constants=tuple(row_offsets(p.layer, p.in_act, core,
                                                   p.plane_words(core.simd))))
        for p in plan.layers)


def emit_runs(plan):
    """The :class:`Segment` runs of one batch (``plan.runs``: each weight phase's memories
    and programs, the first layer's bands first, one run each) and the first run's
    weight-store image (``plan.store_words``; a later phase's is its segment's)."""
    cfg, phases = plan.config, plan.phases()
    first = plan.layers[0]
    row_words = first.in_row_words(cfg.simd) * first.pool
    runs, store = [], None
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
                runs.append(Segment(program, None if b else banks, None if b else thresholds,
                                    input_words))
            continue
        for j, program in enumerate(program_parts(phase, cfg)):
            # A phase's later parts read the store its first part's image wrote: []
            # (their images carry no WSTORE section; the store keeps its words).
            store_image = None          # the first run's: Compiled.store_words
            if cfg.store_depth and (j or k):
                store_image = [] if j else words
            runs.append(Segment(program, None if j else banks, None if j else thresholds,
                                (0, None) if k == j == 0 else None, store_image))
    emitted = replace(plan, runs=tuple(runs), store_words=store)
    return emitted, emitted != plan


def weight_words(p, core):
    """Layer ``p``'s weight rows as bank words (rows, words_per_row): each plane's words,
    top plane first; sign bits, and on a core with mask words the mask bits above them
    (the plane's mask, or the valid lanes of a bipolar plane)."""
    simd, values = core.simd, p.layer.weight_values()
    positions = p.kernel[0] * p.kernel[1]
    sign, mask = split_weights(values, p.layer.weight_kind)            # (E, M, F) each
    valid = lanes_to_int(window_rows(np.ones_like(values), positions, p.in_channels, simd) != 0)
    planes = []
    for e in reversed(range(p.weight_planes)):
        words = lanes_to_int(window_rows(sign[e], positions, p.in_channels, simd) != 0)
        if core.ternary:
            plane_mask = valid if mask is None else lanes_to_int(
                window_rows(mask[e], positions, p.in_channels, simd) != 0)
            words = words + (plane_mask << simd)
        planes.append(words)
    return np.concatenate(planes, axis=1)


def memories(layers, cfg):
    """Weight-bank, threshold-memory and weight-store images of one weight phase.

    Resident weights go to the banks: row ``r`` to bank ``r % P`` from word
    ``weight_base + (r // P) * words_per_row``. Streamed weights go to the store,
    chunk after chunk, bank-major within a chunk (the order ``LOAD_W`` reads).
    """
    core = cfg.core
    banks = [[0] * core.weight_depth for _ in range(core.pe)]
    store = []
    thresholds = [[[never(core)] * core.n_thresholds for _ in range(core.thr_depth)]
                  for _ in range(core.pe)]
    for p in layers:
        words = weight_words(p, core)
        n_words = p.words_per_row(core.simd)
        if p.chunks:
            rows = np.zeros((p.tiles(core.pe) * core.pe, n_words), object)
            rows[:p.out_channels] = words
            rows = rows.reshape(p.tiles(core.pe), core.pe, n_words)
            for c in p.chunks:
                part = rows[c.first:c.first + c.tiles].transpose(1, 0, 2).reshape(-1)
                store += [int(w) for w in part]
        for r in range(0 if p.chunks else p.out_channels):
            base = p.weight_base + (r // core.pe) * n_words
            for j in range(n_words):
                banks[r % core.pe][base + j] = int(words[r, j])
        if not p.raw:
            folded = folded_thresholds(p.layer, p.in_act, core, p.plane_words(core.simd))
            for pe in range(core.pe):
                for tile, values in enumerate(folded[pe]):
                    thresholds[pe][p.threshold_base + tile] = list(values)
    return banks, thresholds, store


def emit(layers, cfg, band=None, part=None):
    """The program: per layer CFG_IN, CFG_WIN, CFG_OUT, CFG_MEM, RUN; then END.

    A streamed layer has a CFG_OUT, CFG_MEM, RUN per chunk; ``LOAD_W`` of the
    program's first chunk comes first, that of chunk ``i + 1`` right before
    the RUN of chunk ``i`` (it waits for the copy of chunk ``i``), and the last
    RUN waits for its own copy (``wait_w``). ``band``: ``(first output row, rows)``
    of the first layer's RUN (a segment's band; its input rows are in buffer 0 from
    address 0, its output rows go where the whole layer's would). ``part``:
    ``(first, end)`` of the streamed chunks (counted over ``layers``) this program
    runs: a phase whose program is longer than the program memory runs in parts
    (:func:`program_parts`).
    """
    return _fits_program_memory(_emit(layers, cfg, band, part), cfg)


def _fits_program_memory(program, cfg):
    if len(program) > cfg.prog_depth:
        raise CompileError(f"the program has {len(program)} instructions, the program memory "
                           f"holds {cfg.prog_depth} (try a configuration with prog_depth "
                           f"{pow2(len(program))})")
    return program


def program_parts(layers, cfg):
    """The programs of one weight phase: one, or, when a streamed phase's program is longer
    than the program memory, several runs of consecutive chunks, each as many as fit
    (the weight store and the banks' halves are the same for all; each part's first
    copy is waited for)."""
    program = _emit(layers, cfg)
    n = sum(len(p.chunks or ()) for p in layers)
    if len(program) <= cfg.prog_depth or not n:
        return [_fits_program_memory(program, cfg)]
    parts, first = [], 0
    while first < n:
        end = first + 1     # one chunk whose program is too long alone is refused
        program = _fits_program_memory(_emit(layers, cfg, part=(first, end)), cfg)
        while end < n:
            longer = _emit(layers, cfg, part=(first, end + 1))
            if len(longer) > cfg.prog_depth:
                break
            program, end = longer, end + 1
        parts.append(program)
        first = end
    return parts


def _emit(layers, cfg, band=None, part=None):
    """:func:`emit` without the program-memory check."""
    streamed = [(p, c) for p in layers for c in (p.chunks or ())]
    first, end = (0, len(streamed)) if part is None else part
    program = [_load(*streamed[first], cfg)] if first < end else []
    counted = 0                     # streamed chunks of the layers before this one
    for i, p in enumerate(layers):
        if p.chunks:
            runs = [(g, c) for g, c in enumerate(p.chunks, counted) if first <= g < end]
            counted += len(p.chunks)
        else:
            runs = [(None, Chunk(first=0, tiles=p.tiles(cfg.pe), weight_base=p.weight_base,
                                 src=0))] if part is None else []
        if not runs:
            continue                # a part of a streamed phase without this layer's chunks
        banded = band is not None and i == 0
        first_row, out_rows = band if banded else (0, p.out_height)
        program += _layer_setup(p, cfg, out_rows * p.pool if banded else p.in_height)
        for g, c in runs:
            wait = 0
            if g is not None:       # streamed: start the next chunk's copy, or wait for this one's
                if g + 1 < end:
                    program.append(_load(*streamed[g + 1], cfg))
                else:
                    wait = 1
            program += _chunk_run(p, c, cfg, first_row, out_rows, wait)
    program.append(isa.encode(Opcode.END))
    return program


def _load(p, c, cfg):
    return _encode(cfg, f"layer {p.name}", Opcode.LOAD_W, addr=c.weight_base,
                   count=c.tiles * p.words_per_row(cfg.simd), src=c.src)


def _layer_setup(p, cfg, in_rows):
    """CFG_IN and CFG_WIN of layer ``p`` (``in_rows``: the rows its RUNs read)."""
    simd, where = cfg.simd, f"layer {p.name}"
    return [
        _encode(cfg, where, Opcode.CFG_IN, in_buf=p.in_buffer, in_base=0, in_h=in_rows,
                in_w=p.in_width, in_cw=p.in_channel_words(simd), in_planes=p.planes,
                in_signed=int(p.signed), in_bipolar=int(p.bipolar), extra_images=p.images - 1),
        _encode(cfg, where, Opcode.CFG_WIN, kh=p.kernel[0], kw=p.kernel[1], sh=p.stride[0],
                sw=p.stride[1], ph=p.padding[0], pw=p.padding[1], pad_code=p.pad_code(),
                last_lanes=p.last_lanes(simd)),
    ]


def _chunk_run(p, c, cfg, first_row, out_rows, wait):
    """CFG_OUT, CFG_MEM and RUN of chunk ``c`` of layer ``p`` (output rows ``first_row ..
    first_row + out_rows - 1``; ``wait``: the RUN waits for its own copy)."""
    simd, pe, where = cfg.simd, cfg.pe, f"layer {p.name}"
    if p.raw:
        out_base = p.result_base + first_row * p.out_width * p.tiles(pe)
    else:
        out_base = c.first // (simd // pe) + first_row * p.out_row_words(simd)
    return [
        _encode(cfg, where, Opcode.CFG_OUT, out_buf=p.out_buffer, out_base=out_base,
                out_h=out_rows, out_w=p.out_width, out_cw=p.out_channel_words(simd),
                out_bits=p.out_bits, pool=p.pool, out_slot=c.first % (simd // pe)),
        _encode(cfg, where, Opcode.CFG_MEM, w_base=c.weight_base,
                t_base=p.threshold_base + c.first, tiles=c.tiles, ternary=int(p.ternary),
                extra_w_planes=p.weight_planes - 1),
        _encode(cfg, where, Opcode.RUN, wait_w=wait),
    ]


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
