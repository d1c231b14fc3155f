"""Input quantisation: how uint8 pixels become a model's integer input values.

One function, :func:`quantize_input`, used by training, the exporter's checks,
the demo and the compiler. A spec is a small JSON-able dict, stored in
checkpoints and in the exported model's ``meta["input_quant"]``:

``{"kind": "binarise", "threshold": T}``
    bipolar input: +1 where ``pixel >= T``, else -1 (TFC, SFC, LFC).
``{"kind": "uint", "bits": k}``
    unsigned k-bit codes ``pixel >> (8 - k)`` (k = 8: the pixels themselves;
    CNV and the MNIST CNN). The first layer scales them by ``1 / (2**k - 1)``
    after its accumulator.
"""

import numpy as np

from .errors import TritiumError
from .ir import ActType

#: Default spec for networks with bipolar inputs.
BINARISE = {"kind": "binarise", "threshold": 128}
#: Default spec for networks that read the 8-bit pixels.
UINT8 = {"kind": "uint", "bits": 8}


def check_spec(spec):
    """Validate an input quantisation spec; returns it as a plain dict."""
    if not isinstance(spec, dict) or spec.get("kind") not in ("binarise", "uint"):
        raise TritiumError(f"unknown input quantisation {spec!r} "
                           "(expected kind 'binarise' with a threshold or 'uint' with bits)")
    if spec["kind"] == "binarise":
        t = spec.get("threshold")
        if not isinstance(t, int) or not 0 <= t <= 256:
            raise TritiumError(f"binarise threshold must be an integer in 0..256, got {t!r}")
        return {"kind": "binarise", "threshold": t}
    bits = spec.get("bits")
    if not isinstance(bits, int) or not 1 <= bits <= 8:
        raise TritiumError(f"uint input bits must be an integer in 1..8, got {bits!r}")
    return {"kind": "uint", "bits": bits}


def input_act(spec):
    """The IR activation type of the quantised input."""
    spec = check_spec(spec)
    return ActType("bipolar") if spec["kind"] == "binarise" else ActType("unsigned", spec["bits"])


def input_bits(spec):
    """``input_bits`` of the first training layer: None (bipolar) or k."""
    spec = check_spec(spec)
    return None if spec["kind"] == "binarise" else spec["bits"]


def quantize_input(spec, images):
    """uint8 images (N, H, W, C) -> integer input values (int16, same shape)."""
    spec = check_spec(spec)
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TritiumError(f"images must be uint8 pixels, got {images.dtype}")
    if images.ndim != 4:
        raise TritiumError(f"images must be (N, H, W, C), got shape {images.shape}")
    if spec["kind"] == "binarise":
        return np.where(images >= spec["threshold"], 1, -1).astype(np.int16)
    return (images >> (8 - spec["bits"])).astype(np.int16)


def to_torch(values):
    """Integer input values (N, H, W, C) -> float32 NCHW tensor for :class:`~tritium.sw.layers.Net`."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(np.asarray(values, np.float32).transpose(0, 3, 1, 2)))
