"""The ``tritium`` command line: one entry point, one module per subcommand.

Each module in :mod:`tritium.sw.cli.commands` defines ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. Errors a user can cause are
:class:`~tritium.hw.errors.TritiumError` (or an operating-system error on a named
file) and print as one line; anything else is an internal error, also one line
(set ``TRITIUM_DEBUG=1`` for the traceback).

Every command takes ``--json``: its stdout is then one JSON document and nothing
else (:func:`~tritium.sw.util.console.json_only_stdout`); an error prints
``{"error": "..."}`` there, beside the one line on stderr.
"""

import argparse
import importlib
import json
import os
import sys

from ...hw.errors import TritiumError
from ..util.console import json_only_stdout, print_json

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
    "build",
    "program",
    "report",
]

DESCRIPTION = """\
tritium generates hardware accelerators for binary and ternary neural
networks and runs trained PyTorch models on them, on open FPGA toolchains.

A typical session:
  tritium demo                           the whole flow on the embedded MNIST data
  tritium train --arch tfc -o m.pt       train a network (on digits), check its export
  tritium export m.pt -o m.npz           checkpoint -> integer model file
  tritium compile m.npz --hw icebreaker -o build/m
                                         program + memory images + model image
  tritium sim build/m                    ISA-level simulation of held-out images against
                                         the reference (model and data set: as compiled;
                                         --images: your own PNG folder, .npy or .npz)
  tritium run --port /dev/ttyUSB1 build/m
                                         the same on a board, over its serial port
  tritium build --board icebreaker --model build/m -o build/ib
                                         bitstream with the model patched in (cached hardware)
  tritium program --board icebreaker build/ib/icebreaker.bin
                                         load it into the board (openFPGALoader)
  tritium report build/m                 HTML report with plots of a compiled model / build

Custom hardware (--hw takes a preset or a configuration file: docs/config.md):
  tritium generate --pe 4 --simd 64 -o hw
                                         an accelerator's Verilog + its configuration file
  tritium compile m.npz --hw hw/tritium_accel.json -o build/c
                                         the model compiled for that accelerator
  tritium sim build/c                    and simulated on it

Measurements:
  tritium bench reference --json         golden-reference speed against PyTorch
  tritium bench synth --json             LUT4 per lane and Fmax (yosys, nextpnr)

Run 'tritium COMMAND --help' for each command's options and examples. With
--json a command prints one JSON document on stdout and nothing else.
"""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and exit 2 (and ``{"error": ...}`` on
    stdout when the command line asks for ``--json``)."""

    json_errors = False

    def error(self, message):
        line = f"{message} (see '{self.prog} --help')"
        if _Parser.json_errors:
            sys.stdout.write(json.dumps({"error": line}) + "\n")
            sys.stdout.flush()
        sys.stderr.write(f"{self.prog}: error: {line}\n")
        sys.exit(2)


def build_parser():
    parser = _Parser(prog="tritium", description=DESCRIPTION,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"tritium {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f".commands.{name}", __package__)
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        if "--json" not in p._option_string_actions:
            p.add_argument("--json", action="store_true",
                           help="print the result as JSON on stdout (nothing else goes there)")
        p.set_defaults(_run=module.run)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    _Parser.json_errors = "--json" in argv[:argv.index("--")] if "--" in argv else "--json" in argv
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    finally:
        _Parser.json_errors = False
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    if not args.json:
        return _run(args, None)
    with json_only_stdout() as out:
        code = _run(args, out)
        if not out.printed:         # a command with nothing to report but its exit status
            print_json({"exit_code": code})
    return code


def _run(args, json_out):
    """Run the command; errors become one line on stderr (and ``{"error"}`` JSON)."""
    def fail(line, code, message=None):
        print(f"tritium: {line}", file=sys.stderr)
        if json_out is not None and not json_out.printed:
            print_json({"error": message or line})
        return code

    try:
        return int(args._run(args) or 0)
    except TritiumError as e:
        return fail(f"error: {e}", e.exit_code, str(e))
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except BrokenPipeError:
        # The reader of stdout went away (e.g. `| head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as e:  # noqa: BLE001 - the last line of defence: never a traceback
        if os.environ.get("TRITIUM_DEBUG"):
            raise
        if isinstance(e, OSError) and e.filename is not None:
            # A file the user named, or a folder a command writes in (permissions, a full disk).
            message = f"{e.filename}: {e.strerror or e}"
            return fail(f"error: {message}", 1, message)
        return fail(f"internal error: {type(e).__name__}: {e} "
                    "(set TRITIUM_DEBUG=1 for the traceback)", 70)


if __name__ == "__main__":
    sys.exit(main())
