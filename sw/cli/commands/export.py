"""Export a trained checkpoint to the integer model (IR file, docs/ir.md).

Folds alpha, the input scale, bias and BatchNorm into integer thresholds per
channel (one for sign outputs, 2^K - 1 for K-bit outputs; rows with negative
gamma negated, gamma == 0 made constant),
packs the weights, keeps the last layer's raw accumulators and stores the
float map onto PyTorch's logits in the file's metadata. Anything the
hardware cannot run (float weights, ReLU, pooling before the sign, ...) is
refused with the layer's name and the reason.

Examples:
  tritium export tfc.pt -o tfc.npz
  tritium export sfc.pt -o sfc.npz --verify --json

--verify runs the held-out split of the data set the checkpoint was trained
on through PyTorch and through the exported model, and fails (writing
nothing) unless they agree on every image and the logits match exactly.
"""

from ...util.console import print_json, step

NAME = "export"
HELP = "export a trained checkpoint to the integer model file"


def add_arguments(parser):
    parser.add_argument("checkpoint", help="checkpoint written by 'tritium train'")
    parser.add_argument("-o", "--output", required=True, help="integer model file to write")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")
    parser.add_argument("--verify", action="store_true",
                        help="compare PyTorch and the integer model on the held-out images")
    parser.add_argument("--dataset", default=None,
                        help="data set for --verify (default: the one the checkpoint was trained on)")
    parser.add_argument("--json", action="store_true", help="print a summary as JSON on stdout")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output on stderr")


def run(args):
    from ....hw.errors import TritiumError
    from ...model.ir import save_model
    from ...train.export import export_net
    from ...train.models import load_checkpoint
    from ...util.fileio import check_output_file

    check_output_file(args.output, args.force)
    net, extra = load_checkpoint(args.checkpoint)
    dataset = args.dataset or extra.get("dataset")
    model = export_net(net, meta={"dataset": extra.get("dataset")})
    result = {"output": str(args.output), "layers": [layer.name for layer in model.layers],
              "negated_rows": model.meta["negated_rows"]}
    if args.verify:
        from ...train.train import verify

        if dataset is None:
            raise TritiumError("--verify needs --dataset (the checkpoint does not name one)")
        result.update(verify(net, model, dataset))
        if result["agreement"] != 1.0 or not result["logits_exact"]:
            raise TritiumError(f"PyTorch and the integer model disagree (agreement "
                               f"{result['agreement']:.4f}, logits exact: {result['logits_exact']}); "
                               "nothing written")
    save_model(model, args.output)
    step(f"wrote {args.output}", args.quiet)
    if args.json:
        print_json(result)
    else:
        print(model.summary())
        if args.verify:
            print(f"held-out: accuracy {result['accuracy']:.4f}, integer {result['accuracy_integer']:.4f}, "
                  f"agreement {result['agreement']:.4f}")
    return 0
