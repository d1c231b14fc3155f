"""Every target figure of docs/benchmarks.md ("Targets") in one run (``tritium bench`` / ``tritium bench all``).

Per board (iCEBreaker, ULX3S), with the board's default accelerator:

* the hardware build (yosys + nextpnr + pack; reused from the build cache
  when the same gateware was built before, its recorded build time kept):
  logic cells, block RAMs, Fmax, the PLL clock, timing met or not;
* a TFC model patched into that bitstream and verified: patch time against
  the full build time (``patch_speedup``);
* LUT4 per lane of the board's PE array (yosys synth, memories excluded);
* images/s of TFC, SFC, LFC and CNV at the board's clock (cycles per image
  from the compiled program, which the RTL matches cycle for cycle) and
  images/s per (LUT x MHz), LUT being the whole placed design, as FINN's;

and for the whole project: per-layer utilisation (SFC, CNV, ...), compile
time of CNV, RTL simulation speed on Verilator (and Icarus where installed),
next to the published anchors (:mod:`tritium.sw.bench.anchors`).
"""

import datetime
import os
import platform
import time
from pathlib import Path

from ...hw.errors import TritiumError
from ...hw.presets import PRESETS
from ..compiler import CompileError, compile_model
from ..compiler.image import image_bytes
from ..model.zoo import reference_network
from .anchors import ANCHORS
from .rtl import RTL_IMAGES, measure_compile_time, measure_rtl_speed
from .utilization import measure_utilization

#: Networks whose throughput is reported, with the batch tried first (then 1). CNV: 2, the
#: most whose 900-word first-layer output a 2048-word ULX3S buffer holds; convolutional
#: networks need an image loop (AccelConfig.max_images) for more than 1.
THROUGHPUT_NETWORKS = (("tfc", 16), ("sfc", 16), ("lfc", 16), ("cnv", 2))


def machine():
    """Where the numbers were measured."""
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "date": datetime.date.today().isoformat()}


def _throughput(preset, clock_mhz, luts, log):
    """images/s and images/s per (LUT x MHz) of every reference network on ``preset``."""
    out = {}
    for arch, batch in THROUGHPUT_NETWORKS:
        model, compiled, reason = reference_network(arch), None, None
        for b in dict.fromkeys((batch, 1)):     # a smaller batch may fit where a large one does not
            try:
                compiled = compile_model(model, PRESETS[preset], batch=b)
                break
            except CompileError as e:
                reason = str(e)         # batch 1's, the last tried: why it does not fit at all
        if compiled is None:
            out[arch] = {"fits": False, "reason": reason}
            continue
        ips = clock_mhz * 1e6 / compiled.cycles_per_image
        out[arch] = {"fits": True, "batch": compiled.batch,
                     "cycles_per_image": compiled.cycles_per_image, "images_per_s": ips,
                     "images_per_s_per_lut_mhz": ips / (luts * clock_mhz)}
        if compiled.segments:
            # The accelerator's own rate; the host loads every segment's model image per
            # batch besides (docs/accelerator.md, "Segments"), which a serial link cannot
            # keep up with: the bytes it sends are reported with it.
            out[arch].update({"segments": len(compiled.segments),
                              "image_bytes_per_batch": sum(
                                  len(image_bytes(compiled.segment(k)))
                                  for k in range(len(compiled.segments)))})
        log(f"{preset}/{arch}: {compiled.cycles_per_image:,.1f} cycles/image, {ips:,.0f} images/s"
            + (f" ({len(compiled.segments)} segments)" if compiled.segments else ""))
    return out


def measure_board(board_name, workdir, seed=1, log=print, pnr_timeout_s=None):
    """Build, patch, LUT4 per lane and throughput figures of one board (a build that fails
    or passes ``pnr_timeout_s`` in nextpnr is reported as not built)."""
    from ...boards.build import HardwareBuildFailed, build, unfinished_summary
    from ...boards.platforms import get_board
    from ..compiler.image import write_images
    from .synth import measure_core

    board = get_board(board_name)
    cfg = PRESETS[board.preset]
    work = Path(workdir) / board.name
    log(f"{board.name}: hardware build of {cfg.describe()}")
    try:
        hw = build(board.name, work / "hardware", seed=seed, log=log, pnr_timeout_s=pnr_timeout_s)
    except TritiumError as e:       # e.g. the design does not fit: reported, the rest goes on
        log(f"{board.name}: not built: {e}")
        result = {"board": board.name, "preset": board.preset, "config_hash": cfg.hash,
                  "lanes": cfg.core.lanes, "built": False, "reason": str(e)}
        # What placement reached, where nextpnr got that far (a time limit in routing).
        pnr_log = e.log_dir / "nextpnr.log" if isinstance(e, HardwareBuildFailed) else None
        if pnr_log is not None and pnr_log.exists():
            result["unfinished"] = unfinished_summary(pnr_log.read_text(errors="replace"))
        return result
    tfc = work / "tfc"
    write_images(compile_model(reference_network("tfc"), cfg), tfc)
    log(f"{board.name}: patching a TFC model into the bitstream")
    patched = build(board.name, work / "tfc-bitstream", model_dir=tfc, seed=seed, log=log)
    log(f"{board.name}: LUT4 per lane of the PE array (yosys synth_{board.family})")
    synth = measure_core(cfg.core, work / "synth", families=(board.family,), fmax=False,
                         baseline=False, log=log)
    clock = min(hw["clock_mhz"], hw["fmax_mhz"])
    return {
        "board": board.name, "preset": board.preset, "config_hash": cfg.hash,
        "lanes": cfg.core.lanes, "built": True, "luts": hw["luts"], "luts_available": hw["luts_available"],
        "rams": hw["rams"], "rams_available": hw["rams_available"],
        "fmax_mhz": hw["fmax_mhz"], "clock_mhz": hw["clock_mhz"], "target_mhz": hw["target_mhz"],
        "timing_met": hw["timing_met"], "build_seconds": hw["build_seconds"],
        "build_cached": hw["cached"], "patch_seconds": patched["patch_pack_seconds"],
        "patch_speedup": hw["build_seconds"] / patched["patch_pack_seconds"],
        "patch_verified_rams": patched["rams_verified"],
        "lut4_per_lane": synth[f"{board.family}_tree_lut4_per_lane"],
        "pe_array_lut4": synth[f"{board.family}_tree_lut4"],
        "throughput": _throughput(board.preset, clock, hw["luts"], log),
    }


def measure_all(workdir, boards=("icebreaker", "ulx3s"), seed=1, log=print,
                pnr_timeout_s=None):
    """The whole benchmark; a JSON-ready dict (keys listed in docs/benchmarks.md)."""
    t0 = time.monotonic()
    log("utilisation per layer (compiled cycle model)")
    util = measure_utilization(log=log)
    per_board = {b: measure_board(b, workdir, seed=seed, log=log, pnr_timeout_s=pnr_timeout_s)
                 for b in boards}
    built = {b: r for b, r in per_board.items() if r["built"]}
    log("compile time of CNV for the ulx3s preset (in segments)")
    compile_time = measure_compile_time("cnv", "ulx3s")
    rtl = {}
    for sim in ("verilator", "icarus"):
        log(f"RTL simulation speed on {sim}")
        rtl[sim] = measure_rtl_speed(sim, "sfc", "ulx3s", images=RTL_IMAGES[sim], batch=16,
                                     workdir=Path(workdir) / "rtl", log=log)
    result = {
        "machine": machine(),
        "utilization": {k: v.get("layers", v) for k, v in util.items()},
        "utilization_detail": util,
        "boards": per_board,
        "lut4_per_lane": {b: r["lut4_per_lane"] for b, r in built.items()},
        "fmax_mhz": {b: r["fmax_mhz"] for b, r in built.items()},
        "timing_met": {b: r["timing_met"] for b, r in built.items()},
        "images_per_s": {f"{b}/{net}": t.get("images_per_s")
                         for b, r in built.items() for net, t in r["throughput"].items()},
        "images_per_s_per_lut_mhz": {f"{b}/{net}": t.get("images_per_s_per_lut_mhz")
                                     for b, r in built.items()
                                     for net, t in r["throughput"].items()},
        "patch_speedup": {b: r["patch_speedup"] for b, r in built.items()},
        "compile_seconds": compile_time,
        "rtl_cycles_per_s": {sim: r.get("cycles_per_s") for sim, r in rtl.items()},
        "rtl_detail": rtl,
        "anchors": [a.as_dict() for a in ANCHORS],
    }
    result["seconds"] = round(time.monotonic() - t0, 1)
    return result
