"""Analyses of a compiled plan: they read it and change nothing.

:func:`io_description` is what the host needs besides the memory images;
:func:`program_timing` the cycles of one program run, as the ISA-level simulator
and the RTL count them.
"""

import hashlib

from ...hw import isa
from ...hw.accel_config import Timeline
from ...hw.isa import Opcode


def io_description(plan):
    """The host-side description of a compiled :class:`~.plan.ModelPlan` (JSON-compatible).

    Per layer: its RUNs, their beats, and its cycles (RUNs plus the cycles the
    controller waits for ``LOAD_W`` copies before them: :func:`program_timing`).
    The run cycles start with the instructions before a layer's first RUN. A model
    that runs in segments lists each run's cycles and input words, and a digest of
    them all (``segment_set``).
    """
    layers, cfg, runs = plan.layers, plan.config, plan.runs
    first, last = layers[0], layers[-1]
    total, layer_cycles, per_run = _cycles(layers, cfg, [run.program for run in runs])
    io = {
        "batch": plan.batch,
        # A run's tensors: its images one after another (h: the rows of all of them).
        "input": {"h": first.images * first.in_height, "w": first.in_width,
                  "c": first.in_channels, "act": str(first.in_act),
                  "unfold": None if first.unfold is None else first.unfold.as_dict()},
        "output": {"h": last.images * last.out_height, "w": last.out_width,
                   "m": last.out_channels, "tiles": last.tiles(cfg.pe),
                   "res_base": last.result_base,
                   "row_constants": [int(k) for k in last.row_constants]},
        "cycles": total,
        "layers": [{"name": p.name, "pool": p.pool_name, "beats": sum(p.run_beats(cfg)),
                    "runs": len(p.run_beats(cfg)), "cycles": c,
                    "useful_lane_ops": p.useful_lane_ops(),
                    "utilization": p.useful_lane_ops() / (cfg.core.lanes * c)}
                   for p, c in zip(layers, layer_cycles)],
    }
    if len(runs) > 1:
        io["segments"] = [{"cycles": c, "input_words": list(run.input_words)
                           if run.input_words else None} for run, c in zip(runs, per_run)]
        io["segment_set"] = segment_set(runs)
    return io


def segment_set(runs):
    """Names a set of segments: an image of another compilation (even of a model with the
    same shapes) is refused beside them (tritium.sw.compiler.image.read_compiled)."""
    return hashlib.sha256(repr([
        (run.program, run.weight_banks, run.threshold_banks, run.store_words) for run in runs
    ]).encode()).hexdigest()[:16]


def _cycles(layers, cfg, programs):
    """``(total, per layer, per program)`` cycles of the programs of one batch."""
    runs = [(p.index, beats) for p in layers for beats in p.run_beats(cfg)]
    total, layer_cycles, per_program = 0, [0] * len(layers), []
    for program in programs:
        n = sum(isa.decode(w)[0] == Opcode.RUN for w in program)
        cycles, per_layer = program_timing(program, runs[:n], len(layers), cfg)
        runs = runs[n:]
        total += cycles
        per_program.append(cycles)
        layer_cycles = [a + b for a, b in zip(layer_cycles, per_layer)]
    return total, layer_cycles, per_program


def program_timing(program, runs, n_layers, cfg):
    """Cycles of one program run and of each layer, from the program and its RUNs
    (``runs``: ``(layer index, beats)`` of each RUN, in order).

    Follows :class:`tritium.hw.accel_config.Timeline`, as the ISA-level
    simulator does; the RTL agrees (tests/hw/test_accel.py).
    """
    t, layer_cycles, k = Timeline(cfg), [0] * n_layers, 0
    out_bits = 0                # CFG_OUT's, as the RUNs read it
    for word in program:
        opcode, args = isa.decode(word)
        if opcode == Opcode.RUN:
            layer, beats = runs[k]
            layer_cycles[layer] += t.run(beats, args["wait_w"], out_bits)
            k += 1
        elif opcode == Opcode.LOAD_W:
            t.load(args["count"])
        elif opcode == Opcode.END:
            t.end()
            break
        else:
            if opcode == Opcode.CFG_OUT:
                out_bits = args["out_bits"]
            t.step()
    return t.cycles, layer_cycles
