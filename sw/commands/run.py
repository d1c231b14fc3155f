"""Run a compiled model on a board and check it against the golden reference.

Opens the serial port of a board running tritium gateware (HostLink,
docs/host.md), loads DIR/model.tim (checked in software against the board's
hardware hash, then again by the board as it streams in), classifies
held-out images of the embedded data set and compares the accumulators with
the golden reference on the integer model given with --model, as
'tritium sim' does. Without --model only the accuracy is reported.

A model compiled for hardware it does not fit at once runs in segments
(docs/accelerator.md, "Segments"): before each segment's run the driver loads
that segment's model image (DIR/segment1.tim, ...) and writes its part of the
input, every batch. The serial link then sets the pace, not the accelerator.

Examples:
  tritium run --port /dev/ttyUSB1 build/tfc --model tfc.npz --count 200
  tritium run --port /dev/ttyUSB1 build/tfc --baud 1000000 --json
"""

import time

from ..console import print_json, progress, step

NAME = "run"
HELP = "run a compiled model on a board over its serial port"


def add_arguments(parser):
    parser.add_argument("dir", help="folder written by 'tritium compile'")
    parser.add_argument("--port", required=True, help="serial port of the board, e.g. /dev/ttyUSB1")
    parser.add_argument("--baud", type=int, default=115200, help="baud rate (default: 115200)")
    parser.add_argument("--model", help="the integer model file (.npz) it was compiled from: "
                                        "compare every result with the golden reference")
    parser.add_argument("--dataset", choices=("mnist5k", "digits"), default="mnist5k",
                        help="embedded data set for the held-out images (default: mnist5k)")
    parser.add_argument("--count", type=int, default=100, help="held-out images (default: 100)")
    parser.add_argument("--timeout", type=float, default=2.0,
                        help="seconds to wait for each response (default: 2)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


def run(args):
    from pathlib import Path

    import numpy as np

    from ..driver import Device, SerialTransport
    from ..errors import TritiumError
    from ..image import read_compiled
    from .sim import held_out, score

    if args.count < 1:
        raise TritiumError("--count must be at least 1")
    path = Path(args.dir) / "model.tim"
    compiled = read_compiled(args.dir)
    transport = SerialTransport(args.port, args.baud)
    try:
        if args.model:
            model, values, labels = held_out(compiled, args.model, args.dataset, args.count)
        else:
            model, values, labels = None, *_inputs_from_meta(compiled, args.dataset, args.count)
        dev = Device(transport, timeout=args.timeout)
        size = path.stat().st_size
        bar = progress(total=size, desc="model image", enabled=not args.quiet, unit="B")
        t0 = time.perf_counter()
        dev.load_image(path, progress=bar.update)
        bar.close()
        step(f"model image loaded ({size} bytes, {time.perf_counter() - t0:.1f} s)", args.quiet)
        accs, cycles = [], []
        t0 = time.perf_counter()
        loads = None
        if compiled.segments:       # every segment's image crosses the link every batch
            per_batch = sum(len(image) for image in dev.images_of(compiled))
            step(f"{len(compiled.segments)} segments: {per_batch:,} bytes of model images a "
                 f"batch of {compiled.batch}", args.quiet)
            loads = progress(total=per_batch * (len(values) // compiled.batch),
                             desc="segment images", enabled=not args.quiet, unit="B")
        for i in progress(range(0, len(values), compiled.batch), desc="images",
                          enabled=not args.quiet, unit="run"):
            acc, cyc = dev.run_batch(compiled, values[i:i + compiled.batch],
                                     progress=loads.update if loads else None)
            accs.append(acc)
            cycles += cyc
        if loads:
            loads.close()
        seconds = time.perf_counter() - t0
    finally:
        transport.close()
    acc = np.concatenate(accs)
    if model is not None:
        result = score(model, values, labels, acc)
    else:
        from ..reference import predicted_classes

        result = {"images": len(values), "mismatches": None,
                  "accuracy": float((predicted_classes(compiled.meta, acc) == labels).mean())}
    result.update({"port": args.port, "baud": args.baud, "seconds": seconds,
                   "images_per_s": len(values) / seconds,
                   "cycles_per_image": float(np.mean(cycles)) / compiled.batch,
                   "resent": dev.resent})
    if args.json:
        print_json(result)
    else:
        checked = "not checked (no --model)" if model is None else \
            f"{result['mismatches']} mismatches"
        step(f"{result['images']} images: {checked}, accuracy {result['accuracy']:.4f}, "
             f"{result['images_per_s']:.1f} images/s, {result['cycles_per_image']:.0f} "
             "cycles/image on the device")
    return 0 if not result["mismatches"] else 1


def _inputs_from_meta(compiled, dataset, count):
    """(values, labels) quantised as the model's metadata (kept in the image) says."""
    from ..data import load_dataset
    from ..errors import TritiumError
    from ..inputs import quantize_input

    spec = compiled.meta.get("input_quant")
    if spec is None:
        raise TritiumError("the model image has no input quantisation in its metadata: "
                           "pass --model")
    data = load_dataset(dataset)
    count = min(count, len(data.y_test))
    count -= count % compiled.batch
    if count == 0:
        raise TritiumError(f"--count must be at least the batch ({compiled.batch})")
    return quantize_input(spec, data.x_test[:count]), data.y_test[:count]
