"""ADMM training of quantised weights (Leng, Dou, Li, Zhu, Jin, AAAI 2018).

"Extremely Low Bit Neural Network: Squeeze the Last Bit Out with ADMM"
trains float weights ``W`` under the constraint ``W in C = {alpha * Q}``
(``Q`` the integer levels of the layer's kind) by splitting it off into an
auxiliary ``G in C`` with a scaled dual ``lambda``. Each iteration (one
mini-batch):

1. ``W``-step: decrease ``loss(W) + rho / 2 * sum ||W - G + lambda||^2`` by one
   extragradient step: a predictor ``W' = W - lr * grad(W)``, then the
   corrector ``W = W - lr * grad(W')`` (the gradient at the predicted point).
   BatchNorm and bias parameters take the same two steps without a penalty.
2. ``G``-step: ``G = alpha * Q``, the projection of ``W + lambda`` onto ``C``
   (:func:`~tritium.sw.train.layers.project_to_levels`: alternating
   ``alpha = V^T Q / Q^T Q`` and ``Q = nearest level of V / alpha``, per
   output channel or per layer).
3. dual step: ``lambda += W - G``.

Training starts from a float model of the same topology (the layers run
``relaxed``: float weights, the network's own activations), either trained
here first (:func:`pretrain_float`) or loaded from a float checkpoint. At the
end every weight layer's ``W`` is replaced by ``G``, the layers quantise
again (``quantized()`` projects ``W``, which is already ``alpha * Q``), and
the BatchNorm statistics are re-estimated on the training split with the
quantised weights.
"""

import math
from dataclasses import dataclass

from ...hw.errors import TritiumError
from ..util.console import progress
from .layers import WEIGHT_LAYERS, WEIGHT_LEVELS, project_to_levels
from .train import TrainConfig, epoch_batches, train_net, training_split


#: Largest ``lr * rho`` (base lr): the penalty's own gradient step shrinks
#: ``W - G + lambda`` by the factor ``1 - lr * rho``, which stays in [0.9, 1).
#: Each projection shortens its input (``||alpha Q|| <= ||V||``), so the penalty
#: shrinks W, and BatchNorm makes the loss blind to that scale: the loss
#: gradient grows as ``1 / ||W||``. A larger ``lr * rho`` lets this feed back
#: until training diverges (on digits: 0.5 diverged, 0.2 spiked the loss of
#: binary networks); the limit and the cosine decay of lr keep it stable.
RHO_STEP_LIMIT = 0.1


@dataclass(frozen=True)
class AdmmConfig:
    """ADMM hyper-parameters."""

    epochs: int = 10
    seed: int = 0
    batch_size: int = 64
    #: Step size of the extragradient predictor and corrector (plain gradient steps);
    #: it follows a cosine from lr down to lr * final_lr_factor over the run.
    lr: float = 0.05
    final_lr_factor: float = 0.01
    #: Penalty weight rho of ``||W - G + lambda||^2``.
    rho: float = 1.0
    #: rho is multiplied by this after every epoch (1: constant), up to ``RHO_STEP_LIMIT / lr``.
    rho_growth: float = 1.5
    #: torch threads while training (results are reproducible for a fixed count).
    threads: int = 1


def admm_layers(net):
    """The network's weight layers, which must all have quantised kinds and method "admm"."""
    layers = [m for m in net.modules() if isinstance(m, WEIGHT_LAYERS)]
    for layer in layers:
        if layer.weights not in WEIGHT_LEVELS or layer.method != "admm":
            raise TritiumError(f"ADMM trains quantised layers built with method 'admm'; a layer has "
                               f"{layer.weights} weights and method {layer.method!r}")
    return layers


def set_relaxed(net, relaxed):
    """Run every weight layer on its float weights (``True``) or quantised (``False``)."""
    for layer in admm_layers(net):
        layer.relaxed = bool(relaxed)


def project(layer, v):
    """``alpha * Q``: the projection of ``v`` onto the layer's constraint set."""
    q, alpha = project_to_levels(v, WEIGHT_LEVELS[layer.weights], layer.per_channel)
    return q * alpha.reshape((-1,) + (1,) * (v.dim() - 1))


class AdmmState:
    """The auxiliary ``G`` and scaled dual ``lambda`` of every weight layer of ``net``."""

    def __init__(self, net, rho):
        import torch

        self.net = net
        self.layers = admm_layers(net)
        self.rho = float(rho)
        with torch.no_grad():
            self.g = [project(layer, layer.weight.detach()) for layer in self.layers]
            self.lam = [torch.zeros_like(layer.weight) for layer in self.layers]

    def penalty(self):
        """``rho / 2 * sum ||W - G + lambda||^2`` (differentiable in W)."""
        total = 0.0
        for layer, g, lam in zip(self.layers, self.g, self.lam):
            total = total + (layer.weight - g + lam).pow(2).sum()
        return 0.5 * self.rho * total

    def gap(self):
        """The constraint gap ``sqrt(sum ||W - G||^2)``."""
        return float(sum(float((layer.weight.detach() - g).pow(2).sum())
                         for layer, g in zip(self.layers, self.g)) ** 0.5)

    def extragradient_step(self, loss_fn, lr):
        """One predictor-corrector step on every trainable parameter of the net; returns the loss."""
        import torch

        params = [p for p in self.net.parameters() if p.requires_grad]
        start = [p.detach().clone() for p in params]
        loss = loss_fn()
        grads = torch.autograd.grad(loss + self.penalty(), params, allow_unused=True)
        with torch.no_grad():
            for p, g in zip(params, grads):
                if g is not None:
                    p.sub_(lr * g)
        grads = torch.autograd.grad(loss_fn() + self.penalty(), params, allow_unused=True)
        with torch.no_grad():
            for p, p0, g in zip(params, start, grads):
                p.copy_(p0 if g is None else p0 - lr * g)
        return float(loss.detach())

    def update_auxiliary(self):
        """The G-step (projection of ``W + lambda``) then the dual step ``lambda += W - G``."""
        import torch

        with torch.no_grad():
            for i, layer in enumerate(self.layers):
                w = layer.weight.detach()
                self.g[i] = project(layer, w + self.lam[i])
                self.lam[i] += w - self.g[i]

    def finish(self):
        """Set every ``W`` to its ``G`` and quantise the layers again."""
        import torch

        with torch.no_grad():
            for layer, g in zip(self.layers, self.g):
                layer.weight.copy_(g)
                layer.relaxed = False


def pretrain_float(net, dataset, config=TrainConfig(), show_progress=True, log=None):
    """Train ``net``'s float weights (layers relaxed, Adam, :func:`train_net`) as ADMM's start."""
    set_relaxed(net, True)
    try:
        return train_net(net, dataset, config, show_progress, log)
    finally:
        set_relaxed(net, False)


def train_admm(net, dataset, config=AdmmConfig(), show_progress=True, log=None):
    """ADMM-train ``net`` in place (from its current float weights); returns the history.

    History: per epoch the mean loss, the constraint gap ``||W - G||`` after
    the epoch, and rho. The net ends quantised, in eval mode.
    """
    import torch

    if (config.epochs < 1 or config.batch_size < 1 or not config.lr > 0 or not config.rho > 0
            or not config.rho_growth >= 1 or config.threads < 1):
        raise TritiumError("ADMM needs epochs, batch size and threads >= 1, lr and rho > 0 and "
                           "rho growth >= 1")
    x, y = training_split(net, dataset)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    set_relaxed(net, True)
    try:
        state = AdmmState(net, config.rho)
        history = _admm_epochs(state, x, y, config, show_progress, log)
        state.finish()
        recalibrate_batchnorm(net, x, config.batch_size)
    finally:
        set_relaxed(net, False)
        torch.set_num_threads(threads)
    net.eval()
    return history


def _admm_epochs(state, x, y, config, show_progress, log):
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(config.seed)
    history = {"loss": [], "gap": [], "rho": []}
    state.net.train()
    per_epoch = (len(y) + config.batch_size - 1) // config.batch_size
    steps, step = config.epochs * per_epoch, 0
    for epoch in range(config.epochs):
        total = 0.0
        bar = progress(epoch_batches(len(y), config.batch_size, gen), desc=f"admm {epoch + 1}/{config.epochs}",
                       enabled=show_progress, unit="batch")
        for idx in bar:
            lr = config.lr * (config.final_lr_factor
                              + (1 - config.final_lr_factor) * (1 + math.cos(math.pi * step / steps)) / 2)
            total += state.extragradient_step(lambda: F.cross_entropy(state.net(x[idx]), y[idx]),
                                              lr) * len(idx)
            step += 1
            state.update_auxiliary()
        history["loss"].append(total / len(y))
        history["gap"].append(state.gap())
        history["rho"].append(state.rho)
        if log:
            log(f"admm epoch {epoch + 1}/{config.epochs}: loss {history['loss'][-1]:.4f}, "
                f"||W - G|| {history['gap'][-1]:.4g}, rho {state.rho:.4g}")
        state.rho = min(state.rho * config.rho_growth, max(config.rho, RHO_STEP_LIMIT / config.lr))
    return history


def recalibrate_batchnorm(net, x, batch_size):
    """Re-estimate every BatchNorm's running statistics on ``x`` (cumulative average)."""
    import torch
    from torch import nn

    norms = [m for m in net.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    net.train()
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                net(x[i:i + batch_size])
    finally:
        for m, momentum in zip(norms, saved):
            m.momentum = momentum
        net.eval()
