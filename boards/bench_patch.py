"""Benchmark: patching a model into a cached bitstream against a full rebuild.

:func:`measure_patch` makes, in a private cache, one hardware build of a
board, patches a small random model into it (``tritium build --model``),
then rebuilds the same design from scratch with the model as memory
init, and compares the block RAMs of both bitstreams. It prints seconds,
never passes or fails on them (docs/boards.md records the figures).
"""

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from ..hw.accel_config import AccelConfig
from ..hw.config import HwConfig

#: A small accelerator that fits both boards and builds in about a minute here.
SMALL = AccelConfig(core=HwConfig(pe=2, simd=16, weight_depth=128, thr_depth=32, act_bits=1),
                    act_depth=64, prog_depth=32, res_depth=8)


def small_dense_model(seed=0):
    """A 64-32-10 binary dense model on 8x8 bipolar inputs (fits :data:`SMALL`)."""
    from ..sw.model.ir import ActType, Dense, IntModel
    rng = np.random.default_rng(seed)
    w0 = 2 * rng.integers(0, 2, (32, 64)) - 1
    w1 = 2 * rng.integers(0, 2, (10, 32)) - 1
    t0 = rng.integers(-8, 8, (32, 1))
    return IntModel((8, 8, 1), ActType("bipolar"), [
        Dense.from_values("fc0", w0, "binary", thresholds=t0, out_act="bipolar"),
        Dense.from_values("fc1", w1, "binary")],
        meta={"input_quant": {"kind": "binarise", "threshold": 128}})


def measure_patch(board_name="icebreaker", cfg=SMALL, seed=1, log=print):
    """Seconds of a hardware build, a patch and a rebuild; whether the RAMs agree."""
    import os
    from . import bram
    from ..sw.compiler import compile_model
    from ..sw.compiler.image import write_images
    from .build import build, load_model_init, rebuild_rams, unpack_rams
    from .platforms import get_board

    board = get_board(board_name)
    with tempfile.TemporaryDirectory(prefix="tritium-bench-patch-") as tmp:
        tmp = Path(tmp)
        old = os.environ.get("TRITIUM_BUILD_CACHE")
        os.environ["TRITIUM_BUILD_CACHE"] = str(tmp / "cache")
        try:
            hw = tmp / "hw.json"
            hw.write_text(json.dumps(cfg.canonical()))
            write_images(compile_model(small_dense_model(), cfg), tmp / "model")
            t0 = time.monotonic()
            first = build(board.name, tmp / "hw", seed=seed, hw=str(hw), log=log)
            t_first = time.monotonic() - t0
            patched = build(board.name, tmp / "patched", model_dir=tmp / "model", seed=seed,
                            hw=str(hw), log=log)
            (tmp / "rebuild").mkdir()
            t0 = time.monotonic()
            ref, _ = rebuild_rams(board, cfg, load_model_init(tmp / "model", cfg), seed,
                                  tmp / "rebuild", log)
            t_rebuild = time.monotonic() - t0
            (tmp / "unpack").mkdir()
            got = unpack_rams(board, patched["bitstream"], tmp / "unpack")
        finally:
            if old is None:
                os.environ.pop("TRITIUM_BUILD_CACHE", None)
            else:
                os.environ["TRITIUM_BUILD_CACHE"] = old
    return {"board": board.name, "config_hash": cfg.hash, "lanes": cfg.core.lanes,
            "luts": first["luts"], "rams": first["rams"], "fmax_mhz": first["fmax_mhz"],
            "clock_mhz": first["clock_mhz"], "hardware_build_seconds": round(t_first, 1),
            "rebuild_seconds": round(t_rebuild, 1),
            "patch_seconds": patched["patch_seconds"],
            "patch_pack_seconds": patched["patch_pack_seconds"],
            "verify_seconds": patched["verify_seconds"],
            "speedup": round(t_rebuild / patched["patch_pack_seconds"], 1),
            "rams_equal_to_rebuild": bram.compare_rams(got, ref) == []}
