"""The planning passes: IR layers -> layer plans, before any configuration check.

Each takes a :class:`~.plan.ModelPlan` and returns ``(plan, changed)``.
"""

from dataclasses import replace

import numpy as np

from ..model.ir import Conv2d, MaxPool2d
from ..model.layout import words_for_lanes
from .errors import CompileError
from .plan import LayerPlan, Unfold


def lower(plan):
    """IR -> one :class:`LayerPlan` per weight layer, a following max-pool fused in.

    With a batch > 1 every layer's RUN goes through all of the batch's images
    (``images``; :func:`stack_images` turns them into rows where it can), so the drain
    latency of each RUN is paid once per batch instead of once per image.
    """
    model, batch = plan.model, plan.batch
    infos = model.check()
    if batch < 1:
        raise CompileError("batch must be at least 1")
    layers = list(zip(model.layers, infos))
    plans, i = [], 0
    while i < len(layers):
        layer, info = layers[i]
        if isinstance(layer, MaxPool2d):
            raise CompileError(f"layer {layer.name}: a max-pool must follow a convolution or "
                               "fully connected layer (the accelerator fuses it into that layer)")
        following = layers[i + 1][0] if i + 1 < len(layers) else None
        pool = following if isinstance(following, MaxPool2d) else None
        if pool is not None:
            _check_pool(pool, info)
            i += 1
        plans.append(_layer_plan(len(plans), layer, info, pool, batch, first=not plans))
        i += 1
    return plan.with_layers(plans)


def _check_pool(pool, info):
    if pool.kernel[0] != pool.kernel[1] or pool.stride != pool.kernel:
        raise CompileError(f"layer {pool.name}: the accelerator pools square windows with "
                           f"stride = kernel, got kernel {pool.kernel} stride {pool.stride}")
    if info.out_act is None:
        raise CompileError(f"layer {pool.name}: pooling raw accumulators is not supported")


def _layer_plan(index, layer, info, pool, images, first):
    in_shape, act = info.in_shape, info.in_act
    pad = act.zero_code_value
    if isinstance(layer, Conv2d):
        height, width, channels = in_shape
        kernel, stride, padding = tuple(layer.kernel), tuple(layer.stride), tuple(layer.padding)
        if layer.pad_value is not None:
            pad = layer.pad_value
    elif len(in_shape) == 1 or first:
        # Flat input: one pixel of F channels (the host packs it densely).
        height, width, channels = 1, 1, int(np.prod(in_shape))
        kernel, stride, padding = (1, 1), (1, 1), (0, 0)
    else:
        # Fully connected over a spatial tensor: a window covering all of it.
        height, width, channels = in_shape
        kernel, stride, padding = (height, width), (1, 1), (0, 0)
    conv_height = (height + 2 * padding[0] - kernel[0]) // stride[0] + 1
    conv_width = (width + 2 * padding[1] - kernel[1]) // stride[1] + 1
    window = 1 if pool is None else pool.kernel[0]
    return LayerPlan(index=index, name=layer.name, layer=layer, in_act=act, out_act=info.out_act,
                     pool=window, pool_name=None if pool is None else pool.name,
                     in_height=height, in_width=width, in_channels=channels, kernel=kernel,
                     stride=stride, padding=padding, pad_value=pad, conv_height=conv_height,
                     conv_width=conv_width, out_height=conv_height // window,
                     out_width=conv_width // window, out_channels=layer.out_channels,
                     images=images)


def unfold_first_layer(plan):
    """Let the host unfold the first convolution's windows when that packs lanes better.

    A first convolution over few channels (RGB or grey pixels) wastes most
    lanes of every word (3 channels in 64 lanes). The host, which writes the
    input anyway, can write each output pixel's whole window (kh*kw*C values,
    padding included) as the channels of one pixel; the RUN becomes a 1x1
    window. The weight rows keep their (ky, kx, channel) order, which is the
    patch order. Done when it reduces the words per row (for ``plan.simd`` lanes).
    """
    first = plan.layers[0]
    if not isinstance(first.layer, Conv2d) or first.kernel == (1, 1):
        return plan, False
    patch = first.kernel[0] * first.kernel[1] * first.in_channels
    if words_for_lanes(patch, plan.simd) >= first.plane_words(plan.simd):
        return plan, False
    unfold = Unfold(kernel=first.kernel, stride=first.stride, padding=first.padding,
                    pad_value=int(first.pad_value), channels=first.in_channels,
                    height=first.in_height, width=first.in_width)
    unfolded = replace(first, unfold=unfold, in_height=first.conv_height,
                       in_width=first.conv_width, in_channels=patch, kernel=(1, 1),
                       stride=(1, 1), padding=(0, 0))
    return plan.with_layers((unfolded,) + plan.layers[1:])


def stack_images(plan):
    """A batch's images as rows where a layer's window allows it.

    A pointwise layer (a 1x1 window, stride 1, no padding: a fully connected layer
    over a flat input, an unfolded first convolution) reads each output row's own
    input row, so the images of its batch can simply be more rows of one tensor
    (``in_height`` x images, in the order the image loop keeps them): no image loop is
    needed, and the first layer's input can be written in bands of those rows
    (:func:`~.schedule.band_input`). Pooling must not straddle two images (``in_height``
    a multiple of the pool). Other layers keep ``images`` for the accelerator's image loop.
    """
    def stacked(p):
        if p.images > 1 and p.pointwise and p.in_height % p.pool == 0:
            return replace(p, in_height=p.images * p.in_height,
                           conv_height=p.images * p.conv_height,
                           out_height=p.images * p.out_height, images=1)
        return p

    return plan.with_layers(stacked(p) for p in plan.layers)
