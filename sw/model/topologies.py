"""Reference network topologies (FINN / BNN-PYNQ shapes, so figures compare).

One definition, used by the PyTorch model builders, the random integer models
of the benchmarks and the tests. A topology is a list of layer specs; the last
dense layer's width is the number of classes and it outputs raw accumulators.
"""

from dataclasses import dataclass

from ...hw.errors import TritiumError


@dataclass(frozen=True)
class Conv:
    out_channels: int
    kernel: int = 3
    stride: int = 1
    padding: int = 0


@dataclass(frozen=True)
class Pool:
    kernel: int = 2


@dataclass(frozen=True)
class Dense:
    out_features: int  # 0 means "the number of classes"


CLASSES = 0

TOPOLOGIES = {
    # 784-64-64-64-10 and friends: bias-free linear, BatchNorm, sign.
    "tfc": [Dense(64), Dense(64), Dense(64), Dense(CLASSES)],
    "sfc": [Dense(256), Dense(256), Dense(256), Dense(CLASSES)],
    "lfc": [Dense(1024), Dense(1024), Dense(1024), Dense(CLASSES)],
    # CIFAR-10 shaped CNV: 3x32x32, 8-bit input, no padding, stride 1.
    "cnv": [Conv(64), Conv(64), Pool(2), Conv(128), Conv(128), Pool(2),
            Conv(256), Conv(256), Dense(512), Dense(512), Dense(CLASSES)],
    # A small CNN for 28x28 MNIST: padding, pooling and a strided convolution.
    # 28x28x1 -> 28x28x16 -> pool 14x14 -> stride 2: 7x7x32 -> 128 -> classes.
    "cnn": [Conv(16, 3, 1, 1), Pool(2), Conv(32, 3, 2, 1), Dense(128), Dense(CLASSES)],
}

#: Topologies whose first layer reads 8-bit pixels (the others binarise them).
PIXEL_INPUT = ("cnv", "cnn")

#: Input shapes (H, W, C) the benchmarks use for each topology.
BENCH_INPUT = {"tfc": (28, 28, 1), "sfc": (28, 28, 1), "lfc": (28, 28, 1), "cnv": (32, 32, 3),
               "cnn": (28, 28, 1)}


def topology(name):
    """The layer specs of topology ``name``, or a clear error."""
    try:
        return TOPOLOGIES[name]
    except KeyError:
        raise TritiumError(f"unknown architecture {name!r} (choose from "
                           f"{', '.join(sorted(TOPOLOGIES))})") from None
