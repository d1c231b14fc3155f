"""Benchmarks that print measured numbers (never pass/fail timing tests).

  tritium bench reference [--json]
      images/s of the golden reference on SFC (784-256-256-256-10, bipolar
      input) and CNV (3x32x32 uint8 input), next to PyTorch float evaluation
      of the same topologies on this CPU, measured in the same run.
"""

import platform

from ..console import print_json, step, table

NAME = "bench"
HELP = "measure speed and size figures (prints numbers; see subcommands)"

SUITES = ("reference",)


def add_arguments(parser):
    parser.add_argument("suite", choices=SUITES, help="what to measure")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    parser.add_argument("--images", type=int, default=None,
                        help="images per measurement (default: 2000 for SFC, 64 for CNV)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats; the best counts (default 3)")


def run(args):
    from ..bench_reference import measure_reference

    if args.repeats < 1 or (args.images is not None and args.images < 1):
        from ..errors import TritiumError
        raise TritiumError("--images and --repeats must be at least 1")
    result = measure_reference(images=args.images, repeats=args.repeats,
                               log=lambda m: step(m, quiet=False))
    result["machine"] = {"cpu_count": _cpus(), "platform": platform.platform(),
                         "python": platform.python_version()}
    if args.json:
        print_json(result)
        return 0
    rows = []
    for net in ("sfc", "cnv"):
        ref, torch_ = result[f"{net}_images_per_s"], result[f"{net}_torch_images_per_s"]
        rows.append([net.upper(), f"{ref:,.0f}", f"{torch_:,.0f}", f"{ref / torch_:.2f}x"])
    print(table(rows, ["network", "reference img/s", "torch float img/s", "ratio"]))
    return 0


def _cpus():
    import os
    return os.cpu_count()
