"""Model builders for the reference topologies, and checkpoints.

:func:`build_net` turns a topology of :mod:`tritium.sw.model.topologies` (TFC, SFC,
LFC, CNV, the MNIST CNN, or any list of layer specs) into a
:class:`~tritium.sw.train.layers.Net` with binary, ternary or float weights chosen
per weight layer.

Checkpoints (:func:`save_checkpoint`, :func:`load_checkpoint`) are
``torch.save`` files holding only a dict of tensors and plain values
(strings, numbers, lists, dicts), so they load with
``torch.load(..., weights_only=True)``: no pickled code ever runs.
"""

import io
import pickle
import re
import warnings
import zipfile

from ...hw.errors import FormatError, TritiumError
from ..model import topologies as topo
from ..util.fileio import atomic_write_bytes
from .inputs import BINARISE, UINT8, check_spec, input_bits
from .layers import ACT_BITS, METHODS, WEIGHT_CHOICES, Net, QuantAct, QuantConv2d, QuantLinear, SignAct

CHECKPOINT_FORMAT = "tritium-checkpoint"
CHECKPOINT_VERSION = 1


def default_input_quant(arch):
    """Pixel-reading topologies get 8-bit codes, the dense ones binarised input."""
    return dict(UINT8 if arch in topo.PIXEL_INPUT else BINARISE)


def _weight_list(weights, n):
    if isinstance(weights, str):
        weights = [w.strip() for w in weights.split(",")]
        if len(weights) == 1:
            weights = weights * n
    weights = list(weights)
    if len(weights) != n:
        raise TritiumError(f"--weights names {len(weights)} layers but the network has {n} weight layers")
    for w in weights:
        if w not in WEIGHT_CHOICES:
            raise TritiumError(f"unknown weight kind {w!r} (choose from {', '.join(WEIGHT_CHOICES)})")
    return weights


def check_options(kinds, method, act_bits):
    """One-line errors for combinations of weight kinds, method and activation width."""
    if method not in METHODS:
        raise TritiumError(f"unknown training method {method!r} (choose from {', '.join(METHODS)})")
    if act_bits is not None and act_bits not in ACT_BITS:
        raise TritiumError(f"hidden activations have {', '.join(map(str, ACT_BITS[:-1]))} or {ACT_BITS[-1]} bits, "
                           f"not {act_bits}")
    if "float" in kinds and (method != "ste" or act_bits is not None):
        raise TritiumError("float weights are the ReLU baseline: they take neither ADMM "
                           "nor k-bit activations")


def build_net(arch, input_shape, n_classes, weights="binary", alpha=True, input_quant=None,
              specs=None, bias=False, method="ste", act_bits=None, per_channel=True):
    """A :class:`Net` of topology ``arch`` (or explicit ``specs``) for (H, W, C) inputs.

    ``weights`` is one kind of :data:`~tritium.sw.train.layers.WEIGHT_CHOICES`
    for every weight layer, or a list (or comma-separated string) with one per
    weight layer; ``method`` is ``"ste"`` or ``"admm"``; ``per_channel=False``
    gives projections and DoReFa maxima one scale per layer. Hidden blocks are
    weight layer, BatchNorm, activation (sign, or :class:`QuantAct` codes of
    ``act_bits`` bits that the next layer reads as unsigned inputs; ReLU when
    the weights are float: the float baseline), then any pooling; the last
    layer has BatchNorm and no activation (its outputs are the logits).
    """
    specs = list(topo.topology(arch) if specs is None else specs)
    input_quant = check_spec(input_quant or default_input_quant(arch))
    h, w, c = (int(s) for s in input_shape)
    n_weight = sum(not isinstance(s, topo.Pool) for s in specs)
    kinds = _weight_list(weights, n_weight)
    check_options(kinds, method, act_bits)
    quant = {"alpha": alpha, "bias": bias, "method": method, "per_channel": per_channel}
    modules, flat, li, bits = [], None, 0, input_bits(input_quant)
    for i, spec in enumerate(specs):
        last = i == len(specs) - 1
        if isinstance(spec, topo.Pool):
            if flat is not None:
                raise TritiumError(f"{arch}: pooling after a dense layer")
            if h < spec.kernel or w < spec.kernel:
                raise TritiumError(f"{arch}: a {h}x{w} input is too small for the network "
                                   f"(pool{i} needs {spec.kernel}x{spec.kernel})")
            modules.append((f"pool{i}", _maxpool(spec.kernel)))
            h, w = h // spec.kernel, w // spec.kernel
            continue
        kind = kinds[li]
        li += 1
        if isinstance(spec, topo.Conv):
            if flat is not None:
                raise TritiumError(f"{arch}: convolution after a dense layer")
            layer = QuantConv2d(c, spec.out_channels, spec.kernel, spec.stride, spec.padding,
                                weights=kind, input_bits=bits, **quant)
            h = (h + 2 * spec.padding - spec.kernel) // spec.stride + 1
            w = (w + 2 * spec.padding - spec.kernel) // spec.stride + 1
            if h <= 0 or w <= 0:
                raise TritiumError(f"{arch}: the input {tuple(input_shape)} is too small for the "
                                   f"network (conv{i} has no output pixels)")
            c = spec.out_channels
            modules += [(f"conv{i}", layer), (f"bn{i}", _bn(2, c))]
        else:
            if flat is None:
                modules.append(("flatten", _flatten()))
                flat = h * w * c
            out = n_classes if spec.out_features == topo.CLASSES else spec.out_features
            modules += [(f"fc{i}", QuantLinear(flat, out, weights=kind, input_bits=bits, **quant)),
                        (f"bn{i}", _bn(1, out))]
            flat = out
        if not last:
            act = _relu() if kind == "float" else SignAct() if act_bits is None else QuantAct(act_bits)
            modules.append((f"act{i}", act))
        bits = act_bits
    config = {"arch": arch, "input_shape": [int(s) for s in input_shape], "n_classes": int(n_classes),
              "weights": kinds, "alpha": bool(alpha), "input_quant": input_quant, "bias": bool(bias),
              "method": method, "act_bits": act_bits, "per_channel": bool(per_channel)}
    return Net(modules, input_shape, input_quant, config)


def _maxpool(k):
    from torch import nn
    return nn.MaxPool2d(k)


def _bn(dims, c):
    from torch import nn
    return nn.BatchNorm1d(c) if dims == 1 else nn.BatchNorm2d(c)


def _flatten():
    from torch import nn
    return nn.Flatten()


def _relu():
    from torch import nn
    return nn.ReLU()


def net_from_config(config):
    """Rebuild the (untrained) network a checkpoint's config describes."""
    try:
        return build_net(config["arch"], config["input_shape"], config["n_classes"],
                         weights=config["weights"], alpha=config["alpha"],
                         input_quant=config["input_quant"], bias=config.get("bias", False),
                         method=config.get("method", "ste"), act_bits=config.get("act_bits"),
                         per_channel=config.get("per_channel", True))
    except (KeyError, TypeError, ValueError) as e:
        raise FormatError(f"checkpoint config is incomplete or malformed ({type(e).__name__}: {e})") from None


def save_checkpoint(net, path, extra=None):
    """Write ``net`` (config + state dict) to ``path`` atomically (torch.save format)."""
    import torch

    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    blob = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "config": net.config, "state_dict": state, "extra": dict(extra or {})}
    buf = io.BytesIO()
    torch.save(blob, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path):
    """Load a checkpoint: returns ``(net in eval mode, extra dict)``.

    Uses ``torch.load(weights_only=True)``: a file carrying pickled code is
    refused, never run. Every failure is a one-line :class:`FormatError`.
    """
    import torch

    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on stderr
            warnings.simplefilter("ignore")
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FormatError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise FormatError(f"{path}: is a directory, not a checkpoint") from None
    except pickle.UnpicklingError as e:
        if "GLOBAL" in str(e):
            raise FormatError(f"{path}: refused to load: the file carries pickled code or objects "
                              f"that a weights-only load never runs ({_first_line(e)})") from None
        raise FormatError(f"{path}: not a tritium checkpoint (not a weights-only torch file: "
                          f"{_first_line(e)})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError,
            UnicodeDecodeError, AttributeError, IndexError, TypeError) as e:
        raise FormatError(f"{path}: not a tritium checkpoint (unreadable, truncated or corrupt: "
                          f"{_first_line(e)})") from None
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise FormatError(f"{path}: not a tritium checkpoint (no '{CHECKPOINT_FORMAT}' format tag)")
    if blob.get("version") != CHECKPOINT_VERSION:
        raise FormatError(f"{path}: checkpoint version {blob.get('version')} is not supported "
                          f"(this tritium reads version {CHECKPOINT_VERSION})")
    state, config = blob.get("state_dict"), blob.get("config")
    if not isinstance(state, dict) or not isinstance(config, dict):
        raise FormatError(f"{path}: checkpoint lacks its config or state_dict")
    net = net_from_config(config)
    load_state(net, state, str(path))
    net.eval()
    return net, blob.get("extra") or {}


def load_state(net, state, where):
    """Load a state dict, turning missing / unexpected / mis-shaped tensors into one line."""
    import torch

    want = net.state_dict()
    missing = sorted(set(want) - set(state))
    unexpected = sorted(set(state) - set(want))
    if missing or unexpected:
        raise FormatError(f"{where}: state does not match the network "
                          f"(missing: {', '.join(missing) or '-'}; unexpected: {', '.join(unexpected) or '-'})")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise FormatError(f"{where}: state entry {key} is not a tensor")
        if tuple(value.shape) != tuple(want[key].shape):
            raise FormatError(f"{where}: {key} has shape {tuple(value.shape)}, the network needs "
                              f"{tuple(want[key].shape)}")
    net.load_state_dict(state, strict=True)


def _first_line(e):
    """The informative first sentence of an exception message (torch's are long)."""
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    line = lines[0] if lines else type(e).__name__
    for candidate in lines:  # torch's weights-only message names the refused global
        if "GLOBAL" in candidate or candidate.startswith("Unsupported operand"):
            line = candidate
            break
    line = re.sub(r"^\[enforce fail at [^\]]*\]\s*\.?\s*", "", line)  # torch's C++ prefix
    sentence = line.split(". ")[0].rstrip(".")
    return (sentence if len(sentence) >= 40 else line)[:160]
