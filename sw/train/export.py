"""Export: a trained :class:`~tritium.sw.train.layers.Net` -> the integer IR.

Each block (weight layer, BatchNorm, sign, pooling) becomes one IR weight
layer (plus IR max-pools). In eval mode the network computes, per output
channel ``c``, ``y = f_c(acc) = acc * k_c + b_c`` in float32 on the exact
integer accumulator ``acc`` (:meth:`~tritium.sw.train.layers.Block.fold`); the
sign activation outputs +1 where ``y >= 0``, a k-bit activation
(:class:`~tritium.sw.train.layers.QuantAct`) the code
``round(clip(y, 0, 1) * (2**k - 1))``. ``f_c`` is a composition of
correctly rounded float operations, each monotone, so it is monotone in
``acc``:

* non-decreasing (``f_c(lo) < f_c(hi)``): the threshold is the smallest
  integer ``T`` in ``[lo, hi + 1]`` with ``f_c(T) >= 0`` (``hi + 1``: never);
* non-increasing (negative gamma or alpha): the weight row is negated, the
  hardware's accumulator becomes ``-acc`` and the threshold is found on
  ``a -> f_c(-a)``;
* constant (gamma == 0, a row of zero ternary weights): ``T = lo`` (always
  +1) or ``hi + 1`` (never).

``T`` is found by a binary search, vectorised over channels, that evaluates
PyTorch's own ``f_c`` in float32, so the threshold can never disagree with
PyTorch on any reachable accumulator. k-bit outputs get ``2**k - 1``
thresholds per channel, one per code step, found the same way
(:func:`channel_thresholds`). The last layer keeps raw accumulators;
``meta["output_affine"]`` holds the float32 ``k`` and ``b`` that map them onto
PyTorch's logits exactly (see docs/ir.md, "Metadata written by the exporter").
"""

import numpy as np

from ...hw.errors import TritiumError
from ..model.ir import ActType, Conv2d, Dense, IntModel, MaxPool2d, accumulator_range
from .inputs import check_spec, input_act
from .layers import WEIGHT_LEVELS, QuantConv2d, parse_blocks

#: Largest accumulator magnitude whose float32 sums stay exact.
FLOAT32_EXACT = 1 << 24


class ExportError(TritiumError):
    """The network cannot run on the hardware; the message names the layer."""


def export_net(net, input_shape=None, input_quant=None, meta=None):
    """Export ``net`` to an :class:`~tritium.sw.model.ir.IntModel` (checked).

    ``input_shape`` (H, W, C) and ``input_quant`` default to the net's own.
    Raises :class:`ExportError` for anything the hardware cannot run.
    """
    import torch

    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            model = _export(net, input_shape, input_quant, meta)
    finally:
        net.train(was_training)
    model.check()
    return model


def _export(net, input_shape, input_quant, meta):
    spec = check_spec(input_quant or getattr(net, "input_quant", None))
    shape = tuple(int(s) for s in (input_shape or getattr(net, "input_shape", ())))
    if len(shape) != 3:
        raise ExportError(f"input shape must be (H, W, C), got {shape}")
    in_shape, act = shape, input_act(spec)
    blocks = parse_blocks(net)
    layers, negated = [], {}
    spatial_flat = None  # (H, W, C) of a spatial tensor that torch flattened in C, H, W order
    for index, block in enumerate(blocks):
        last = index == len(blocks) - 1
        layer, name = block.layer, block.name
        _check_block(block, act, last)
        if block.flatten and len(shape) == 3:
            spatial_flat, shape = shape, (int(np.prod(shape)),)
        q = layer.quantized()[0].detach().numpy().astype(np.int8)
        if isinstance(layer, QuantConv2d):
            if len(shape) != 3 or shape[2] != layer.in_channels:
                raise ExportError(f"layer {name}: expects (H, W, {layer.in_channels}) input, "
                                  f"gets {shape}")
            q = q.transpose(0, 2, 3, 1)                       # (M, kh, kw, C): the IR's order
            fan_in = int(np.prod(q.shape[1:]))
        else:
            if len(shape) != 1 or shape[0] != layer.in_features:
                raise ExportError(f"layer {name}: expects {layer.in_features} inputs, gets shape {shape}"
                                  + ("" if len(shape) == 1 else " (no Flatten before it)"))
            if spatial_flat is not None:                      # torch C,H,W -> IR H,W,C columns
                h, w, c = spatial_flat
                q = q.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(q.shape[0], -1)
            fan_in = q.shape[1]
        lo, hi = accumulator_range(fan_in, act, layer.weights)
        if hi >= FLOAT32_EXACT:
            raise ExportError(f"layer {name}: accumulators up to {hi} are not exact in float32 "
                              f"(limit {FLOAT32_EXACT - 1})")
        folded = block.fold()
        if not all(_all_finite(t) for t in folded):
            raise ExportError(f"layer {name}: folded scale or offset is not finite "
                              "(check BatchNorm running_var >= 0 and the weights)")
        if last:
            thresholds, out_act, affine = None, None, folded
        else:
            thresholds, flip = channel_thresholds(block, folded, lo, hi)
            q[flip] = -q[flip]
            negated[name] = int(flip.sum())
            out_act = ActType.parse("bipolar" if block.act == "sign" else block.act)
        if isinstance(layer, QuantConv2d):
            ir_layer = Conv2d.from_values(name, q, layer.weights, stride=layer.stride,
                                          padding=layer.padding, pad_value=layer.pad_value,
                                          thresholds=thresholds, out_act=out_act)
            shape = ir_layer.output_hw(shape[0], shape[1]) + (layer.out_channels,)
            if min(shape[:2]) <= 0:
                raise ExportError(f"layer {name}: the kernel does not fit the padded input")
        else:
            ir_layer = Dense.from_values(name, q, layer.weights, thresholds=thresholds, out_act=out_act)
            shape, spatial_flat = (layer.out_features,), None
        layers.append(ir_layer)
        act = out_act
        for pool_name, pool in block.pools:
            ir_pool = MaxPool2d(pool_name, pool.kernel_size, pool.stride or pool.kernel_size)
            if len(shape) != 3:
                raise ExportError(f"layer {pool_name}: max-pool needs an (H, W, C) input, gets {shape}")
            shape = ir_pool.output_hw(shape[0], shape[1]) + (shape[2],)
            if min(shape[:2]) <= 0:
                raise ExportError(f"layer {pool_name}: the pool window is larger than its input")
            layers.append(ir_pool)
    out_meta = {
        "producer": "tritium export",
        "input_quant": spec,
        "classes": int(layers[-1].out_channels),
        "output_affine": {"dtype": "float32", "scale": [float(v) for v in affine[0].numpy()],
                          "offset": [float(v) for v in affine[1].numpy()]},
        "negated_rows": negated,
        "source": dict(getattr(net, "config", {}) or {}),
    }
    out_meta.update(meta or {})
    return IntModel(in_shape, input_act(spec), layers, meta=out_meta)


def _all_finite(t):
    import torch
    return bool(torch.isfinite(t).all())


def _check_block(block, act, last):
    layer, name = block.layer, block.name
    if layer.weights == "float":
        raise ExportError(f"layer {name}: float weights; the hardware runs quantised weights "
                          f"({', '.join(WEIGHT_LEVELS)})")
    if block.act is not None and block.act != "sign" and not block.act.startswith("uint"):
        raise ExportError(f"layer {name}: {block.act} activation; the hardware thresholds to a sign "
                          "(SignAct) or to k-bit codes (QuantAct)")
    if last and block.act is not None:
        raise ExportError(f"layer {name}: the last layer must output raw accumulators (no activation)")
    expected = None if act.kind == "bipolar" else act.bits
    if layer.input_bits != expected:
        got = "bipolar" if layer.input_bits is None else f"uint{layer.input_bits}"
        raise ExportError(f"layer {name}: built for {got} inputs but receives {act} values")
    modules = [("weight", layer.weight), ("bias", layer.bias)]
    if block.bn is not None:
        bn = block.bn
        modules += [("BatchNorm weight", bn.weight), ("BatchNorm bias", bn.bias),
                    ("BatchNorm running_mean", bn.running_mean),
                    ("BatchNorm running_var", bn.running_var)]
    for what, tensor in modules:
        if tensor is not None and not _all_finite(tensor):
            raise ExportError(f"layer {name}: {what} holds non-finite values (NaN or inf)")
    if block.bn is not None and bool((block.bn.running_var < 0).any()):
        raise ExportError(f"layer {block.bn_name}: negative running_var")


def channel_thresholds(block, folded, lo, hi):
    """Integer thresholds (M, T) and the rows to negate, by exact search.

    ``level(y)`` is the block's activation as a count: ``[y >= 0]`` for the
    sign (T = 1), the code of :class:`~tritium.sw.train.layers.QuantAct` for
    k-bit outputs (T = 2**k - 1). Both are non-decreasing in ``y``, and
    ``g(a) = f(a)`` (``f(-a)`` on negated rows) is non-decreasing in ``a``, so
    ``T_i = min {a in [lo, hi + 1] : level(g(a)) >= i}`` is non-decreasing in
    ``i`` and ``sum_i [acc' >= T_i]`` equals PyTorch's ``level(f(acc))`` for
    every integer ``acc`` in ``[lo, hi]``. Each step evaluates the block's own
    float32 epilogue and activation.
    """
    import torch

    m = int(folded[0].shape[0])
    n = 1 if block.act == "sign" else block.act_module.n_codes - 1
    view = (1,) * block.layer._spatial_dims

    def f(acc):                                           # acc (n, m) -> folded map (n, m)
        a = torch.from_numpy(acc.astype(np.float32)).reshape((n, m) + view)
        return block.epilogue(a, folded).reshape(n, m)

    def level(acc):
        y = f(acc)
        return (y >= 0).to(torch.int64).numpy() if n == 1 else block.activate(y).numpy()

    f_lo, f_hi = f(np.full((n, m), lo)).numpy()[0], f(np.full((n, m), hi)).numpy()[0]
    if not (np.isfinite(f_lo).all() and np.isfinite(f_hi).all()):
        raise ExportError(f"layer {block.name}: the activation map is not finite over the "
                          f"accumulator range [{lo}, {hi}]")
    flip = f_lo > f_hi
    sign = np.where(flip, -1, 1)[None, :]
    want = np.arange(1, n + 1)[:, None]
    left, right = np.full((n, m), lo, np.int64), np.full((n, m), hi + 1, np.int64)
    while np.any(left < right):
        mid = (left + right) // 2
        ok = level(sign * mid) >= want
        active = left < right
        right = np.where(active & ok, mid, right)
        left = np.where(active & ~ok, mid + 1, left)
    return left.T.copy(), flip
