"""PyTorch training layers whose eval-mode arithmetic is the integer contract.

Drop-in modules
    :class:`QuantLinear`, :class:`QuantConv2d`  where ``nn.Linear`` / ``nn.Conv2d``
        stand, with ``weights`` = ``"binary"`` (BinaryConnect: sign with a
        straight-through estimator, latent weights clipped to [-1, 1] by
        :func:`clip_latent` after each optimiser step), ``"ternary"`` (TWN:
        ``delta = 0.7 * mean|W|``, ``alpha = mean of |W| above delta``, both per
        output channel), ``"pow2-2"`` / ``"pow2-4"`` (levels 0, +-1, +-2 (, +-4) times a scale, by
        :func:`project_to_levels` each step), ``"int2"`` .. ``"int4"`` (DoReFa's
        k-bit weights, :func:`dorefa_weights`) or ``"float"`` (the baseline,
        never exported). ``method="admm"`` trains float weights
        (:mod:`tritium.sw.train.admm`) and quantises every kind by projection.
        ``alpha=True`` adds the XNOR-Net per-output-channel scale
        ``alpha = mean|W|`` to binary weights (ternary weights always carry
        TWN's alpha). ``input_bits=k`` marks a layer that reads unsigned
        k-bit codes (8-bit pixels, or a :class:`QuantAct`'s codes); its input
        scale ``1 / (2**k - 1)`` is applied after the accumulator.
        ``input_bits=None``: the input is bipolar (+-1).
    :class:`SignAct`  BNN sign activation (sign(0) = +1) with the hardtanh
        straight-through estimator (gradient passes where ``|x| <= 1``).
    :class:`QuantAct`  DoReFa's k-bit activation: codes 0 .. 2**k - 1.
    ``nn.BatchNorm1d`` / ``nn.BatchNorm2d`` and ``nn.MaxPool2d`` as they are.

The rule that makes export exact: the convolution or matrix product always
runs on integer-valued tensors (weights: the integer levels Q of their kind;
activations +-1 or codes 0..2**k-1), so its float32 sums are exact integers (|acc| < 2**24).
Every real-valued constant (alpha, input scale, bias, BatchNorm) is applied
after the accumulator. In eval mode :class:`Net` folds them into one
per-channel float32 map ``y = acc * k_c + b_c`` (:meth:`Block.fold`), and the
exporter searches integer thresholds against that very function.
"""

from collections import OrderedDict
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ...hw.errors import TritiumError
from ...hw.weight_kinds import KINDS

#: Exportable weight kinds and their integer levels Q, ascending (the weights are alpha * Q).
WEIGHT_LEVELS = {name: kind.levels for name, kind in KINDS.items()}
WEIGHT_CHOICES = tuple(WEIGHT_LEVELS) + ("float",)
#: How quantised weights are trained: straight-through estimators, or ADMM
#: (:mod:`tritium.sw.train.admm`) on float weights projected at the end.
METHODS = ("ste", "admm")
#: Widths of k-bit hidden activations (:class:`QuantAct`).
ACT_BITS = (2, 3, 4)
#: TWN's threshold factor: delta = TWN_DELTA * mean|W|.
TWN_DELTA = 0.7
#: Most alternating rounds of :func:`project_to_levels` (it stops earlier once Q is stable).
PROJECTION_ROUNDS = 30


def bipolar(x):
    """+1 where ``x >= 0``, else -1 (sign with sign(0) = +1; torch.sign gives 0)."""
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


class _SignHtanhSTE(torch.autograd.Function):
    """Forward: bipolar sign. Backward: the gradient of hardtanh (1 inside [-1, 1])."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return bipolar(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


class _IdentitySTE(torch.autograd.Function):
    """Forward: a precomputed quantised value. Backward: identity (BinaryConnect / TWN)."""

    @staticmethod
    def forward(ctx, w, q):
        return q

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def nearest_level(x, levels):
    """Each element of ``x`` replaced by the nearest of the ascending ``levels``
    (a tie goes to the lower level)."""
    lv = torch.tensor(levels, dtype=x.dtype, device=x.device)
    mids = (lv[1:] + lv[:-1]) / 2
    return lv[torch.bucketize(x.contiguous(), mids)]


def project_to_levels(v, levels, per_channel=True, rounds=PROJECTION_ROUNDS):
    """Projection of ``v`` onto ``{alpha * Q : Q in levels}`` by alternating minimisation.

    Rows are output channels (``per_channel``) or the whole tensor is one row.
    Alternates ``Q = nearest level of V / alpha`` and ``alpha = V^T Q / Q^T Q``,
    each the exact minimiser of ``||V - alpha Q||`` given the other, so the
    error never increases; stops when Q is stable or after ``rounds``.
    ``alpha`` starts at ``max|V| / max|level|`` (an all-zero row keeps
    ``alpha = 0`` with Q the level nearest 0). Returns ``(q, alpha)``: ``q``
    with the shape of ``v``, ``alpha`` (M,) (one value repeated per channel
    when not ``per_channel``); both detached.
    """
    v = v.detach()
    rows = v.reshape(v.shape[0], -1) if per_channel else v.reshape(1, -1)
    top = float(max(abs(level) for level in levels))
    alpha = rows.abs().amax(dim=1, keepdim=True) / top
    q = None
    for _ in range(rounds):
        # alpha == 0 only for an all-zero row: Q = the level nearest 0, a level of every kind.
        new_q = nearest_level(rows / torch.where(alpha > 0, alpha, torch.ones_like(alpha)), levels)
        qq = (new_q * new_q).sum(dim=1, keepdim=True)
        alpha = torch.where(qq > 0, (rows * new_q).sum(dim=1, keepdim=True) / qq.clamp(min=1), alpha)
        if q is not None and torch.equal(new_q, q):
            break
        q = new_q
    alpha = alpha.reshape(-1).expand(v.shape[0]) if not per_channel else alpha.reshape(-1)
    return q.reshape(v.shape), alpha.clone()


def dorefa_weights(w, bits, per_channel=False):
    """DoReFa-Net's k-bit weights as integers: ``Q = 2 round(n (tanh(w) / (2 max|tanh w|) + 1/2)) - n``.

    ``n = 2**bits - 1``; ``Q`` are odd integers in ``[-n, n]`` (DoReFa's
    ``w_q = Q / n``); the maximum is over the layer, or per output channel
    with ``per_channel``. The rounding is straight-through: gradients reach
    ``w`` through tanh and the maximum.
    """
    n = (1 << bits) - 1
    t = torch.tanh(w)
    flat = t.reshape(t.shape[0], -1)
    top = flat.abs().amax(dim=1) if per_channel else flat.abs().amax().expand(t.shape[0])
    top = top.clamp(min=torch.finfo(w.dtype).tiny).reshape((-1,) + (1,) * (w.dim() - 1))
    u = n * (t / (2 * top) + 0.5)
    return 2 * _IdentitySTE.apply(u, torch.round(u.detach())) - n


def quantize_weights(w, kind, alpha, method="ste", per_channel=True):
    """Integer-valued weights and the per-output-channel scale of latent weights ``w``.

    Returns ``(q, scale)``: ``q`` has the shape of ``w`` with integer values
    of ``kind`` (:data:`WEIGHT_LEVELS`), gradients flowing to ``w`` straight
    through; ``scale`` is (M,). ``method="ste"``: binary is BinaryConnect
    (``scale`` = XNOR-Net's ``mean|W|`` with ``alpha``, else ones; ``alpha``
    matters for nothing else), ternary
    TWN, pow2-N :func:`project_to_levels`, intK :func:`dorefa_weights` with
    ``scale = 1 / (2**K - 1)``. ``method="admm"``: every kind is
    :func:`project_to_levels`. ``per_channel=False``: one projection (or
    DoReFa maximum) for the whole layer. Float weights: ``(w, ones)``.
    """
    m = w.shape[0]
    ones = torch.ones(m, dtype=w.dtype, device=w.device)
    if kind == "float":
        return w, ones
    if kind not in WEIGHT_LEVELS:
        raise TritiumError(f"unknown weight kind {kind!r} (choose from {', '.join(WEIGHT_CHOICES)})")
    flat = w.reshape(m, -1)
    mag = flat.abs()
    if kind.startswith("int") and method == "ste":
        bits = int(kind[3:])
        return dorefa_weights(w, bits, per_channel), ones / ((1 << bits) - 1)
    if kind == "binary" and method == "ste":
        q = bipolar(w.detach())
        scale = mag.mean(dim=1) if alpha else ones
    elif kind == "ternary" and method == "ste":
        delta = TWN_DELTA * mag.detach().mean(dim=1, keepdim=True)
        keep = (mag.detach() > delta).to(w.dtype)
        q = (bipolar(flat.detach()) * keep).reshape(w.shape)
        scale = (mag * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
    else:
        q, _ = project_to_levels(w, WEIGHT_LEVELS[kind], per_channel)
        rows = q.reshape(m, -1) if per_channel else q.reshape(1, -1)
        latent = flat if per_channel else flat.reshape(1, -1)
        qq = (rows * rows).sum(dim=1)
        scale = ((latent * rows).sum(dim=1) / qq.clamp(min=1)).expand(m)
    return _IdentitySTE.apply(w, q), scale


class _QuantWeightLayer(nn.Module):
    """Shared parts of :class:`QuantLinear` and :class:`QuantConv2d`."""

    def _setup(self, weights, alpha, input_bits, bias, out_channels, method="ste", per_channel=True):
        if weights not in WEIGHT_CHOICES:
            raise TritiumError(f"unknown weight kind {weights!r} (choose from {', '.join(WEIGHT_CHOICES)})")
        if method not in METHODS:
            raise TritiumError(f"unknown training method {method!r} (choose from {', '.join(METHODS)})")
        if input_bits is not None and not 1 <= int(input_bits) <= 16:
            raise TritiumError(f"input_bits must be 1..16 or None (bipolar), got {input_bits}")
        self.weights = weights
        self.alpha = bool(alpha)
        self.method = method
        self.per_channel = bool(per_channel)
        #: True while ADMM trains the float weights (:mod:`tritium.sw.train.admm`).
        self.relaxed = False
        self.input_bits = None if input_bits is None else int(input_bits)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    @property
    def in_scale(self):
        """The real value of one input code step (1 for bipolar inputs)."""
        return 1.0 if self.input_bits is None else 1.0 / ((1 << self.input_bits) - 1)

    def quantized(self):
        if self.relaxed:
            return quantize_weights(self.weight, "float", self.alpha)
        return quantize_weights(self.weight, self.weights, self.alpha, self.method, self.per_channel)

    def accumulate(self, x):
        """The integer accumulators (as exact float32 values) for integer-valued ``x``."""
        q, _ = self.quantized()
        return self._op(x, q)

    def channel_view(self, v):
        """Reshape a per-channel vector to broadcast over this layer's output."""
        return v.reshape((1, -1) + (1,) * self._spatial_dims)

    def forward(self, x):
        q, scale = self.quantized()
        y = self._op(x, q) * self.channel_view(scale * self.in_scale)
        if self.bias is not None:
            y = y + self.channel_view(self.bias)
        return y

    def clip_latent_(self):
        """BinaryConnect's clip for STE-trained binary, ternary and pow2 latent weights
        (DoReFa's tanh and ADMM's float weights need none)."""
        if self.method == "ste" and self.weights in ("binary", "ternary", "pow2-2", "pow2-4"):
            with torch.no_grad():
                self.weight.clamp_(-1.0, 1.0)

    def extra_repr(self):
        return (f"weights={self.weights}, method={self.method}, alpha={self.alpha}, "
                f"per_channel={self.per_channel}, input_bits={self.input_bits}, bias={self.bias is not None}")


class QuantLinear(_QuantWeightLayer):
    """``nn.Linear`` with binary / ternary / float weights (see the module docstring)."""

    _spatial_dims = 0

    def __init__(self, in_features, out_features, weights="binary", alpha=True,
                 input_bits=None, bias=False, method="ste", per_channel=True):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = nn.Parameter(torch.empty(self.out_features, self.in_features))
        nn.init.uniform_(self.weight, -1 / self.in_features ** 0.5, 1 / self.in_features ** 0.5)
        self._setup(weights, alpha, input_bits, bias, self.out_features, method, per_channel)

    def _op(self, x, q):
        return F.linear(x, q)


class QuantConv2d(_QuantWeightLayer):
    """``nn.Conv2d`` (no groups, no dilation) with quantised weights.

    Padding is explicit: the input is padded with ``pad_value`` (default: -1
    for bipolar inputs, code 0 for k-bit inputs, the values the hardware's
    all-zero code means) before an unpadded convolution.
    """

    _spatial_dims = 2

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=0,
                 weights="binary", alpha=True, input_bits=None, bias=False, pad_value=None,
                 method="ste", per_channel=True):
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = _pair(kernel_size), _pair(stride), _pair(padding)
        self.weight = nn.Parameter(torch.empty(self.out_channels, self.in_channels, *self.kernel_size))
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        nn.init.uniform_(self.weight, -1 / fan_in ** 0.5, 1 / fan_in ** 0.5)
        self._setup(weights, alpha, input_bits, bias, self.out_channels, method, per_channel)
        if pad_value is None:
            pad_value = -1 if self.input_bits is None else 0
        self.pad_value = int(pad_value)

    def _op(self, x, q):
        ph, pw = self.padding
        if ph or pw:
            x = F.pad(x, (pw, pw, ph, ph), value=float(self.pad_value))
        return F.conv2d(x, q, stride=self.stride)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, pad_value={self.pad_value}, "
                + super().extra_repr())


class SignAct(nn.Module):
    """BNN activation: bipolar sign forward, hardtanh straight-through backward."""

    def forward(self, x):
        return _SignHtanhSTE.apply(x)


class QuantAct(nn.Module):
    """DoReFa-Net's k-bit activation: ``code = round(clip(x, 0, 1) * (2**bits - 1))``.

    Outputs the integer codes 0 .. 2**bits - 1 themselves; the next layer reads
    them as unsigned ``bits``-bit inputs (``input_bits=bits``) and applies the
    step ``1 / (2**bits - 1)`` after its accumulator. Backward: the gradient of
    the clip times ``2**bits - 1`` (straight through the rounding).
    """

    def __init__(self, bits):
        super().__init__()
        if int(bits) not in ACT_BITS:
            raise TritiumError(f"activation bits must be one of {', '.join(map(str, ACT_BITS))}, got {bits}")
        self.bits = int(bits)

    @property
    def n_codes(self):
        return 1 << self.bits

    def forward(self, x):
        u = x.clamp(0.0, 1.0) * float(self.n_codes - 1)
        return _IdentitySTE.apply(u, torch.round(u.detach()))

    def extra_repr(self):
        return f"bits={self.bits}"


WEIGHT_LAYERS = (QuantLinear, QuantConv2d)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d)
_ACTS = {SignAct: "sign", nn.ReLU: "relu", QuantAct: "uint"}


def clip_latent(model):
    """Clip every quantised layer's latent weights to [-1, 1] (BinaryConnect)."""
    for module in model.modules():
        if isinstance(module, WEIGHT_LAYERS):
            module.clip_latent_()


@dataclass
class Block:
    """One weight layer with what follows it up to the next weight layer.

    ``flatten``: a ``nn.Flatten`` precedes the layer; ``bn``: its BatchNorm or
    None; ``act``: ``"sign"``, ``"relu"``, ``"uintK"`` (:class:`QuantAct`) or
    None (raw output, last block only), ``act_module`` the module;
    ``pools``: (name, ``nn.MaxPool2d``) pairs after the activation.
    """

    name: str
    layer: nn.Module
    flatten: bool = False
    bn: nn.Module | None = None
    bn_name: str | None = None
    act: str | None = None
    act_module: nn.Module | None = None
    pools: list = field(default_factory=list)

    def fold(self):
        """Per-channel float32 ``(k, b)`` with ``eval output = acc * k + b``.

        ``k = scale * in_scale * gamma / sqrt(var + eps)`` and
        ``b = (bias - mean) * gamma / sqrt(var + eps) + beta``, computed in
        float64 and rounded once to float32.
        """
        layer = self.layer
        with torch.no_grad():
            _, scale = layer.quantized()
            k = scale.double() * layer.in_scale
            b = (torch.zeros_like(k) if layer.bias is None else layer.bias.double())
            if self.bn is not None:
                bn = self.bn
                m = k.shape[0]
                gamma = bn.weight.double() if bn.affine else torch.ones(m, dtype=torch.float64)
                beta = bn.bias.double() if bn.affine else torch.zeros(m, dtype=torch.float64)
                s = gamma / torch.sqrt(bn.running_var.double() + bn.eps)
                k = k * s
                b = (b - bn.running_mean.double()) * s + beta
        return k.float(), b.float()

    def epilogue(self, acc, folded=None):
        """``acc * k + b`` (two separately rounded float32 ops) per channel."""
        k, b = self.fold() if folded is None else folded
        view = self.layer.channel_view
        return acc * view(k) + view(b)


    def activate(self, y):
        """The eval-mode activation of the folded map ``y`` (identity without one)."""
        if self.act == "sign":
            return bipolar(y)
        if self.act == "relu":
            return F.relu(y)
        return y if self.act is None else self.act_module(y)


def parse_blocks(model):
    """Group a sequential model into :class:`Block` s, refusing what cannot run.

    Raises :class:`TritiumError` naming the module and the reason.
    """
    blocks, pending_flatten = [], False
    for name, module in model.named_children():
        last = blocks[-1] if blocks else None
        if isinstance(module, WEIGHT_LAYERS):
            if last is not None and last.act is None:
                raise TritiumError(f"layer {name}: follows {last.name}, which has no activation; "
                                   "only the last weight layer may output raw accumulators")
            blocks.append(Block(name, module, flatten=pending_flatten))
            pending_flatten = False
        elif isinstance(module, nn.Flatten):
            if module.start_dim != 1 or module.end_dim != -1:
                raise TritiumError(f"layer {name}: only Flatten(start_dim=1, end_dim=-1) is supported")
            pending_flatten = True
        elif last is None:
            raise TritiumError(f"layer {name}: {type(module).__name__} before the first weight layer "
                               "is not supported (the input goes straight to a weight layer)")
        elif isinstance(module, _BN):
            if last.bn is not None or last.act is not None or last.pools:
                raise TritiumError(f"layer {name}: BatchNorm must directly follow a weight layer")
            if not module.track_running_stats or module.running_mean is None:
                raise TritiumError(f"layer {name}: BatchNorm without running statistics cannot be folded")
            last.bn, last.bn_name = module, name
        elif type(module) in _ACTS:
            if last.act is not None or last.pools:
                raise TritiumError(f"layer {name}: a second activation after {last.name}")
            last.act = _ACTS[type(module)] + (f"{module.bits}" if isinstance(module, QuantAct) else "")
            last.act_module = module
        elif isinstance(module, nn.MaxPool2d):
            if last.act is None:
                raise TritiumError(f"layer {name}: max-pool before the activation is not supported "
                                   "(pooling equals OR or max on the hardware only after the activation)")
            if _pair(module.padding) != (0, 0) or _pair(module.dilation) != (1, 1) or module.ceil_mode:
                raise TritiumError(f"layer {name}: max-pool with padding, dilation or ceil_mode "
                                   "is not supported")
            last.pools.append((name, module))
        else:
            raise TritiumError(f"layer {name}: unsupported layer type {type(module).__name__} "
                               "(supported: QuantLinear, QuantConv2d, BatchNorm1d/2d, SignAct, "
                               "QuantAct, ReLU, MaxPool2d, Flatten)")
    if not blocks:
        raise TritiumError("the model has no weight layers (QuantLinear / QuantConv2d)")
    if pending_flatten:
        raise TritiumError("the model ends in a Flatten")
    if blocks[-1].pools:
        raise TritiumError(f"layer {blocks[-1].pools[-1][0]}: the model must end in a weight layer")
    return blocks


def _pair(v):
    return tuple(int(u) for u in v) if isinstance(v, (tuple, list)) else (int(v), int(v))


class Net(nn.Sequential):
    """A sequential network of the modules above.

    Training mode runs the modules one by one (BatchNorm on batch statistics).
    Eval mode runs block by block: exact integer accumulators, then the folded
    per-channel map ``acc * k + b`` (:meth:`Block.fold`), then the activation
    and pooling. The logits are the last block's folded map, exactly what the
    exported model's ``output_affine`` gives from the integer accumulators.

    ``input_shape`` is (H, W, C); ``input_quant`` how uint8 pixels become the
    input values (:mod:`tritium.sw.train.inputs`); ``config`` the builder arguments
    (saved in checkpoints).
    """

    def __init__(self, modules, input_shape, input_quant, config=None):
        super().__init__(OrderedDict(modules))
        self.input_shape = tuple(int(s) for s in input_shape)
        self.input_quant = dict(input_quant)
        self.config = dict(config or {})

    def forward(self, x):
        if self.training:
            return super().forward(x)
        return self.run_blocks(x)[-1]

    @torch.no_grad()
    def run_blocks(self, x, accumulators=False):
        """Eval-mode outputs of every block (or the accumulators with ``accumulators``)."""
        outs = []
        for block in parse_blocks(self):
            if block.flatten:
                x = x.flatten(1)
            acc = block.layer.accumulate(x)
            if accumulators:
                outs.append(acc)
            y = block.activate(block.epilogue(acc))
            for _, pool in block.pools:
                y = pool(y)
            if not accumulators:
                outs.append(y)
            x = y
        return outs
