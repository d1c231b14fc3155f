"""Golden-reference throughput against PyTorch float on the same topologies."""

import time

import numpy as np

from ..model import reference
from ..model import topologies as topo
from ..model.zoo import random_inputs, random_model


def _best_time(fn, repeats):
    fn()  # warm up (allocations, caches, torch kernels)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def torch_float_model(arch, input_shape, n_classes=10):
    """A float PyTorch network of topology ``arch``: bias-free layers, BatchNorm, sign."""
    import torch
    from torch import nn

    class Sign(nn.Module):
        def forward(self, x):
            return torch.sign(x)

    layers, c, (h, w) = [], input_shape[2], input_shape[:2]
    flat = None
    specs = topo.topology(arch)
    for i, spec in enumerate(specs):
        last = i == len(specs) - 1
        if isinstance(spec, topo.Pool):
            layers.append(nn.MaxPool2d(spec.kernel))
            h, w = h // spec.kernel, w // spec.kernel
        elif isinstance(spec, topo.Conv):
            layers += [nn.Conv2d(c, spec.out_channels, spec.kernel, spec.stride, spec.padding, bias=False),
                       nn.BatchNorm2d(spec.out_channels), Sign()]
            h = (h + 2 * spec.padding - spec.kernel) // spec.stride + 1
            w = (w + 2 * spec.padding - spec.kernel) // spec.stride + 1
            c = spec.out_channels
        else:
            if flat is None:
                layers.append(nn.Flatten())
                flat = c * h * w
            out = n_classes if spec.out_features == topo.CLASSES else spec.out_features
            layers.append(nn.Linear(flat, out, bias=False))
            if not last:
                layers += [nn.BatchNorm1d(out), Sign()]
            flat = out
    return nn.Sequential(*layers).eval()


def measure_reference(images=None, repeats=3, log=print):
    """Measure images/s of the reference and of PyTorch float for SFC and CNV."""
    import torch

    result = {"torch_threads": torch.get_num_threads(), "repeats": repeats}
    for arch, in_act, default_n in (("sfc", "bipolar", 2000), ("cnv", "uint8", 64)):
        n = images or default_n
        shape = topo.BENCH_INPUT[arch]
        if arch != "cnv":
            shape = (int(np.prod(shape)),)
        model = random_model(arch, shape, in_act, seed=1)
        x = random_inputs(model, n, seed=2)
        log(f"{arch.upper()}: golden reference on {n} images")
        t_ref = _best_time(lambda: reference.run(model, x, batch=256), repeats)
        net = torch_float_model(arch, topo.BENCH_INPUT[arch])
        xt = torch.from_numpy(x.astype(np.float32))
        if arch == "cnv":
            xt = xt.permute(0, 3, 1, 2).contiguous()
        log(f"{arch.upper()}: PyTorch float on {n} images")
        with torch.inference_mode():
            t_torch = _best_time(lambda: net(xt), repeats)
        result[f"{arch}_images"] = n
        result[f"{arch}_images_per_s"] = n / t_ref
        result[f"{arch}_torch_images_per_s"] = n / t_torch
    return result
