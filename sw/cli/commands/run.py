"""Run a compiled model on a board and check it against the golden reference.

Opens the serial port of a board running tritium gateware (HostLink,
docs/host.md), loads DIR/model.tim (checked in software against the board's
hardware hash, then again by the board as it streams in), classifies
images and compares the accumulators with the golden reference on the
integer model file, as 'tritium sim' does: --model, by default the file DIR
was compiled from (named in DIR/compiled.json; a different file is refused).
When neither names one, only the accuracy is reported. Images: the held-out
images of the data set the model was trained on (--dataset picks another), or
your own with --images FILE (.npy / .npz of uint8 pixels, or a folder of .png
files). The verdict goes to stdout.

A model compiled for hardware it does not fit at once runs in segments
(docs/accelerator.md, "Segments"): before each segment's run the driver loads
that segment's model image (DIR/segment1.tim, ...) and writes its part of the
input, every batch. The serial link then sets the pace, not the accelerator.

Examples:
  tritium run --port /dev/ttyUSB1 build/tfc --count 200
  tritium run --port /dev/ttyUSB1 build/tfc --baud 1000000 --json
  tritium run --port /dev/ttyUSB1 build/tfc --images my_digits/
"""

import time
from pathlib import Path

from ...util.console import at_least, print_json, progress, step

NAME = "run"
HELP = "run a compiled model on a board over its serial port"


def add_arguments(parser):
    from .sim import add_input_arguments

    add_input_arguments(parser, model_help="the integer model file (.npz) DIR was compiled from, "
                                           "to compare every result with the golden reference "
                                           "(default: the one named in DIR/compiled.json)")
    parser.add_argument("--port", required=True, help="serial port of the board, e.g. /dev/ttyUSB1")
    parser.add_argument("--baud", type=at_least(1), default=115200,
                        help="baud rate (default: 115200)")
    parser.add_argument("--timeout", type=float, default=2.0,
                        help="seconds to wait for each response (default: 2)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


def run(args):
    import numpy as np

    from ....hw.errors import TritiumError
    from ...run.driver import Device, SerialTransport
    from .sim import run_sources, score, select_inputs, verdict

    if not args.timeout > 0:
        raise TritiumError("--timeout must be above 0 seconds")
    compiled, model, path = run_sources(args, required=False)
    image_path = Path(args.dir) / "model.tim"
    transport = SerialTransport(args.port, args.baud)
    try:
        meta = model.meta if model is not None else compiled.meta
        values, labels, count, dataset = select_inputs(compiled, model, meta, args,
                                              path or f"{image_path} (its model's metadata)")
        dev = Device(transport, timeout=args.timeout)
        size = image_path.stat().st_size
        bar = progress(total=size, desc="model image", enabled=not args.quiet, unit="B")
        t0 = time.perf_counter()
        dev.load_image(image_path, progress=bar.update)
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
    result = score(model, meta, values, labels, np.concatenate(accs), count, dataset, args.images)
    result.update({"port": args.port, "baud": args.baud, "seconds": seconds,
                   "model": None if path is None else str(path),
                   "images_per_s": count / seconds,
                   "cycles_per_image": float(np.mean(cycles)) / compiled.batch,
                   "resent": dev.resent})
    if args.json:
        print_json(result)
    else:
        print(f"{verdict(result)}\n{result['images_per_s']:.1f} images/s, "
              f"{result['cycles_per_image']:.0f} cycles/image on the device")
    return 0 if not result["mismatches"] else 1
