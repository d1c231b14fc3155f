"""Training on the embedded data sets, and the PyTorch-vs-integer check.

:func:`train_net` trains a :class:`~tritium.sw.train.layers.Net` with Adam and
cross-entropy on the fixed training split of :mod:`tritium.sw.train.data`, clipping
latent weights after every step (BinaryConnect). It is deterministic for a
seed: :func:`make_net` draws the initial weights from a seeded generator,
the batch order comes from another one, nothing else is random, and training
runs on a fixed number of torch threads (1 by default: the order of float
reductions, and so the result, depends on the thread count).

:func:`verify` runs the held-out images through PyTorch (eval mode) and through
the exported integer model (:mod:`tritium.sw.model.reference`) and reports both
accuracies, their agreement, and whether the last layer's accumulators map
exactly onto PyTorch's logits.
"""

from dataclasses import dataclass

import numpy as np

from ...hw.errors import TritiumError
from ..model import reference
from ..util.console import progress
from .data import load_dataset
from .inputs import quantize_input, to_torch
from .layers import clip_latent
from .models import build_net


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters (the defaults are what docs/training.md measured)."""

    epochs: int = 10
    seed: int = 0
    batch_size: int = 64
    lr: float = 0.01
    #: The learning rate follows a cosine from lr down to lr * final_lr_factor.
    final_lr_factor: float = 0.01
    #: torch threads while training (results are reproducible for a fixed count).
    threads: int = 1


def make_net(arch, dataset, weights, seed=0, alpha=True, **options):
    """Build the network for ``arch`` sized for ``dataset``'s images and classes.

    ``options`` go to :func:`~tritium.sw.train.models.build_net` (``method``,
    ``act_bits``, ``per_channel``). The initial weights are drawn from a generator seeded with ``seed`` (the
    global torch generator is left as it was).
    """
    import torch

    data = load_dataset(dataset)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_net(arch, data.image_shape, data.n_classes, weights=weights, alpha=alpha, **options)


def train_net(net, dataset, config=TrainConfig(), show_progress=True, log=None):
    """Train ``net`` in place on ``dataset``'s training split; returns per-epoch losses."""
    import torch

    if config.epochs < 0 or config.batch_size < 1 or not config.lr > 0 or config.threads < 1:
        raise TritiumError("epochs must be >= 0, batch size and threads >= 1 and the learning rate > 0")
    x, y = training_split(net, dataset)
    gen = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    steps = max(1, config.epochs * ((len(y) + config.batch_size - 1) // config.batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=config.lr * config.final_lr_factor)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        losses = _epochs(net, x, y, gen, opt, sched, config, show_progress, log)
    finally:
        torch.set_num_threads(threads)
    net.eval()
    return losses


def training_split(net, dataset):
    """``dataset``'s training split as ``(input values (N, C, H, W), labels)`` tensors for ``net``."""
    import torch

    data = load_dataset(dataset)
    if tuple(data.image_shape) != tuple(net.input_shape):
        raise TritiumError(f"the network takes {tuple(net.input_shape)} inputs but {dataset} "
                           f"images are {tuple(data.image_shape)}")
    x = to_torch(quantize_input(net.input_quant, data.x_train))
    return x, torch.from_numpy(data.y_train.astype(np.int64))


def epoch_batches(n, batch_size, gen):
    """One epoch's mini-batches: index tensors of a random permutation of ``range(n)``."""
    import torch

    order = torch.randperm(n, generator=gen)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def _epochs(net, x, y, gen, opt, sched, config, show_progress, log):
    import torch.nn.functional as F

    losses = []
    net.train()
    for epoch in range(config.epochs):
        total = 0.0
        bar = progress(epoch_batches(len(y), config.batch_size, gen), desc=f"epoch {epoch + 1}/{config.epochs}",
                       enabled=show_progress, unit="batch")
        for idx in bar:
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            clip_latent(net)
            total += loss.item() * len(idx)
        losses.append(total / len(y))
        if log:
            log(f"epoch {epoch + 1}/{config.epochs}: loss {losses[-1]:.4f}")
    return losses


def torch_logits(net, values, batch=512):
    """Eval-mode logits (float32 numpy) for integer input values (N, H, W, C)."""
    import torch

    net.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(values), batch):
            outs.append(net(to_torch(values[i:i + batch])).numpy())
    return np.concatenate(outs)


def torch_accumulators(net, values, batch=512):
    """Eval-mode last-layer accumulators (int64 numpy)."""
    outs = []
    for i in range(0, len(values), batch):
        outs.append(net.run_blocks(to_torch(values[i:i + batch]), accumulators=True)[-1].numpy())
    return np.rint(np.concatenate(outs)).astype(np.int64)


def verify(net, model, dataset):
    """Compare PyTorch eval with the integer model on ``dataset``'s held-out images."""
    data = load_dataset(dataset)
    if tuple(data.image_shape) != tuple(model.input_shape):
        raise TritiumError(f"the model takes {tuple(model.input_shape)} inputs but {dataset} "
                           f"images are {tuple(data.image_shape)}")
    values = quantize_input(net.input_quant, data.x_test)
    logits = torch_logits(net, values)
    torch_pred = logits.argmax(axis=1)
    acc_int = reference.run(model, values, batch=256)
    int_pred = reference.predict(model, values, batch=256)
    exact = bool(np.array_equal(reference.output_logits(model, acc_int), logits))
    return {
        "accuracy": float((torch_pred == data.y_test).mean()),
        "accuracy_integer": float((int_pred == data.y_test).mean()),
        "agreement": float((torch_pred == int_pred).mean()),
        "logits_exact": exact,
        "held_out_images": int(len(values)),
    }


def evaluate(net, dataset):
    """Held-out accuracy of a PyTorch network alone (e.g. the float baseline)."""
    data = load_dataset(dataset)
    logits = torch_logits(net, quantize_input(net.input_quant, data.x_test))
    return float((logits.argmax(axis=1) == data.y_test).mean())
