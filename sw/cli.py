"""The ``tritium`` command line: one entry point, one module per subcommand.

Each module in :mod:`tritium.sw.commands` defines ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. Errors a user can cause are
:class:`~tritium.sw.errors.TritiumError` and print as one line; anything else is
an internal error, also one line (set ``TRITIUM_DEBUG=1`` for the traceback).
"""

import argparse
import importlib
import os
import sys

from .errors import TritiumError

#: Subcommands in the order ``tritium --help`` lists them.
COMMAND_MODULES = [
    "demo",
    "train",
    "export",
    "generate",
    "compile",
    "sim",
    "run",
    "bench",
    "report",
]

DESCRIPTION = """\
tritium generates hardware accelerators for binary and ternary neural
networks and runs trained PyTorch models on them, on open FPGA toolchains.

A typical session:
  tritium demo                           the whole flow on the embedded MNIST data
  tritium train --arch tfc -o m.pt       train a network, check its export
  tritium export m.pt -o m.npz           checkpoint -> integer model file
  tritium generate --pe 4 --simd 64 -o core
                                         Verilog of a PE-array core, config + hash
  tritium compile m.npz --hw ulx3s -o build/m
                                         program + memory images + model image
  tritium sim build/m --model m.npz      ISA-level simulation against the reference
  tritium run --port /dev/ttyUSB1 build/m --model m.npz
                                         the same on a board, over its serial port
  tritium bench reference --json         golden-reference speed against PyTorch
  tritium bench synth --json             LUT4 per lane and Fmax (yosys, nextpnr)
  tritium report build/m                 HTML report with plots of a compiled model / build

Run 'tritium COMMAND --help' for each command's options and examples.
"""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and exit 2."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        sys.exit(2)


def build_parser():
    parser = _Parser(prog="tritium", description=DESCRIPTION,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    from . import __version__
    parser.add_argument("--version", action="version", version=f"tritium {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f".commands.{name}", __package__)
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except TritiumError as e:
        print(f"tritium: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("tritium: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (e.g. `| head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as e:  # noqa: BLE001 - the last line of defence: never a traceback
        if os.environ.get("TRITIUM_DEBUG"):
            raise
        print(f"tritium: internal error: {type(e).__name__}: {e} "
              "(set TRITIUM_DEBUG=1 for the traceback)", file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
