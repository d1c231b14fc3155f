"""The typed integer IR: the one description of a network that the exporter,
the golden reference and the compiler share.

A model is an input description followed by a list of layers, executed in
order (each layer consumes the previous layer's output). Every value in the IR
is an integer; the meaning of each layer is fixed by docs/numerics.md and
implemented once, in :mod:`tritium.sw.model.reference`.

Layers
    :class:`Dense`    fully connected; a spatial input is flattened in H, W, C order.
    :class:`Conv2d`   2-D convolution over NHWC activations (kernel, stride,
                      padding with an explicit pad value).
    :class:`MaxPool2d` max-pool over activations (OR for bipolar bits).

Weight layers end in either a multi-threshold activation (``thresholds`` is an
(M, T) integer array, ``out_act`` the output type) or nothing at all
(``thresholds is None``): the raw signed accumulators, allowed on the last
layer only.

Weights are stored packed (:mod:`tritium.hw.packing`): the fan-in of output
channel ``m`` is flattened in (kernel row, kernel column, input channel) order
and packed into uint64 words. Every weight kind is a sum of weight planes
(:mod:`tritium.hw.weight_kinds`), ``W = sum_e 2**e * T_e``: ``w_sign`` holds
each plane's sign bits (1 -> +1, 0 -> -1), shape (P, M, words), and ``w_mask``
each plane's mask bits (1 -> non-zero) for masked kinds (ternary, pow2-N),
``None`` otherwise (binary, intK), with sign bits kept 0 where the mask is 0
(canonical form). Binary and ternary weights have one plane (P = 1).

See docs/ir.md for the file format (:func:`save_model`, :func:`load_model`).
"""

import io
import json
import zipfile
from dataclasses import dataclass, field

import numpy as np

from ...hw.errors import FormatError, ModelError
from ...hw.packing import pack_bits, unpack_bits, words_for
from ...hw.weight_kinds import illegal_values, join_planes, split_weights, weight_kind
from ..util.fileio import atomic_write_bytes

#: Identifies an IR file; checked on load.
IR_FORMAT = "tritium-ir"
#: Bumped whenever the file layout or a layer's meaning changes.
IR_VERSION = 2
#: Versions :func:`load_model` reads (version 1: weights without a plane axis).
READABLE_VERSIONS = (1, 2)


@dataclass(frozen=True)
class ActType:
    """The type of an activation tensor.

    ``kind`` is ``"bipolar"`` (one bit, 1 -> +1, 0 -> -1), ``"unsigned"``
    (k-bit, 0 .. 2**k - 1) or ``"signed"`` (k-bit two's complement).
    """

    kind: str
    bits: int = 1

    def __post_init__(self):
        if self.kind not in ("bipolar", "unsigned", "signed"):
            raise ModelError(f"unknown activation kind {self.kind!r} (bipolar, unsigned, signed)")
        if self.kind == "bipolar" and self.bits != 1:
            raise ModelError("bipolar activations have exactly 1 bit")
        if not 1 <= self.bits <= 16:
            raise ModelError(f"activation width {self.bits} is outside 1..16 bits")
        if self.kind == "signed" and self.bits < 2:
            raise ModelError("signed activations need at least 2 bits")

    @classmethod
    def parse(cls, text):
        """Parse ``"bipolar"``, ``"uintK"`` or ``"intK"``."""
        if text == "bipolar":
            return cls("bipolar", 1)
        for prefix, kind in (("uint", "unsigned"), ("int", "signed")):
            if text.startswith(prefix) and text[len(prefix):].isdigit():
                return cls(kind, int(text[len(prefix):]))
        raise ModelError(f"unknown activation type {text!r} (bipolar, uintK, intK)")

    def __str__(self):
        if self.kind == "bipolar":
            return "bipolar"
        return f"{'u' if self.kind == 'unsigned' else ''}int{self.bits}"

    @property
    def min(self):
        return {"bipolar": -1, "unsigned": 0, "signed": -(1 << (self.bits - 1))}[self.kind]

    @property
    def max(self):
        return {"bipolar": 1, "unsigned": (1 << self.bits) - 1,
                "signed": (1 << (self.bits - 1)) - 1}[self.kind]

    @property
    def zero_code_value(self):
        """The value whose code is all zeros (bipolar: -1, integers: 0)."""
        return -1 if self.kind == "bipolar" else 0

    def is_valid(self, values):
        """True where ``values`` are legal values of this type."""
        values = np.asarray(values)
        if self.kind == "bipolar":
            return (values == 1) | (values == -1)
        return (values >= self.min) & (values <= self.max)

    @property
    def n_thresholds(self):
        """Thresholds a multi-threshold unit needs to produce this type."""
        if self.kind == "signed":
            raise ModelError("layers produce bipolar or unsigned activations, not signed")
        return 1 if self.kind == "bipolar" else (1 << self.bits) - 1


def pack_weights(values, kind, name=None):
    """Pack integer weights (M, F) into (w_sign, w_mask): uint64 (P, M, ceil(F/64)),
    ``w_mask`` None for unmasked kinds.

    Every value must be a level of ``kind``; ``name`` (the layer's) prefixes errors.
    """
    where = "" if name is None else f"layer {name}: "
    try:
        kind_info = weight_kind(kind)
    except ModelError as e:
        raise ModelError(f"{where}{e}") from None
    values = np.asarray(values)
    if values.ndim != 2:
        raise ModelError(f"{where}weights must be a 2-D (outputs, fan-in) array, got shape {values.shape}")
    illegal = illegal_values(values, kind)
    if np.any(illegal):
        raise ModelError(f"{where}{kind} weights must be one of {kind_info.levels_text()}; "
                         f"got {values[illegal][0]}")
    sign, mask = split_weights(values, kind)
    return pack_bits(sign), None if mask is None else pack_bits(mask)


@dataclass(eq=False)
class WeightLayer:
    """Fields shared by :class:`Dense` and :class:`Conv2d`."""

    name: str
    weight_kind: str
    w_sign: np.ndarray
    w_mask: np.ndarray | None
    thresholds: np.ndarray | None
    out_act: ActType | None

    @property
    def out_channels(self):
        return self.w_sign.shape[1]

    @property
    def fan_in(self):
        raise NotImplementedError

    @property
    def plane_exponents(self):
        """The exponent ``e`` of each weight plane (``W = sum_e 2**e * T_e``), ascending."""
        return weight_kind(self.weight_kind).exponents

    def weight_values(self):
        """Weights as int8 values (M, F), the planes joined (levels of the weight kind)."""
        sign = unpack_bits(self.w_sign, self.fan_in)
        mask = None if self.w_mask is None else unpack_bits(self.w_mask, self.fan_in)
        return join_planes(sign, mask, self.weight_kind)

    @property
    def is_raw(self):
        """True when the layer outputs raw accumulators (no thresholds)."""
        return self.thresholds is None

    def _check_weights(self):
        try:
            kind = weight_kind(self.weight_kind)
        except ModelError as e:
            raise ModelError(f"layer {self.name}: {e}") from None
        if kind.masked != (self.w_mask is not None):
            raise ModelError(f"layer {self.name}: w_mask is {'required' if kind.masked else 'not allowed'} "
                             f"for {kind.name} weights")
        if not isinstance(self.w_sign, np.ndarray) or self.w_sign.ndim != 3:
            raise ModelError(f"layer {self.name}: w_sign must be a (planes, outputs, words) array, "
                             f"got shape {np.shape(self.w_sign)}")
        want = (kind.n_planes, self.out_channels, words_for(self.fan_in))
        for label, arr in (("w_sign", self.w_sign), ("w_mask", self.w_mask)):
            if arr is None:
                continue
            if not isinstance(arr, np.ndarray) or arr.ndim != 3 or arr.shape[0] != kind.n_planes:
                raise ModelError(f"layer {self.name}: {kind.name} weights have {kind.n_planes} "
                                 f"plane(s), {label} has shape {np.shape(arr)}")
            if arr.dtype != np.uint64 or arr.shape != want:
                raise ModelError(f"layer {self.name}: {label} must be uint64 of shape {want}, "
                                 f"got {arr.dtype} {arr.shape}")
            tail = self.fan_in % 64
            if tail and np.any(arr[..., -1] >> np.uint64(tail)):
                raise ModelError(f"layer {self.name}: {label} has bits set past the fan-in")
        if self.w_mask is not None:
            self._check_masked_planes(kind)

    def _check_masked_planes(self, kind):
        """Canonical sign bits, and disjoint planes: each weight is a level of the kind."""
        if np.any(self.w_sign & ~self.w_mask):
            raise ModelError(f"layer {self.name}: {kind.name} sign bits must be 0 where the mask is 0")
        seen = np.zeros(self.w_mask.shape[1:], np.uint64)
        for plane in self.w_mask:
            if np.any(seen & plane):
                overlaps = unpack_bits(self.w_mask, self.fan_in).sum(axis=0) > 1
                row, col = (int(i[0]) for i in np.nonzero(overlaps))
                raise ModelError(f"layer {self.name}: {kind.name} weights must be one of "
                                 f"{kind.levels_text()}; row {row} weight {col} is "
                                 f"{self.weight_values()[row, col]} (its mask planes overlap)")
            seen |= plane

    def _check_thresholds(self, acc_lo, acc_hi):
        if self.thresholds is None:
            if self.out_act is not None:
                raise ModelError(f"layer {self.name}: a raw layer has no output activation type")
            return
        if self.out_act is None:
            raise ModelError(f"layer {self.name}: thresholds given without an output type")
        t = self.thresholds
        want = (self.out_channels, self.out_act.n_thresholds)
        if t.dtype != np.int64 or t.shape != want:
            raise ModelError(f"layer {self.name}: thresholds must be int64 of shape {want} "
                             f"for {self.out_act} outputs, got {t.dtype} {t.shape}")
        if np.any(np.diff(t, axis=1) < 0):
            raise ModelError(f"layer {self.name}: thresholds must be non-decreasing per channel")
        if t.size and (t.min() < acc_lo or t.max() > acc_hi + 1):
            raise ModelError(f"layer {self.name}: thresholds must lie in [{acc_lo}, {acc_hi + 1}] "
                             "(the accumulator range; the ends mean always / never)")


def _fan_in_header(layer):
    return {"name": layer.name, "weight_kind": layer.weight_kind,
            "out_act": None if layer.out_act is None else str(layer.out_act)}


@dataclass(eq=False)
class Dense(WeightLayer):
    """Fully connected layer: ``acc[m] = sum_k w[m, k] * x[k]``.

    A spatial input (H, W, C) is flattened in H, W, C order, so ``in_features``
    is ``H * W * C``.
    """

    in_features: int = 0

    @classmethod
    def from_values(cls, name, weights, weight_kind, thresholds=None, out_act=None):
        """Build from integer weights (M, K) and optional thresholds (M, T)."""
        weights = np.asarray(weights)
        sign, mask = pack_weights(weights, weight_kind, name)
        return cls(name=name, weight_kind=weight_kind, w_sign=sign, w_mask=mask,
                   thresholds=_as_thresholds(thresholds), out_act=_as_act(out_act),
                   in_features=weights.shape[1])

    @property
    def fan_in(self):
        return self.in_features

    def header(self):
        return {"type": "dense", **_fan_in_header(self), "in_features": self.in_features,
                "out_features": self.out_channels}


@dataclass(eq=False)
class Conv2d(WeightLayer):
    """2-D convolution over NHWC activations (no groups, no dilation).

    ``acc[y, x, m] = sum_{i, j, c} w[m, i, j, c] * in[y*sh + i - ph, x*sw + j - pw, c]``,
    where pixels outside the input read ``pad_value`` (a legal value of the
    input type; ``None`` means the all-zero code: -1 for bipolar, 0 for
    integers). Output size is ``(H + 2*ph - kh) // sh + 1`` (same for W).
    """

    in_channels: int = 0
    kernel: tuple = (1, 1)
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    pad_value: int | None = None

    @classmethod
    def from_values(cls, name, weights, weight_kind, stride=1, padding=0, pad_value=None,
                    thresholds=None, out_act=None):
        """Build from integer weights (M, kh, kw, C) and optional thresholds (M, T)."""
        weights = np.asarray(weights)
        if weights.ndim != 4:
            raise ModelError(f"conv weights must be (M, kh, kw, C), got shape {weights.shape}")
        m, kh, kw, c = weights.shape
        sign, mask = pack_weights(weights.reshape(m, -1), weight_kind, name)
        return cls(name=name, weight_kind=weight_kind, w_sign=sign, w_mask=mask,
                   thresholds=_as_thresholds(thresholds), out_act=_as_act(out_act),
                   in_channels=c, kernel=(kh, kw), stride=_pair(stride),
                   padding=_pair(padding), pad_value=pad_value)

    @property
    def fan_in(self):
        return self.kernel[0] * self.kernel[1] * self.in_channels

    def output_hw(self, h, w):
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1

    def header(self):
        return {"type": "conv2d", **_fan_in_header(self), "in_channels": self.in_channels,
                "out_channels": self.out_channels, "kernel": list(self.kernel),
                "stride": list(self.stride), "padding": list(self.padding),
                "pad_value": self.pad_value}


@dataclass(eq=False)
class MaxPool2d:
    """Max-pool over an NHWC activation (OR for bipolar bits), no padding."""

    name: str
    kernel: tuple = (2, 2)
    stride: tuple | None = None

    def __post_init__(self):
        self.kernel = _pair(self.kernel)
        self.stride = self.kernel if self.stride is None else _pair(self.stride)

    def output_hw(self, h, w):
        (kh, kw), (sh, sw) = self.kernel, self.stride
        return (h - kh) // sh + 1, (w - kw) // sw + 1

    def header(self):
        return {"type": "maxpool2d", "name": self.name, "kernel": list(self.kernel),
                "stride": list(self.stride)}


@dataclass(frozen=True)
class LayerInfo:
    """What :meth:`IntModel.check` derives for one layer."""

    in_shape: tuple
    in_act: ActType
    out_shape: tuple
    out_act: ActType | None  # None: raw accumulators
    acc_range: tuple | None  # (lo, hi) of the accumulator; None for pooling
    acc_bits: int | None      # signed bits that hold acc_range


def accumulator_range(fan_in, in_act, kind):
    """Bounds (lo, hi) of a weight layer's accumulator, from its fan-in, input type
    and weight kind (its largest magnitude)."""
    biggest = max(abs(in_act.min), abs(in_act.max)) * weight_kind(kind).max_magnitude
    return -fan_in * biggest, fan_in * biggest


def signed_bits(lo, hi):
    """Bits of a two's-complement register that holds every integer in [lo, hi]."""
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


@dataclass(eq=False)
class IntModel:
    """A whole integer network: input type and shape, layers, free-form metadata.

    ``meta`` is JSON-compatible data the hardware never sees (class names, the
    float affine map of the last layer, input quantisation, provenance).
    """

    input_shape: tuple
    input_act: ActType
    layers: list
    meta: dict = field(default_factory=dict)

    def check(self):
        """Validate the model and return one :class:`LayerInfo` per layer.

        Raises :class:`ModelError` naming the layer and the problem.
        """
        shape, act = tuple(self.input_shape), self.input_act
        if len(shape) not in (1, 3) or any(int(s) <= 0 for s in shape):
            raise ModelError(f"input shape must be (features,) or (H, W, C), got {shape}")
        if not self.layers:
            raise ModelError("the model has no layers")
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise ModelError("layer names must be unique")
        infos = []
        for index, layer in enumerate(self.layers):
            if act is None:
                raise ModelError(f"layer {layer.name}: follows a raw-output layer; "
                                 "only the last layer may output raw accumulators")
            infos.append(self._check_layer(layer, shape, act))
            shape, act = infos[-1].out_shape, infos[-1].out_act
        return infos

    def _check_layer(self, layer, shape, act):
        if isinstance(layer, MaxPool2d):
            if len(shape) != 3:
                raise ModelError(f"layer {layer.name}: max-pool needs an (H, W, C) input, got {shape}")
            oh, ow = layer.output_hw(shape[0], shape[1])
            if oh <= 0 or ow <= 0:
                raise ModelError(f"layer {layer.name}: kernel {layer.kernel} is larger than the input {shape}")
            return LayerInfo(shape, act, (oh, ow, shape[2]), act, None, None)
        if isinstance(layer, Conv2d):
            if len(shape) != 3 or shape[2] != layer.in_channels:
                raise ModelError(f"layer {layer.name}: expects (H, W, {layer.in_channels}) input, got {shape}")
            if min(layer.kernel) < 1 or min(layer.stride) < 1 or min(layer.padding) < 0:
                raise ModelError(f"layer {layer.name}: kernel and stride must be >= 1, padding >= 0")
            if layer.pad_value is not None and not act.is_valid(layer.pad_value):
                raise ModelError(f"layer {layer.name}: pad value {layer.pad_value} is not a {act} value")
            oh, ow = layer.output_hw(shape[0], shape[1])
            if oh <= 0 or ow <= 0:
                raise ModelError(f"layer {layer.name}: kernel {layer.kernel} does not fit the "
                                 f"padded input {shape}")
            layer._check_weights()
            out_shape = (oh, ow, layer.out_channels)
        elif isinstance(layer, Dense):
            if int(np.prod(shape)) != layer.in_features:
                raise ModelError(f"layer {layer.name}: expects {layer.in_features} inputs, "
                                 f"got shape {shape} ({int(np.prod(shape))} values)")
            layer._check_weights()
            out_shape = (layer.out_channels,)
        else:
            raise ModelError(f"layer {getattr(layer, 'name', '?')}: unknown layer type {type(layer).__name__}")
        lo, hi = accumulator_range(layer.fan_in, act, layer.weight_kind)
        layer._check_thresholds(lo, hi)
        return LayerInfo(shape, act, out_shape, layer.out_act, (lo, hi), signed_bits(lo, hi))

    @property
    def output_is_raw(self):
        return self.layers[-1].is_raw if isinstance(self.layers[-1], WeightLayer) else False

    def summary(self):
        """A human-readable table of the layers."""
        rows = [f"input {tuple(self.input_shape)} {self.input_act}"]
        for layer, info in zip(self.layers, self.check()):
            kind = type(layer).__name__
            extra = ""
            if isinstance(layer, WeightLayer):
                extra = f" {layer.weight_kind} acc{info.acc_bits}"
            out = "raw" if info.out_act is None else str(info.out_act)
            rows.append(f"{layer.name:<12} {kind:<9} {str(info.in_shape):>14} -> "
                        f"{str(info.out_shape):<14} {out}{extra}")
        return "\n".join(rows)


def _pair(v):
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ModelError(f"expected an int or a pair, got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _as_thresholds(t):
    if t is None:
        return None
    t = np.asarray(t)
    if t.ndim == 1:
        t = t[:, None]
    if not np.issubdtype(t.dtype, np.integer):
        raise ModelError("thresholds must be integers")
    return t.astype(np.int64)


def _as_act(a):
    if a is None or isinstance(a, ActType):
        return a
    return ActType.parse(a)


# ---------------------------------------------------------------- file format

def save_model(model, path):
    """Write ``model`` to ``path`` (an uncompressed zip of .npy arrays, see docs/ir.md).

    The model is checked first; the file appears atomically.
    """
    model.check()
    header = {"format": IR_FORMAT, "version": IR_VERSION,
              "input": {"shape": list(model.input_shape), "act": str(model.input_act)},
              "layers": [layer.header() for layer in model.layers], "meta": model.meta}
    arrays = {"header": np.frombuffer(json.dumps(header, sort_keys=True).encode(), np.uint8)}
    for i, layer in enumerate(model.layers):
        if isinstance(layer, WeightLayer):
            arrays[f"l{i}.w_sign"] = layer.w_sign
            if layer.w_mask is not None:
                arrays[f"l{i}.w_mask"] = layer.w_mask
            if layer.thresholds is not None:
                arrays[f"l{i}.thresholds"] = layer.thresholds
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_model(path):
    """Read and check an IR file written by :func:`save_model`.

    Never unpickles anything. Raises :class:`FormatError` for a file that is not
    a tritium IR file, is truncated or corrupt, or has an unsupported version.
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise FormatError(f"{path}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise FormatError(f"{path}: not a tritium IR file (unreadable or truncated: {e})") from None
    bad = [k for k, v in arrays.items() if not isinstance(v, np.ndarray)]
    if bad:
        raise FormatError(f"{path}: not a tritium IR file (entry {bad[0]!r} is not a NumPy array)")
    try:
        header = json.loads(arrays["header"].tobytes().decode())
    except (KeyError, UnicodeDecodeError, json.JSONDecodeError):
        raise FormatError(f"{path}: not a tritium IR file (no readable header)") from None
    if not isinstance(header, dict) or header.get("format") != IR_FORMAT:
        raise FormatError(f"{path}: not a tritium IR file (format tag is {header.get('format')!r})"
                          if isinstance(header, dict) else f"{path}: not a tritium IR file")
    version = header.get("version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise FormatError(f"{path}: IR version {version} is not supported (this tritium reads "
                          f"versions {', '.join(map(str, READABLE_VERSIONS))})")
    try:
        model = _model_from_header(header, arrays)
    except (KeyError, TypeError, ValueError) as e:
        raise FormatError(f"{path}: malformed IR file ({type(e).__name__}: {e})") from None
    try:
        model.check()
    except ModelError as e:
        raise FormatError(f"{path}: invalid model: {e}") from None
    return model


def _model_from_header(header, arrays):
    layers = []
    for i, h in enumerate(header["layers"]):
        kind = h["type"]
        if kind == "maxpool2d":
            layers.append(MaxPool2d(name=h["name"], kernel=tuple(h["kernel"]),
                                    stride=tuple(h["stride"])))
            continue
        sign, mask = arrays[f"l{i}.w_sign"], arrays.get(f"l{i}.w_mask")
        if header["version"] == 1:
            sign, mask = _version1_planes(h, sign, mask)
        common = dict(name=h["name"], weight_kind=h["weight_kind"], w_sign=sign, w_mask=mask,
                      thresholds=arrays.get(f"l{i}.thresholds"),
                      out_act=None if h["out_act"] is None else ActType.parse(h["out_act"]))
        if kind == "dense":
            layers.append(Dense(**common, in_features=int(h["in_features"])))
        elif kind == "conv2d":
            pad = h["pad_value"]
            layers.append(Conv2d(**common, in_channels=int(h["in_channels"]),
                                 kernel=_pair(h["kernel"]), stride=_pair(h["stride"]),
                                 padding=_pair(h["padding"]),
                                 pad_value=None if pad is None else int(pad)))
        else:
            raise ValueError(f"unknown layer type {kind!r}")
    return IntModel(input_shape=tuple(int(s) for s in header["input"]["shape"]),
                    input_act=ActType.parse(header["input"]["act"]), layers=layers,
                    meta=header.get("meta", {}))


def _version1_planes(h, sign, mask):
    """Version-1 weights (M, W), binary or ternary, as version-2 planes (1, M, W)."""
    if h["weight_kind"] not in ("binary", "ternary"):
        raise ValueError(f"layer {h['name']}: IR version 1 has no {h['weight_kind']!r} weights")
    for label, arr in (("w_sign", sign), ("w_mask", mask)):
        if arr is not None and arr.ndim != 2:
            raise ValueError(f"layer {h['name']}: version-1 {label} must be (outputs, words), "
                             f"got shape {arr.shape}")
    return sign[None], None if mask is None else mask[None]
