"""Build a board's bitstream, with a compiled model patched into its block RAMs.

The hardware (board top, accelerator of the board's preset) is placed and
routed once per configuration hash and nextpnr seed and kept in a cache
($TRITIUM_BUILD_CACHE, default ~/.cache/tritium/builds). A model folder
written by 'tritium compile --hw PRESET' is then patched into a copy of
that bitstream (icebram / ecpbram, under a second) instead of a rebuild,
and the result is unpacked and checked block RAM by block RAM. Without
--model the memories hold zeros (an all-zero program is a lone END) and
the host loads a model at run time. See docs/boards.md.

Writes OUT/BOARD.bin (iCE40) or OUT/BOARD.bit (ECP5) and OUT/build.json.

Examples:
  tritium build --board icebreaker -o build/ib
  tritium compile tfc.npz --hw icebreaker -o build/tfc
  tritium build --board icebreaker --model build/tfc -o build/ib-tfc --json
  tritium build --board ulx3s --seed 2 -o build/ulx3s
  tritium build --board icebreaker --seed-tries 1 -o build/ib   # seed 1 only

Before any synthesis it prints an estimate of the design's logic cells and
block RAMs beside the board's, and of the build time per seed (a formula and
the preset's measured time: an estimate); a design that clearly does not fit
is refused (--no-fit-check builds it anyway). yosys and nextpnr report their
phase and elapsed time every 10 s on stderr.

Placement noise moves nextpnr's Fmax by a few MHz on the same netlist: when
a seed misses the clock, the next seeds are tried (--seed-tries, default 3
on the iCEBreaker, 2 on the ULX3S, whose place and route takes about 10
minutes) and the first that meets timing is kept; build.json lists every
seed tried with its Fmax.
"""

from ...util.console import at_least, print_json, step

NAME = "build"
HELP = "build a board bitstream (cached by hardware hash) with a model patched in"


def add_arguments(parser):
    from ....boards.platforms import BOARDS
    parser.add_argument("--board", required=True, help=f"board: {', '.join(BOARDS)}")
    parser.add_argument("--model", help="folder written by 'tritium compile' for the board's preset")
    parser.add_argument("-o", "--out", required=True, help="output folder")
    parser.add_argument("--force", action="store_true",
                        help="write into an output folder that already holds files")
    parser.add_argument("--seed", type=at_least(1), default=1,
                        help="nextpnr placement seed, 1 or more (default 1)")
    parser.add_argument("--seed-tries", type=at_least(1), default=None, metavar="K",
                        help="if timing is not met, place and route again with the next seeds, "
                             "up to K in all, and keep the first that meets it (default: 3 on "
                             "icebreaker, 2 on ulx3s; each try is cached)")
    parser.add_argument("--hw", help="accelerator configuration instead of the board's preset "
                                     "(a preset name or a JSON file, as for 'tritium compile')")
    parser.add_argument("--pnr-timeout", type=float, default=None, metavar="MIN",
                        help="stop nextpnr after MIN minutes with an error (default and 0: no limit; "
                             "the ULX3S design places and routes in about 8 minutes on 2 cores)")
    parser.add_argument("--no-fit-check", action="store_true",
                        help="build even when the resource estimate says the design does not "
                             "fit the board (the estimate is a formula, not synthesis)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args):
    from ....boards.build import build, pnr_timeout_seconds
    from ...util.fileio import check_output_folder

    check_output_folder(args.out, args.force)
    result = build(args.board, args.out, model_dir=args.model, seed=args.seed, hw=args.hw,
                   log=lambda message: step(message, quiet=False),
                   pnr_timeout_s=pnr_timeout_seconds(args.pnr_timeout), seed_tries=args.seed_tries,
                   fit_check=not args.no_fit_check)
    if args.json:
        print_json(result)
        return 0
    met = "met" if result["timing_met"] else "NOT met"
    print(f"{result['bitstream']}: {result['luts']} / {result['luts_available']} logic cells, "
          f"{result['rams']} / {result['rams_available']} block RAMs, Fmax {result['fmax_mhz']} MHz "
          f"at a {result['clock_mhz']} MHz clock (target >= {result['target_mhz']} MHz): timing {met} "
          f"(seed {result['seed']}" + (f", of {len(result['seeds_tried'])} tried"
                                       if len(result['seeds_tried']) > 1 else "") + ")")
    what = f"model {result['model']} patched in" if result["patched"] else "no model (zeros)"
    print(f"{what} and verified in {result['patch_pack_seconds']} s + {result['verify_seconds']} s "
          f"(hardware build {result['build_seconds']} s, "
          f"{'cached' if result['cached'] else 'made now'}); total {result['seconds']} s")
    return 0
