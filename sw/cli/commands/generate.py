"""Generate an accelerator: its Verilog, its configuration file (with the hash) and a
resource estimate.

The configuration is either a whole one, --hw (a preset or a configuration file,
docs/config.md), or built from the field options below (each one field of the
configuration format; a field not given keeps its default). The configuration
file written here is what 'tritium compile --hw', 'tritium build --hw' and
'tritium bench --hw' take: a model compiled for it runs on this Verilog.

  tritium generate --pe 8 --simd 32 -o build/core
  tritium generate --pe 4 --simd 48 --weights binary,ternary --act-bits 8 -o out --json
  tritium generate --hw icebreaker -o build/icebreaker-verilog
  tritium compile m.npz --hw build/core/tritium_accel.json -o build/m

Writes into the output folder (each file atomically; an existing folder that
holds files needs --force):
  tritium_accel.v     plain synthesizable Verilog of the accelerator (module tritium_accel;
                      inferred memories, no vendor primitives)
  tritium_accel.json  the configuration (docs/config.md), its hash and derived sizes
  resources.json      a quick resource estimate of its PE array (no synthesis)
"""

import json
import sys

from ....hw.errors import TritiumError
from ...util.console import print_json, step
from ...util.fileio import atomic_write_text, check_output_folder

NAME = "generate"
HELP = "generate an accelerator (Verilog + configuration file with hash + resource estimate)"

#: Field options: (option, configuration field, type, help). Core fields first, then the
#: accelerator's; "flag" options set a boolean field to true.
CORE_OPTIONS = [
    ("--pe", "pe", int, "P, processing elements (default 8)"),
    ("--simd", "simd", int, "S, lanes per PE; a multiple of P (default 32)"),
    ("--weights", "weight_kinds", str, "weight kinds, comma separated: binary, ternary, "
                                       "pow2-2, pow2-4, int2, int3, int4 (default binary)"),
    ("--act-bits", "act_bits", int, "largest input activation width; 1 = bipolar only (default 1)"),
    ("--out-bits", "out_bits", int, "output activation bits of the threshold unit (default 1)"),
    ("--weight-depth", "weight_depth", int, "words per weight bank (default 256)"),
    ("--thr-depth", "thr_depth", int, "threshold sets per PE (default 64)"),
    ("--max-fan-in", "max_fan_in", int, "longest fan-in a layer may have (default: "
                                        "weight-depth x simd)"),
    ("--acc-bits", "acc_bits", int, "accumulator bits (default: derived from max-fan-in)"),
    ("--pipeline", "pipeline", int, "popcount pipeline registers (default: half the tree levels)"),
    ("--weight-reg", "weight_reg", "flag", "register the weight-bank outputs once more"),
    ("--addr-reg", "addr_reg", "flag", "one registered copy of the weight address per bank"),
    ("--chain", "chain", "flag", "chain the PEs (needs --weight-reg and --addr-reg)"),
    ("--lane-reg", "lane_reg", "flag", "register the lane word before the popcount tree"),
]
ACCEL_OPTIONS = [
    ("--act-depth", "act_depth", int, "words per activation buffer (default 1024)"),
    ("--prog-depth", "prog_depth", int, "instructions of program memory (default 128)"),
    ("--res-depth", "res_depth", int, "entries of the result memory (default 16)"),
    ("--store-depth", "store_depth", int, "words of the weight store; 0: none (default 0)"),
    ("--act-reg", "act_reg", "flag", "a register after the activation buffers' read port"),
    ("--max-images", "max_images", int, "images one RUN loops over (default 1)"),
]
#: Defaults of the required fields when neither --hw nor their option is given.
DEFAULTS = {"pe": 8, "simd": 32}


def add_arguments(parser):
    parser.add_argument("--hw", default=None,
                        help="a whole configuration: a preset (icebreaker, ulx3s) or a "
                             "configuration file (docs/config.md); instead of the field options")
    for option, field, kind, text in CORE_OPTIONS + ACCEL_OPTIONS:
        if kind == "flag":
            parser.add_argument(option, dest=field, action="store_const", const=True,
                                default=None, help=text)
        else:
            parser.add_argument(option, dest=field, type=kind, default=None, help=text)
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument("--force", action="store_true",
                        help="write into an output folder that already holds files")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def config_from_args(args):
    """The :class:`~tritium.hw.accel_config.AccelConfig` the arguments name: --hw, or the
    field options read as a configuration file's fields (the same checks)."""
    from ....hw.accel_config import accel_config_from_dict
    from ....hw.presets import load_accel_config

    core = {f: getattr(args, f) for _, f, _, _ in CORE_OPTIONS if getattr(args, f) is not None}
    accel = {f: getattr(args, f) for _, f, _, _ in ACCEL_OPTIONS if getattr(args, f) is not None}
    if args.hw is not None:
        if core or accel:
            given = [o for o, f, _, _ in CORE_OPTIONS + ACCEL_OPTIONS if f in core or f in accel]
            raise TritiumError(f"--hw is a whole configuration: give --hw or field options "
                               f"({', '.join(given)}), not both")
        return load_accel_config(args.hw)
    return accel_config_from_dict({"core": {**DEFAULTS, **core}, **accel})


def describe_accel(cfg):
    """The configuration file's content: the configuration, its hash and derived sizes."""
    return {
        "format": "tritium-accel-config",
        "config": cfg.canonical(),
        "config_hash": cfg.hash,
        "describe": cfg.describe(),
        "lanes": cfg.core.lanes,
        "acc_bits": cfg.core.acc_bits,
        "ops": list(cfg.core.ops),
        "run_drain_cycles": cfg.run_drain(),
    }


def warn_if_no_board_fits(cfg):
    """Before the long work: a warning on stderr when no supported board holds ``cfg``."""
    from ....boards.fit import no_board_warning
    warning = no_board_warning(cfg)
    if warning:
        print(f"tritium: warning: {warning}", file=sys.stderr, flush=True)


def run(args):
    from ....hw.accel import ACCEL_TOP, accel_verilog
    from ....hw.estimate import estimate

    cfg = config_from_args(args)
    warn_if_no_board_fits(cfg)
    out = check_output_folder(args.output, args.force)
    step(f"generating the accelerator: {cfg.describe()}", quiet=args.quiet or args.json)
    verilog_text = accel_verilog(cfg)
    header = (f"// tritium accelerator {ACCEL_TOP}: {cfg.describe()}\n"
              f"// config_hash {cfg.hash}; generated by 'tritium generate' (do not edit)\n")
    v_path, c_path, r_path = out / f"{ACCEL_TOP}.v", out / f"{ACCEL_TOP}.json", out / "resources.json"
    resources = estimate(cfg.core)
    atomic_write_text(v_path, header + verilog_text)
    atomic_write_text(c_path, json.dumps(describe_accel(cfg), indent=2, sort_keys=True) + "\n")
    atomic_write_text(r_path, json.dumps(resources, indent=2, sort_keys=True) + "\n")
    result = {"verilog": str(v_path), "config": str(c_path), "resources": str(r_path),
              "config_hash": cfg.hash, "lanes": cfg.core.lanes, "estimate": resources}
    if args.json:
        print_json(result)
    else:
        print(f"wrote {v_path}\nwrote {c_path} (config_hash {cfg.hash}; compile for it with "
              f"--hw {c_path})\nwrote {r_path}")
        print(f"{cfg.core.lanes} lanes; PE array estimate: {resources['lut4_estimate']} LUT4 "
              f"({resources['lut4_per_lane_estimate']} per lane), "
              f"{resources['weight_memory_bits']} weight bits")
    return 0

