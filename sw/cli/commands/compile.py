"""Compile an integer model for an accelerator configuration.

Writes into DIR: program.hex, weights_p*.hex, thresholds_p*.hex
($readmemh, one word per line), model.tim (the checked model image) and
compiled.json (configuration, per-layer cycles and utilisation, disassembly).
See docs/accelerator.md and docs/images.md.

A model too large for the accelerator's memories at once runs in segments:
the host writes the next layers' weights (and, for a large first-layer
input, the next band of it) between program runs. DIR then holds one more
model image per segment (segment1.tim, ...); 'tritium sim' and 'tritium run'
use them all.

--hw takes a preset or a configuration file (docs/config.md), e.g. the
tritium_accel.json 'tritium generate' writes. compiled.json records the model
file (its path and SHA-256): 'tritium sim DIR' and 'tritium run DIR' use it
when --model is not given, and refuse a different file.

Examples:
  tritium compile sfc.npz --hw ulx3s -o build/sfc
  tritium compile sfc.npz --hw ulx3s --batch 16 -o build/sfc16 --json
  tritium compile cnn.npz --hw build/core/tritium_accel.json -o build/cnn
"""

import time

from ...util.console import at_least, print_json, step, table

NAME = "compile"
HELP = "compile an integer model (.npz) into a program and memory images"


def add_arguments(parser):
    parser.add_argument("model", help="integer model file written by 'tritium export' (.npz)")
    parser.add_argument("--hw", default="icebreaker",
                        help="accelerator: a preset (icebreaker, ulx3s) or a configuration file "
                             "(docs/config.md; e.g. written by 'tritium generate') "
                             "(default: icebreaker)")
    parser.add_argument("--batch", type=at_least(1), default=1,
                        help="images per program run (default 1); networks with convolutions "
                             "need an accelerator whose RUNs loop over that many images "
                             "(max_images: 16 on ulx3s, none on icebreaker)")
    parser.add_argument("-o", "--out", required=True, help="output folder")
    parser.add_argument("--force", action="store_true",
                        help="write into an output folder that already holds files")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args):
    from ....hw.presets import load_accel_config
    from ...compiler import compile_model
    from ...compiler.image import write_images
    from ...model.ir import load_model
    from ...util.fileio import check_output_folder
    from .sim import model_source

    t0 = time.perf_counter()
    check_output_folder(args.out, args.force)
    model = load_model(args.model)
    cfg = load_accel_config(args.hw)
    compiled = compile_model(model, cfg, batch=args.batch)
    paths = write_images(compiled, args.out, source=model_source(args.model))
    seconds = time.perf_counter() - t0
    layers = compiled.io["layers"]
    cycles = compiled.cycles_per_run
    summary = {"image": str(paths["image"]), "out": str(args.out), "config_hash": cfg.hash,
               "lanes": cfg.core.lanes, "batch": compiled.batch,
               "instructions": len(compiled.program), "cycles_per_run": cycles,
               "cycles_per_image": compiled.cycles_per_image, "seconds": seconds,
               "segments": len(compiled.segments) or 1, "layers": layers}
    if args.json:
        print_json(summary)
        return 0
    step(f"compiled {args.model} for {cfg.describe()} (hash {cfg.hash}) in {seconds:.2f} s")
    rows = [[l["name"] + (f" +{l['pool']}" if l["pool"] else ""), l["beats"], l["cycles"],
             f"{100 * l['utilization']:.1f} %"] for l in layers]
    print(table(rows, ["layer", "beats", "cycles", "utilisation"]))
    runs = (f"{len(compiled.segments)} program runs (segments: the host loads each one's "
            "image and input between them)" if compiled.segments else "one program run")
    print(f"{cycles} cycles per batch of {compiled.batch} image(s) in {runs}; images in {args.out}")
    return 0
