"""The cost of each weight kind on the board presets (``tritium bench kinds``).

For a preset and a weight kind the configuration is the preset's with the kind
added to its core's ``weight_kinds`` (:func:`kind_config`; unchanged when the
preset lists it already). Per configuration:

* the reference networks (:data:`KIND_NETWORKS`, random weights of the kind in
  every layer, bipolar inputs) compiled for it, batch as in
  :data:`tritium.sw.bench.utilization.CASES`: cycles per image from the ISA
  simulator (weight streaming as the compiler schedules it), and the weight
  memory the model occupies (:func:`weight_memory_bits`);
* yosys synthesis of the accelerator as ``tritium bench fit`` runs it
  (:func:`tritium.sw.bench.synth.accel_fit`): LUT4, flip-flops, block RAMs,
  SPRAMs beside the device's;
* on the boards named in ``pnr`` the hardware build of the board top
  (:func:`tritium.boards.build.cached_hardware`: yosys, nextpnr): placed logic
  cells, block RAMs, Fmax and whether it meets the board's clock.

Synthesis results are kept in the build cache
(:func:`tritium.boards.build.cache_root`) under the configuration hash and the
gateware sources' fingerprint, next to the hardware builds (the build cache's
own). A rerun measures only what changed, and an interrupted run resumes.
"""

import json
import tempfile
from dataclasses import replace
from pathlib import Path

from ...hw.presets import PRESETS
from ...hw.weight_kinds import WEIGHT_KIND_NAMES
from ..compiler import CompileError, compile_model
from ..model.zoo import NETWORK_INPUTS, random_inputs, random_model
from ..run.isasim import simulate
from ..util.console import markdown_table
from ..util.fileio import atomic_write_text
from .utilization import CASES

#: The networks measured per kind (fully connected, bipolar inputs).
KIND_NETWORKS = ("tfc", "sfc")


def kind_config(preset, kind):
    """The preset's :class:`AccelConfig` with ``kind`` added to its core's weight kinds
    (the accumulator width derived again: more weight planes need more bits)."""
    cfg = PRESETS[preset]
    core = cfg.core
    if kind in core.weight_kinds:
        return cfg
    return replace(cfg, core=replace(core, weight_kinds=core.weight_kinds + (kind,), acc_bits=None))


def weight_memory_bits(compiled):
    """Bits of weight memory the compiled model occupies: every layer's words (its planes,
    each a sign word and, on a core with mask words, a mask word; the last tile's unused
    rows included), ``weight_width`` bits each, in the banks or the weight store."""
    core = compiled.config.core
    return sum(p.bank_words(core) for p in compiled.plans) * core.pe * core.weight_width


def network_figures(cfg, arch, kind, batch, seed=1):
    """:func:`model_figures` of reference network ``arch`` with random weights of ``kind``
    in every layer."""
    shape, act = NETWORK_INPUTS[arch]
    return model_figures(cfg, random_model(arch, shape, act, weight_kind=kind, seed=seed),
                         batch, seed)


def model_figures(cfg, model, batch, seed=1):
    """Cycles per image (ISA simulator, a batch of random inputs) and weight-memory bits of
    ``model`` compiled for ``cfg`` at ``batch``; a model that does not fit is
    ``{"fits": False, "reason": ...}``."""
    try:
        compiled = compile_model(model, cfg, batch=batch)
    except CompileError as e:
        return {"fits": False, "reason": str(e)}
    _, cycles, _ = simulate(compiled, random_inputs(model, compiled.batch, seed=seed))
    return {"fits": True, "batch": compiled.batch, "cycles_per_image": cycles[0] / compiled.batch,
            "weight_bits": weight_memory_bits(compiled),
            "streamed": bool(compiled.store_words), "segments": len(compiled.segments) or 1}


def _batch(preset, arch):
    return next(b for p, a, b in CASES if (p, a) == (preset, arch))


class ResultCache:
    """JSON records in the build cache, one per (what, preset, configuration, sources)."""

    def __init__(self, fingerprint, root=None):
        from ...boards.build import cache_root
        self.root, self.fingerprint = Path(root) if root else cache_root(), fingerprint

    def path(self, what, preset, cfg):
        return self.root / f"kinds-{what}-{preset}-{cfg.hash}-{self.fingerprint}.json"

    def get(self, what, preset, cfg):
        path = self.path(what, preset, cfg)
        return json.loads(path.read_text()) if path.exists() else None

    def put(self, what, preset, cfg, record):
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path(what, preset, cfg), json.dumps(record, indent=2) + "\n")
        return record


def synth_figures(preset, cfg, cache, workdir, log):
    """yosys figures of the accelerator ``cfg`` (:func:`accel_fit`), from ``cache`` or
    measured now and cached."""
    from .synth import accel_fit
    found = cache.get("synth", preset, cfg)
    if found is not None:
        log(f"{preset} {cfg.hash}: synthesis found in the cache")
        return found
    with tempfile.TemporaryDirectory(prefix="tritium-kinds-") as tmp:
        work = Path(workdir or tmp) / f"{preset}-{cfg.hash}"
        row = accel_fit(preset, cfg, work, log)
    return cache.put("synth", preset, cfg, row)


def board_figures(preset, cfg, seed, log, pnr_timeout_s=None, fingerprint=None):
    """The hardware build of the preset's board with ``cfg`` (from the build cache, or made
    now and cached there); a build that fails (nextpnr overfills the device or passes
    ``pnr_timeout_s``, a tool stops) is ``{"built": False, "reason": ...}``, tried again
    on the next run."""
    from ...boards.build import cached_hardware
    from ...boards.platforms import get_board
    from ...hw.errors import TritiumError

    board = get_board(preset)           # every preset is named after its board
    try:
        _, hw, _ = cached_hardware(board, cfg, seed, log, pnr_timeout_s, fingerprint)
    except TritiumError as e:
        log(f"{preset} {cfg.hash}: not built: {e}")
        return {"built": False, "reason": str(e)}
    return {"built": True, "seed": seed, **{k: hw[k] for k in (
        "luts", "luts_available", "rams", "rams_available", "fmax_mhz", "clock_mhz",
        "timing_met", "build_seconds")}}


def measure_kinds(presets=("icebreaker", "ulx3s"), kinds=WEIGHT_KIND_NAMES, pnr=("icebreaker",),
                  seed=1, workdir=None, log=print, pnr_timeout_s=None, cache_root=None,
                  synthesize=True):
    """The table: ``{"rows": [{"preset", "kind", "weight_kinds", "config_hash", "networks",
    "synth", "board"}, ...], "fingerprint"}``. Every row's networks and synthesis come
    first, the hardware builds (presets in ``pnr``, where synthesis fits the device) after
    them. ``synthesize`` False leaves out the hardware figures (``synth`` and ``board``
    None)."""
    from ...boards.build import source_fingerprint

    cache = ResultCache(source_fingerprint(), cache_root)
    rows = []
    for preset in presets:
        for kind in kinds:
            cfg = kind_config(preset, kind)
            log(f"{preset} + {kind}: {cfg.core.describe()}")
            nets = {arch: network_figures(cfg, arch, kind, _batch(preset, arch))
                    for arch in KIND_NETWORKS}
            log(f"{preset} + {kind}: " + ", ".join(
                f"{arch.upper()} {n['cycles_per_image']:,.1f} cycles/image, "
                f"{n['weight_bits']:,} weight bits" if n["fits"] else f"{arch.upper()} does not fit"
                for arch, n in nets.items()))
            rows.append({"preset": preset, "kind": kind, "weight_kinds": list(cfg.core.weight_kinds),
                         "default": kind in PRESETS[preset].core.weight_kinds,
                         "config_hash": cfg.hash, "acc_bits": cfg.core.acc_bits, "networks": nets,
                         "synth": synth_figures(preset, cfg, cache, workdir, log)
                         if synthesize else None, "board": None})
    for row in rows:
        if synthesize and row["preset"] in pnr:
            cfg = kind_config(row["preset"], row["kind"])
            row["board"] = (board_figures(row["preset"], cfg, seed, log, pnr_timeout_s,
                                          cache.fingerprint)
                            if row["synth"]["fits"] else {"built": False, "reason": _over(row["synth"])})
    return {"rows": rows, "fingerprint": cache.fingerprint}


def _over(synth):
    """Why synthesis says the accelerator does not fit its device (one line)."""
    over = [f"{synth[k]:,} {what} of {synth['device_' + k]:,}"
            for k, what in (("lut4", "LUT4"), ("bram", "block RAMs"), ("spram", "SPRAMs"))
            if synth[k] > synth["device_" + k]]
    return f"needs {', '.join(over)} (yosys; not placed)"


HEADERS = ["preset", "kind", "weight_kinds", "acc bits"] + [
    f"{arch.upper()} {what}" for arch in KIND_NETWORKS for what in ("cycles/image", "weight bits")
] + ["LUT4 (yosys)", "block RAM (yosys)", "placed cells", "Fmax MHz"]


def table_rows(result):
    """The rows of :data:`HEADERS` (text and Markdown tables)."""
    return [[r["preset"], r["kind"] + (" (default)" if r["default"] else ""),
             "+".join(r["weight_kinds"]), r["acc_bits"]]
            + [c for arch in KIND_NETWORKS for c in _network_cells(r["networks"][arch])]
            + _hardware_cells(r["synth"], r["board"])
            for r in result["rows"]]


def _network_cells(n):
    if not n["fits"]:
        return ["does not fit", "-"]
    batch = f" (batch {n['batch']}{', streamed' if n['streamed'] else ''})"
    return [f"{n['cycles_per_image']:,.1f}{batch}", f"{n['weight_bits']:,}"]


def _percent(used, available):
    return f"{used:,} / {available:,} ({100 * used / available:.0f} %)"


def _hardware_cells(synth, board):
    if synth is None:
        return ["-"] * 4
    cells = [_percent(synth["lut4"], synth["device_lut4"]),
             _percent(synth["bram"], synth["device_bram"])
             + (f" + {synth['spram']} / {synth['device_spram']} SPRAM" if synth["spram"] else "")]
    if board is None:
        return cells + ["not placed", "-"]
    if not board["built"]:
        return cells + ["NO: " + board["reason"], "-"]
    met = "" if board["timing_met"] else f" (below {board['clock_mhz']:g})"
    return cells + [_percent(board["luts"], board["luts_available"]),
                    f"{board['fmax_mhz']:.2f}{met}"]


def markdown(result):
    """The table in Markdown (docs/benchmarks.md, "Weight kinds")."""
    return markdown_table(table_rows(result), HEADERS)
