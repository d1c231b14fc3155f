"""Benchmarks that print measured numbers (never pass/fail timing tests).

  tritium bench [all] [--json] [--boards icebreaker,ulx3s] [--workdir DIR]
      every figure of the design targets in one run: per-layer utilisation
      (SFC, CNV, ...), per board the hardware build (logic cells, block RAM,
      Fmax, timing at the PLL clock; reused from the build cache), LUT4 per
      lane of its PE array, a model patched into the bitstream against the
      full build (patch speedup), images/s and images/s per (LUT x MHz) of
      TFC, SFC, LFC and CNV, CNV compile time and RTL simulation speed, next
      to published FINN / BNN-PYNQ figures. The first run builds both boards
      (the ULX3S place and route takes about 8 minutes on 2 cores; a board
      whose nextpnr passes --pnr-timeout MIN, default 60, is reported as not
      built); --workdir keeps the outputs (default: ./tritium-bench) and
      bench.json for 'tritium report'.
  tritium bench reference [--json]
      images/s of the golden reference on SFC (784-256-256-256-10, bipolar
      input) and CNV (3x32x32 uint8 input), next to PyTorch float evaluation
      of the same topologies on this CPU, measured in the same run.
  tritium bench synth [--json] [--sweep 4x32,8x32,...] [--no-fmax] [--no-baseline]
      PE-array LUT4/FF counts (yosys synth_ice40 / synth_ecp5, memories
      excluded), LUT4 per lane, and nextpnr Fmax on iCE40UP5K / ECP5-85F,
      with a naive adder-chain popcount as baseline in the same run.
  tritium bench utilization [--json]
      PE-array utilisation (per layer) of the reference networks on the presets.
  tritium bench fit [--json] [--presets icebreaker,ulx3s]
      yosys synthesis of whole accelerator presets: LUT4, FF, block RAMs and
      SPRAMs used, beside the device's (default: icebreaker).
  tritium bench accel [--hw icebreaker] [--seed N] [--json]
      nextpnr Fmax of a whole accelerator preset (iCE40UP5K for icebreaker,
      ECP5-85F for ulx3s; another configuration: --family) with LFSR-driven
      host ports, its cell counts and critical path.
  tritium bench host [--hw icebreaker] [--json]
      yosys synth_ice40 of the accelerator with and without its framed host
      interface (HostLink): the host interface's own LUT4 / FF / block RAMs.
  tritium bench rtl [--json] [--hw ulx3s] [--images N] [--workdir DIR]
      RTL simulation speed: SFC images (default 1,024 on Verilator, 64 on Icarus)
      through the accelerator's Verilog under cocotb on Verilator (and Icarus
      where installed): build seconds, start-up,
      model load and run phase, cycles/s end to end and in the run phase, beside
      the same Verilog replaying the same job from a C++ main (the ceiling,
      built and run in the same call) and the ratios; the results are checked
      against the golden reference. Builds are kept in --workdir (default: a
      temporary folder) and reused.
  tritium bench kinds [--json|--markdown] [--presets icebreaker,ulx3s] [--kinds K,...]
                      [--pnr icebreaker] [--no-synth] [--seed N] [--workdir DIR]
      the cost of each weight kind on the board presets: per preset and kind,
      the preset with that kind added to its weight_kinds; TFC and SFC with
      weights of the kind in every layer: ISA-simulator cycles per image and
      weight-memory bits; yosys synthesis of the accelerator (as fit): LUT4
      and block RAM beside the device's; the hardware build of the boards in
      --pnr (default icebreaker; a ULX3S build takes about 15 minutes):
      placed cells and Fmax. Results are kept in the build cache: a rerun
      measures only configurations or gateware that changed.
  tritium bench patch [--json] [--board icebreaker|ulx3s]
      seconds of a hardware build, of patching a model into it and of a full
      rebuild with the model as memory init; whether both hold the same
      block RAM contents (a small accelerator, in a private build cache).
"""

import platform

from ...util.console import at_least, print_json, step, table

NAME = "bench"
HELP = "measure speed and size figures (prints numbers; see subcommands)"

SUITES = ("all", "reference", "synth", "utilization", "fit", "host", "patch", "accel", "rtl",
          "kinds")


def add_arguments(parser):
    parser.add_argument("suite", nargs="?", default="all", choices=SUITES,
                        help="what to measure (default: all)")
    parser.add_argument("--boards", default="icebreaker,ulx3s",
                        help="all: boards to build and measure (default: icebreaker,ulx3s)")
    parser.add_argument("--seed", type=at_least(1), default=1,
                        help="all, accel: nextpnr placement seed (default 1)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    parser.add_argument("--pnr-timeout", type=float, default=60, metavar="MIN",
                        help="all: a board whose nextpnr runs longer than MIN minutes is reported "
                             "as not built (default 60; 0: no limit)")
    parser.add_argument("--images", type=at_least(1), default=None,
                        help="images per measurement (default: 2000 for SFC, 64 for CNV)")
    parser.add_argument("--repeats", type=at_least(1), default=3, help="timed repeats; the best counts (default 3)")
    parser.add_argument("--sweep", default=None,
                        help="synth: (P, S) pairs as PxS,PxS (default 4x32,8x32,4x64,16x64,32x64)")
    parser.add_argument("--families", default="ice40,ecp5", help="synth: ice40, ecp5 or both")
    parser.add_argument("--no-fmax", action="store_true", help="synth: skip nextpnr")
    parser.add_argument("--no-baseline", action="store_true", help="synth: skip the adder-chain baseline")
    parser.add_argument("--workdir", default=None,
                        help="all, synth, fit, host, accel, rtl: keep tool outputs in this folder "
                             "(all: default ./tritium-bench)")
    parser.add_argument("--presets", default=None,
                        help="fit: presets, comma-separated (default: icebreaker); "
                             "kinds: (default: icebreaker,ulx3s)")
    parser.add_argument("--kinds", default=None,
                        help="kinds: weight kinds, comma-separated (default: every kind)")
    parser.add_argument("--pnr", default="icebreaker",
                        help="kinds: presets whose board is placed and routed per kind "
                             "(default: icebreaker; none: synthesis only)")
    parser.add_argument("--no-synth", action="store_true",
                        help="kinds: network figures only (no yosys, no nextpnr)")
    parser.add_argument("--markdown", action="store_true", help="kinds: print a Markdown table")
    parser.add_argument("--hw", default=None,
                        help="host, accel: preset name or configuration JSON (default: icebreaker); "
                             "rtl: preset (default: ulx3s)")
    parser.add_argument("--board", default="icebreaker", help="patch: the board (default icebreaker)")
    parser.add_argument("--family", default=None, choices=("ice40", "ecp5"),
                        help="accel: device family (default: the preset's; ice40 for a JSON file)")


def run(args):
    from ...util.fileio import check_work_folder

    if args.workdir is not None:
        check_work_folder(args.workdir, "--workdir")
    elif args.suite == "all":
        check_work_folder("tritium-bench", "--workdir")
    suite = {"all": _run_all, "patch": _run_patch, "utilization": _run_utilization,
             "synth": _run_synth, "fit": _run_fit, "host": _run_host, "accel": _run_accel,
             "reference": _run_reference, "rtl": _run_rtl, "kinds": _run_kinds}[args.suite]
    return suite(args)


def _run_reference(args):
    from ...bench.reference import measure_reference

    result = measure_reference(images=args.images, repeats=args.repeats,
                               log=step)
    result["machine"] = _machine()
    if args.json:
        print_json(result)
        return 0
    rows = []
    for net in ("sfc", "cnv"):
        ref, torch_ = result[f"{net}_images_per_s"], result[f"{net}_torch_images_per_s"]
        rows.append([net.upper(), f"{ref:,.0f}", f"{torch_:,.0f}", f"{ref / torch_:.2f}x"])
    print(table(rows, ["network", "reference img/s", "torch float img/s", "ratio"]))
    return 0


def _run_rtl(args):
    from ....hw.errors import TritiumError
    from ....hw.presets import PRESETS
    from ...bench.rtl import RTL_IMAGES, measure_rtl_speed

    preset = args.hw or "ulx3s"
    if preset not in PRESETS:
        raise TritiumError(f"--hw takes a preset for rtl: {', '.join(PRESETS)}")
    if args.images is not None and args.images < 16:
        raise TritiumError("--images must be at least the batch (16)")
    result = {sim: measure_rtl_speed(sim, "sfc", preset, images=args.images or RTL_IMAGES[sim],
                                     batch=16, workdir=args.workdir,
                                     log=step)
              for sim in RTL_IMAGES}
    result["machine"] = _machine()
    if args.json:
        print_json(result)
        return 0
    rows = []
    for sim in ("verilator", "icarus"):
        r = result[sim]
        if not r["available"]:
            rows.append([sim, "not installed"] + ["-"] * 7)
            continue
        rows.append([f"{sim} (cocotb)", f"{r['build_s']:.0f}", f"{r['seconds']:.2f}",
                     f"{r['startup_s']:.2f}", f"{r['load_s']:.2f}", f"{r['run_s']:.2f}",
                     f"{r['cycles_per_s']:,.0f}", f"{r['run_cycles_per_s']:,.0f}", r["mismatches"]])
        if "replay" in r:
            c = r["replay"]
            rows.append(["verilator C++ replay", f"{c['build_s']:.0f}", f"{c['seconds']:.2f}",
                         f"{c['startup_s']:.2f}", "-", f"{c['run_s']:.2f}",
                         f"{c['cycles_per_s']:,.0f}", f"{c['run_cycles_per_s']:,.0f}",
                         c["mismatches"]])
    print(table(rows, ["simulator", "build s", "total s", "start-up s", "load s", "run s",
                       "cycles/s", "run cycles/s", "mismatches"]))
    v = result["verilator"]
    if v.get("replay"):
        print(f"\n{v['images']} SFC images on {preset}, {v['cycles']:,} cycles: cocotb harness "
              f"{v['ceiling_ratio']:.2f}x the C++ replay's time end to end, "
              f"{v['ceiling_ratio_run']:.2f}x in the run phase")
    return 0


def _machine():
    return {"cpu_count": _cpus(), "platform": platform.platform(),
            "python": platform.python_version()}


def _cpus():
    import os
    return os.cpu_count()


def _run_synth(args):
    from ....hw.errors import TritiumError
    from ...bench.synth import DEFAULT_SWEEP, measure_synth, parse_sweep

    sweep = parse_sweep(args.sweep) if args.sweep else DEFAULT_SWEEP
    families = tuple(f.strip() for f in args.families.split(",") if f.strip())
    if not families or any(f not in ("ice40", "ecp5") for f in families):
        raise TritiumError("--families takes ice40, ecp5 or ice40,ecp5")
    result = measure_synth(sweep, families=families, fmax=not args.no_fmax,
                           baseline=not args.no_baseline, workdir=args.workdir,
                           log=step)
    result["machine"] = _machine()
    if args.json:
        print_json(result)
        return 0
    headers = ["P", "S", "lanes"]
    for fam in families:
        headers += [f"{fam} LUT4", f"{fam} LUT4/lane", f"{fam} chain LUT4/lane", f"{fam} Fmax MHz"]
    rows = []
    for r in result["rows"]:
        row = [r["pe"], r["simd"], r["lanes"]]
        for fam in families:
            row += [r.get(f"{fam}_tree_lut4", "-"), r.get(f"{fam}_tree_lut4_per_lane", "-"),
                    r.get(f"{fam}_chain_lut4_per_lane", "-"), r.get(f"{fam}_fmax_mhz", "-")]
        rows.append(row)
    print(table(rows, headers))
    return 0


def _run_fit(args):
    from ....hw.presets import PRESETS
    from ...bench.synth import FIT_TARGETS, measure_accel_fit

    presets = _names(args.presets or "icebreaker", "--presets",
                     [p for p in FIT_TARGETS if p in PRESETS])
    result = measure_accel_fit(presets, workdir=args.workdir, log=step)
    if args.json:
        print_json(result)
        return 0
    rows = [[r["preset"], r["device"], f"{r['lut4']} / {r['device_lut4']}", r["ff"],
             f"{r['bram']} / {r['device_bram']}", f"{r['spram']} / {r['device_spram']}",
             "yes" if r["fits"] else "NO"] for r in result["rows"]]
    print(table(rows, ["preset", "device", "LUT4", "FF", "block RAM", "SPRAM", "fits"]))
    return 0


def _names(text, option, known):
    """A comma-separated list of names, each one of ``known`` (a one-line error if not)."""
    from ....hw.errors import TritiumError

    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names or any(n not in known for n in names):
        raise TritiumError(f"{option} takes {', '.join(known)} (comma-separated)")
    return names


def _run_kinds(args):
    from ....boards.build import pnr_timeout_seconds
    from ....hw.presets import PRESETS
    from ....hw.weight_kinds import WEIGHT_KIND_NAMES
    from ...bench.kinds import HEADERS, markdown, measure_kinds, table_rows

    presets = _names(args.presets or "icebreaker,ulx3s", "--presets",
                     list(PRESETS))
    kinds = _names(args.kinds or ",".join(WEIGHT_KIND_NAMES), "--kinds", WEIGHT_KIND_NAMES)
    pnr = () if args.pnr == "none" else _names(args.pnr, "--pnr", list(PRESETS) + ["none"])
    result = measure_kinds(presets, kinds, pnr=pnr, seed=args.seed, workdir=args.workdir,
                           log=step, pnr_timeout_s=pnr_timeout_seconds(args.pnr_timeout),
                           synthesize=not args.no_synth)
    result["machine"] = _machine()
    if args.json:
        print_json(result)
    elif args.markdown:
        print(markdown(result))
    else:
        print(table(table_rows(result), HEADERS, left=3))
    return 0


def _run_utilization(args):
    from ...bench.utilization import measure_utilization

    result = measure_utilization(log=step)
    if args.json:
        print_json(result)
        return 0
    rows = []
    for key, r in result.items():
        if not r["fits"]:
            rows.append([key, "-", "-", "does not fit: " + r["reason"][:70]])
            continue
        layers = " ".join(f"{n}={100 * u:.0f}%" for n, u in r["layers"].items())
        rows.append([key, f"{r['cycles_per_image']:.0f}", f"{100 * r['utilization']:.1f} %", layers])
    print(table(rows, ["preset/network", "cycles/image", "utilisation", "per layer"]))
    return 0


def _run_host(args):
    import tempfile

    from ....hw.presets import load_accel_config
    from ...bench.synth import measure_host_link

    args.hw = args.hw or "icebreaker"
    cfg = load_accel_config(args.hw)
    with tempfile.TemporaryDirectory(prefix="tritium-host-") as tmp:
        result = measure_host_link(cfg, args.workdir or tmp, log=step)
    result["hw"], result["config_hash"] = args.hw, cfg.hash
    if args.json:
        print_json(result)
        return 0
    rows = [[name, r["lut4"], r["ff"], r["bram"]] for name, r in result.items()
            if isinstance(r, dict)]
    print(table(rows, ["iCE40 " + args.hw, "LUT4", "FF", "block RAM"]))
    return 0


def _run_all(args):
    import json
    from pathlib import Path

    from ....hw.errors import TritiumError
    from ...bench.all import measure_all
    from ...util.fileio import atomic_write_text

    boards = tuple(b.strip() for b in args.boards.split(",") if b.strip())
    if not boards:
        raise TritiumError("--boards needs at least one board")
    from ....boards.build import pnr_timeout_seconds
    from ....boards.platforms import get_board
    for b in boards:
        get_board(b)        # an unknown board is refused before anything is measured
    pnr_timeout_s = pnr_timeout_seconds(args.pnr_timeout)      # and a bad limit
    work = Path(args.workdir or "tritium-bench")
    result = measure_all(work, boards=boards, seed=args.seed, log=step,
                         pnr_timeout_s=pnr_timeout_s)
    atomic_write_text(work / "bench.json", json.dumps(result, indent=2, sort_keys=True) + "\n")
    if args.json:
        print_json(result)
        return 0
    print(table([_board_row(b, r) for b, r in result["boards"].items()],
                ["board", "lanes", "logic cells", "block RAM", "PE LUT4/lane", "Fmax MHz",
                 "clock MHz", "timing met", "patch speedup"]))
    print()
    rows = []
    for key, ips in result["images_per_s"].items():
        norm = result["images_per_s_per_lut_mhz"][key]
        rows.append([key, f"{ips:,.0f}" if ips else "does not fit", f"{norm:.4f}" if norm else "-"])
    for a in result["anchors"]:
        rows.append([f"{a['system']} ({a['device']})", f"{a['images_per_s']:,.0f}",
                     f"{a['images_per_s_per_lut_mhz']:.4f}"])
    print(table(rows, ["board/network", "images/s", "images/s per (LUT x MHz)"]))
    print()
    rows = []
    for key, layers in result["utilization"].items():
        if isinstance(layers, dict):
            rows.append([key, " ".join(f"{n}={100 * u:.0f}%" for n, u in layers.items())])
    print(table(rows, ["preset/network", "utilisation per layer"]))
    rtl = ", ".join(f"{sim} {v:,.0f}" for sim, v in result["rtl_cycles_per_s"].items() if v)
    print(f"\nCNV compile: {result['compile_seconds']['seconds']:.2f} s; RTL simulation "
          f"cycles/s: {rtl or 'n/a'}; results in {work / 'bench.json'}")
    return 0


def _board_row(name, r):
    """One row of the boards table; a board that did not build shows why."""
    if not r["built"]:
        u = r.get("unfinished", {})
        placed = (f"{u['placed_luts']} / {u['placed_luts_available']} placed"
                  if "placed_luts" in u else "not built")
        rams = f"{u['placed_rams']} / {u['placed_rams_available']}" if "placed_rams" in u else "-"
        estimate = (f"{u['preroute_fmax_mhz']:.1f} (pre-route estimate)"
                    if "preroute_fmax_mhz" in u else "-")
        return [name, r["lanes"], placed, rams, "-", estimate, "-", f"NO: {r['reason'][:80]}", "-"]
    return [name, r["lanes"], f"{r['luts']} / {r['luts_available']}", f"{r['rams']} / {r['rams_available']}",
            r["lut4_per_lane"], f"{r['fmax_mhz']:.1f}", f"{r['clock_mhz']:.1f}",
            "yes" if r["timing_met"] else "NO", f"{r['patch_speedup']:.0f}x"]


def _run_patch(args):
    from ....boards.bench_patch import measure_patch
    result = measure_patch(args.board, log=step)
    result["machine"] = _machine()
    if args.json:
        print_json(result)
        return 0
    print(table([[k, v] for k, v in result.items() if k != "machine"], ["figure", "value"]))


def _run_accel(args):
    import tempfile

    from ....hw.presets import load_accel_config
    from ...bench.synth import ACCEL_FMAX_FAMILY, accel_fmax

    args.hw = args.hw or "icebreaker"
    cfg = load_accel_config(args.hw)
    family = args.family or ACCEL_FMAX_FAMILY.get(args.hw, "ice40")
    with tempfile.TemporaryDirectory(prefix="tritium-accel-") as tmp:
        result = accel_fmax(cfg, family, args.workdir or tmp, seed=args.seed,
                            log=step)
    result["hw"], result["config_hash"] = args.hw, cfg.hash
    result["machine"] = {"cpu_count": _cpus(), "platform": platform.platform()}
    if args.json:
        print_json(result)
        return 0
    print(table([[args.hw, family, result["fmax_mhz"], result["target_mhz"], result["lut4"],
                  result["ff"], result["bram"], result["luts_placed"], result["seconds"]]],
                ["accelerator", "family", "Fmax MHz", "target MHz", "LUT4", "FF", "block RAM",
                 "cells placed", "P&R s"]))
    print("critical path: " + " -> ".join(result["critical_path"]))
    return 0
