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

from ...hw.errors import TritiumError
from ..model.ir import ActType

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
    """Integer input values (N, H, W, C) -> float32 NCHW tensor for :class:`~tritium.sw.train.layers.Net`."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(np.asarray(values, np.float32).transpose(0, 3, 1, 2)))


def load_images(path, shape):
    """A user's own images for a model whose input is ``shape`` (H, W, C).

    ``path``: a ``.npy`` file of uint8 pixels, (N, H, W, C), or (N, H, W) when C = 1; a
    ``.npz`` file whose ``images`` array (or only array) is that, with an optional
    ``labels`` array (N integers: accuracy is then reported); or a folder of ``.png``
    files, read in name order and converted to grey (C = 1) or RGB (C = 3).
    Returns ``(images uint8 (N, H, W, C), labels or None)``; a wrong shape or type is
    a one-line error that names both shapes.
    """
    from pathlib import Path

    path, shape = Path(path), tuple(int(n) for n in shape)
    labels = None
    if path.is_dir():
        images = _read_pngs(path, shape)
    elif path.suffix == ".npy":
        images = _read_array(path, lambda: np.load(path, allow_pickle=False))
    elif path.suffix == ".npz":
        def read():
            with np.load(path, allow_pickle=False) as f:
                keys = list(f.keys())
                if "images" not in keys and len(keys) != 1:
                    raise TritiumError(f"--images {path}: holds {', '.join(keys)}: name the "
                                       "images array 'images' (and the labels 'labels')")
                return f["images" if "images" in keys else keys[0]], \
                    (f["labels"] if "labels" in keys else None)
        images, labels = _read_array(path, read)
    elif not path.exists():
        raise TritiumError(f"--images {path}: no such file or folder")
    else:
        raise TritiumError(f"--images {path}: give a .npy or .npz file, or a folder of .png files")
    images = _as_nhwc(np.asarray(images), shape, path)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(images),) or labels.dtype.kind not in "iu":
            raise TritiumError(f"--images {path}: labels must be {len(images)} integers, "
                               f"got {labels.dtype} of shape {labels.shape}")
        labels = labels.astype(np.int64)
    return images, labels


def _read_array(path, read):
    try:
        return read()
    except (OSError, ValueError) as e:
        raise TritiumError(f"--images {path}: not a readable numpy file ({e})") from None


def _read_pngs(folder, shape):
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    if not files:
        raise TritiumError(f"--images {folder}: a folder without .png files")
    mode = {1: "L", 3: "RGB"}.get(shape[2])
    if mode is None:
        raise TritiumError(f"--images {folder}: PNG files hold 1 or 3 channels, the model "
                           f"takes {shape[2]}")
    images = []
    for f in files:
        try:
            with Image.open(f) as im:
                a = np.asarray(im.convert(mode), dtype=np.uint8)
        except (OSError, UnidentifiedImageError) as e:
            raise TritiumError(f"--images {f}: not a readable PNG file ({e})") from None
        a = a.reshape(*a.shape[:2], shape[2])
        if a.shape != shape:
            raise TritiumError(f"--images {f}: the image is {_dims(a.shape)}, the model takes "
                               f"{_dims(shape)} (height x width x channels)")
        images.append(a)
    return np.stack(images)


def _as_nhwc(images, shape, path):
    if images.dtype != np.uint8:
        raise TritiumError(f"--images {path}: images must be uint8 pixels (0..255), "
                           f"got {images.dtype}")
    if images.ndim == 3 and shape[2] == 1 and images.shape[1:] == shape[:2]:
        images = images[..., None]
    if images.ndim != 4 or images.shape[1:] != shape or len(images) == 0:
        raise TritiumError(f"--images {path}: the images are {images.shape}, the model takes "
                           f"(N, {', '.join(map(str, shape))}) (N images, height, width, "
                           "channels; or (N, height, width) for one channel)")
    return images


def _dims(shape):
    return " x ".join(map(str, shape))
