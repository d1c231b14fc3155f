"""Host-side tensor layout: values <-> the words the accelerator's memories hold.

The compiler lays weights out with :func:`window_rows` and :func:`lanes_to_int`;
the host (driver, ISA-level simulator, RTL testbenches) packs network inputs with
:func:`pack_input` and reads results back with :func:`results_to_accumulators`.
Both follow the layout of docs/accelerator.md: pixel, then plane, then channel
word; lane ``i`` of a word is bit ``i``.
"""

import numpy as np

from ...hw.errors import TritiumError
from ...hw.packing import to_planes
from .ir import ActType


class LayoutError(TritiumError):
    """Values that do not fit the layout a compiled model expects."""


def words_for_lanes(lanes, simd):
    """Words of ``simd`` lanes that hold ``lanes`` lanes."""
    return -(-int(lanes) // simd)


def lanes_to_int(bits):
    """Lane bits (..., S) -> Python ints (lane i = bit i)."""
    weights = 1 << np.arange(bits.shape[-1], dtype=object)
    return (bits.astype(object) * weights).sum(axis=-1)


def window_rows(values, kernel_positions, in_channels, simd):
    """Weight rows (M, F) -> lane bits (M, words per row, S): each of the
    ``kernel_positions`` groups of ``in_channels`` values padded to whole words."""
    rows = values.shape[0]
    channel_words = words_for_lanes(in_channels, simd)
    grouped = values.reshape(rows, kernel_positions, in_channels)
    padded = np.zeros((rows, kernel_positions, channel_words * simd), values.dtype)
    padded[:, :, :in_channels] = grouped
    return padded.reshape(rows, kernel_positions * channel_words, simd)


def pack_tensor(values, height, width, channels, act, simd):
    """Values (N, H, W, C) or (N, F) -> activation-buffer words, one list of ints per image.

    The layout of docs/accelerator.md: pixel, then plane, then channel word.
    """
    n = values.shape[0]
    v = np.asarray(values).reshape(n, height, width, channels)
    if act.kind == "bipolar":
        planes = (v > 0).astype(np.uint8)[:, :, :, None, :]
    else:
        planes = np.moveaxis(to_planes(v, act.bits, act.kind == "signed"), 0, 3)
    channel_words = words_for_lanes(channels, simd)
    padded = np.zeros(planes.shape[:4] + (channel_words * simd,), np.uint8)
    padded[..., :channels] = planes
    words = lanes_to_int(padded.reshape(n, height, width, planes.shape[3], channel_words, simd))
    return [list(row.reshape(-1)) for row in words]


def pack_input(compiled, values):
    """Network input values (N, *input_shape) -> buffer-0 words per program run.

    With a batch of B images per run, N must be a multiple of B; each run's
    words hold B consecutive images, image after image (rows of one tensor).
    """
    spec, batch = compiled.io["input"], compiled.batch
    values = np.asarray(values)
    if len(values) % batch:
        raise LayoutError(f"{len(values)} images are not a multiple of the batch {batch}")
    if spec.get("unfold"):
        values = unfold_patches(values, spec["unfold"])
    grouped = values.reshape(len(values) // batch, -1)  # a run's images are rows of its tensor
    return pack_tensor(grouped, spec["h"], spec["w"], spec["c"], ActType.parse(spec["act"]),
                       compiled.config.simd)


def unfold_patches(values, unfold):
    """Images (N, H, W, C) -> patches (N, OH, OW, kh*kw*C) in (ky, kx, channel) order;
    ``unfold``: the io description's ``input.unfold`` (kernel, stride, padding, pad value
    and the image's height, width and channels)."""
    (kh, kw), (sh, sw), (ph, pw) = unfold["kernel"], unfold["stride"], unfold["padding"]
    x = np.asarray(values).reshape(len(values), unfold["height"], unfold["width"],
                                   unfold["channels"])
    if ph or pw:
        x = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), constant_values=unfold["pad_value"])
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]
    n, oh, ow = windows.shape[:3]
    return windows.transpose(0, 1, 2, 4, 5, 3).reshape(n, oh, ow, kh * kw * unfold["channels"])


def results_to_accumulators(compiled, entries):
    """Result-memory entries (per program run: (entries, P) values) -> reference accumulators.

    Returns int64 (N, M) for a 1x1 output (N images, batches unrolled), else
    (N, out_h, out_w, M): the hardware results ``D`` minus the row constants ``K``.
    A run's entries hold its images one after another.
    """
    o, pe, batch = compiled.io["output"], compiled.config.pe, compiled.batch
    m, k = o["m"], np.array(o["row_constants"], np.int64)
    rows = o["h"] // batch                              # output rows of one image
    out = []
    for run in entries:
        d = np.array(run, np.int64).reshape(o["h"], o["w"], o["tiles"] * pe)[..., :m]
        out.extend((d - k).reshape(batch, rows, o["w"], m))
    out = np.array(out, np.int64).reshape(-1, rows, o["w"], m)
    if (rows, o["w"]) == (1, 1):
        return out.reshape(len(out), m)
    return out
