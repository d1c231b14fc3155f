"""Digests of everything the compiler makes for the reference networks.

Compiles every reference network (tfc, sfc, lfc, cnv, cnn) on every board preset at
the batches the benchmarks use (1, 2, 16, 32), plus a ternary network and a
convolution the host does not unfold, and hashes, per case: every program word,
weight-bank, threshold and weight-store image of every run, the input words each
run takes, the io description (cycle counts, per-layer figures, row constants),
the packed input of a batch of random images and the accumulators read back from
a pattern of result entries. A refusal is hashed as its message.

    python scripts/compiler_digest.py            # one line per case, then the total
    python scripts/compiler_digest.py --total    # the total only

A refactoring of the compiler leaves every digest as it is; a change meant to change
what the compiler makes changes the digests of the cases it touches.
"""

import argparse
import hashlib
import json
import sys

import numpy as np

from tritium.hw.accel_config import AccelConfig
from tritium.hw.config import HwConfig
from tritium.hw.presets import PRESETS
from tritium.sw.compiler import CompileError, compile_model, pack_input, results_to_accumulators
from tritium.sw.model.zoo import random_inputs, random_model, reference_network

BATCHES = (1, 2, 16, 32)
NETWORKS = ("tfc", "sfc", "lfc", "cnv", "cnn")


def _network(arch):
    if arch == "cnn":
        return random_model("cnn", input_act="uint8", seed=1)
    return reference_network(arch)


def cases():
    """``(name, model, config, batch)`` of every case."""
    for arch in NETWORKS:
        model = _network(arch)
        for preset in PRESETS:
            for batch in BATCHES:
                yield f"{preset}/{arch}/b{batch}", model, PRESETS[preset], batch
    ternary = random_model("tfc", (10, 10, 1), "bipolar", weight_kind="ternary", seed=5)
    cfg = AccelConfig(core=HwConfig(pe=4, simd=16, weight_kinds=("binary", "ternary"),
                                    weight_depth=512), res_depth=64)
    for batch in (1, 3):
        yield f"custom/tfc-ternary/b{batch}", ternary, cfg, batch
    cnv = random_model("cnv", (32, 32, 3), "uint8", seed=2)
    roomy = AccelConfig(core=HwConfig(pe=8, simd=64, act_bits=8, weight_depth=8192,
                                      thr_depth=256), act_depth=8192)
    yield "custom/cnv-roomy/b1", cnv, roomy, 1


def digest(model, cfg, batch):
    """The hex digest of what compiling ``model`` for ``cfg`` at ``batch`` makes."""
    h = hashlib.sha256()
    try:
        compiled = compile_model(model, cfg, batch=batch)
    except CompileError as e:
        h.update(f"refused: {e}".encode())
        return h.hexdigest()
    for run in compiled.runs():
        h.update(repr((run.program, run.weight_banks, run.threshold_banks, run.input_words,
                       run.store_words)).encode())
    h.update(repr(compiled.store_words).encode())
    h.update(json.dumps(compiled.io, sort_keys=True).encode())
    h.update(repr(compiled.cycles_per_run).encode())
    x = random_inputs(model, batch, seed=7)
    h.update(repr(pack_input(compiled, x)).encode())
    o = compiled.io["output"]
    n = o["h"] * o["w"] * o["tiles"]
    entries = (np.arange(n * cfg.pe, dtype=np.int64) * 7919 % 1009 - 500).reshape(n, cfg.pe)
    h.update(results_to_accumulators(compiled, [entries.tolist()]).tobytes())
    return h.hexdigest()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--total", action="store_true", help="print the total digest only")
    args = parser.parse_args(argv)
    total = hashlib.sha256()
    for name, model, cfg, batch in cases():
        d = digest(model, cfg, batch)
        total.update(f"{name} {d}\n".encode())
        if not args.total:
            print(f"{name:28} {d[:16]}", flush=True)
    print(f"total {total.hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
