"""Weight kinds: the integer levels of each kind and its weight planes.

Every weight kind is a sum of weight planes, ``W = sum_e 2**e * T_e``, where
each plane ``T_e`` is a binary (+-1) or ternary (-1/0/+1) plane that the
XNOR / masked-XNOR lanes compute as they compute binary and ternary weights.
A plane is stored as sign bits (1: +1) and, for masked planes, mask bits
(1: non-zero); a sign bit is 0 where its mask bit is 0 (the canonical form).

=========  ==============================  =====================================
kind       integer levels                  planes (exponent, masked)
=========  ==============================  =====================================
binary     -1, +1                          (0, no mask)
ternary    -1, 0, +1                       (0, mask)
pow2-2     0, +-1, +-2                     (0, mask), (1, mask)
pow2-4     0, +-1, +-2, +-4                (0, mask), (1, mask), (2, mask)
intK       odd integers -(2^K-1)..2^K-1    (b, no mask) for b = 0 .. K-1
=========  ==============================  =====================================

Masked kinds have disjoint planes: plane ``e`` holds the weights of magnitude
``2**e`` (``mask = |W| == 2**e``, ``sign = (W > 0) & mask``). Unmasked kinds
have bipolar planes: with ``u = (W + 2**K - 1) / 2``, plane ``b`` holds bit
``b`` of ``u`` and ``W = sum_b 2**b * (2 * u_b - 1)`` (binary is the case K = 1).
"""

from dataclasses import dataclass

import numpy as np

from .errors import ModelError


@dataclass(frozen=True)
class WeightKind:
    """One weight kind: its plane exponents (ascending) and whether planes are masked.

    Invariant: a masked kind's exponents are distinct; an unmasked kind's
    exponents are exactly ``0 .. K-1``.
    """

    name: str
    exponents: tuple
    masked: bool

    @property
    def n_planes(self):
        return len(self.exponents)

    @property
    def max_magnitude(self):
        """The largest ``|W|`` of the kind."""
        if self.masked:
            return 1 << self.exponents[-1]
        return (1 << self.n_planes) - 1

    @property
    def levels(self):
        """The kind's integer levels, ascending."""
        if self.masked:
            magnitudes = [1 << e for e in self.exponents]
            return tuple(sorted([0] + magnitudes + [-m for m in magnitudes]))
        top = self.max_magnitude
        return tuple(range(-top, top + 1, 2))

    def levels_text(self):
        return ", ".join(str(v) for v in self.levels)


def _int_kind(bits):
    return WeightKind(f"int{bits}", tuple(range(bits)), False)


#: The weight kinds, by name; the one table every component reads.
KINDS = {kind.name: kind for kind in (
    WeightKind("binary", (0,), False),
    WeightKind("ternary", (0,), True),
    WeightKind("pow2-2", (0, 1), True),
    WeightKind("pow2-4", (0, 1, 2), True),
    _int_kind(2), _int_kind(3), _int_kind(4),
)}

WEIGHT_KIND_NAMES = tuple(KINDS)


def weight_kind(name):
    """The :class:`WeightKind` called ``name``; a one-line :class:`ModelError` if unknown."""
    kind = KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise ModelError(f"unknown weight kind {name!r} ({', '.join(WEIGHT_KIND_NAMES)})")
    return kind


def max_magnitude(name):
    """The largest weight magnitude of kind ``name``."""
    return weight_kind(name).max_magnitude


def illegal_values(values, name):
    """Boolean array: True where ``values`` are not levels of kind ``name``."""
    return ~np.isin(np.asarray(values), weight_kind(name).levels)


def split_weights(values, name):
    """Integer weights (..., F) -> plane bits ``(sign, mask)``, each uint8 (P, ..., F).

    ``mask`` is None for unmasked kinds. Every value must be a level of the
    kind (see :func:`illegal_values`); the caller reports the ones that are not.
    """
    kind = weight_kind(name)
    values = np.asarray(values, dtype=np.int64)
    if kind.masked:
        mask = np.stack([np.abs(values) == (1 << e) for e in kind.exponents])
        sign = mask & (values > 0)
        return sign.astype(np.uint8), mask.astype(np.uint8)
    u = (values + kind.max_magnitude) >> 1
    sign = np.stack([(u >> b) & 1 for b in kind.exponents])
    return sign.astype(np.uint8), None


def join_planes(sign, mask, name):
    """Plane bits (P, ..., F) -> integer weights (..., F) as int8; the inverse of
    :func:`split_weights`."""
    kind = weight_kind(name)
    sign = np.asarray(sign, dtype=np.int8)
    values = np.zeros(sign.shape[1:], np.int8)
    for p, e in enumerate(kind.exponents):
        plane = 2 * sign[p] - 1
        if kind.masked:
            plane = plane * np.asarray(mask[p], dtype=np.int8)
        values += plane * np.int8(1 << e)
    return values
