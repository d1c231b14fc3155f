"""Write an HTML report with PNG plots for a compiled model, a build or a benchmark.

DIR may hold (itself or one folder down) compiled.json from 'tritium compile',
build.json from 'tritium build' and bench.json from 'tritium bench --json'.
The report shows per-layer utilisation and cycles (bar charts with the 90 %
target), resource use against the device, and a comparison table of measured
throughput next to published FINN / BNN-PYNQ figures (with sources).

Examples:
  tritium report build/sfc                 # writes build/sfc/report/index.html
  tritium report tritium-demo -o /tmp/rep  # the demo's compiled model and build
"""

from ...util.console import print_json, step

NAME = "report"
HELP = "write an HTML report with plots for a compiled model, build or benchmark"


def add_arguments(parser):
    parser.add_argument("dir", help="folder with compiled.json / build.json / bench.json")
    parser.add_argument("-o", "--out", default=None, help="output folder (default: DIR/report)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing report folder (one holding index.html)")
    parser.add_argument("--json", action="store_true", help="print the report's path as JSON")


def run(args):
    from pathlib import Path

    from ....hw.errors import TritiumError
    from ...bench.report import write_report
    from ...util.fileio import check_output_folder

    out = Path(args.out) if args.out else Path(args.dir) / "report"
    if out.is_dir() and any(out.iterdir()) and not (out / "index.html").is_file():
        raise TritiumError(f"-o {out} holds files and no report (index.html): the report "
                           "replaces its folder; give a new one")
    check_output_folder(out, args.force)
    index = write_report(args.dir, out)
    if args.json:
        print_json({"report": str(index)})
    else:
        step(f"report written to {index}")
    return 0
