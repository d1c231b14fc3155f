"""Initial contents of the accelerator's model memories (for bitstreams that hold a model).

The model memories are the program memory, the P weight banks and the P
threshold memories. :func:`model_memories` lists them for a configuration
(name, word width, depth), with the names of the ``.hex`` files that
``tritium compile`` writes (docs/images.md), so the compiler's images, the
generated memories and the bitstream patcher agree on one list.
:class:`MemoryInit` holds raw words for each, one integer per word exactly
as in those ``.hex`` files; :class:`~tritium.hw.accel.Accelerator` takes one
as the ``init`` of its memories (an ASIC flow leaves it out).
"""

from dataclasses import dataclass

from . import isa
from .config import ConfigError


@dataclass(frozen=True)
class ModelMemory:
    """One model memory: its image name (``name + ".hex"``), word width and depth."""

    name: str
    width: int
    depth: int


def model_memories(cfg):
    """The model memories of an :class:`~tritium.hw.accel_config.AccelConfig`, in a fixed order."""
    core = cfg.core
    mems = [ModelMemory("program", isa.INSTR_BITS, cfg.prog_depth)]
    mems += [ModelMemory(f"weights_p{p}", core.weight_width, core.weight_depth)
             for p in range(core.pe)]
    mems += [ModelMemory(f"thresholds_p{p}", core.acc_bits * core.n_thresholds, core.thr_depth)
             for p in range(core.pe)]
    return mems


@dataclass(frozen=True)
class MemoryInit:
    """Raw words of every model memory, keyed by :attr:`ModelMemory.name`.

    Parameters
    ----------
    words : dict of str to tuple of int
        One entry per model memory; shorter lists are padded with zeros to
        the memory's depth (:meth:`padded`).
    """

    words: dict

    def check(self, cfg):
        """Raise :class:`ConfigError` unless the words fit ``cfg``'s model memories."""
        mems = {m.name: m for m in model_memories(cfg)}
        if set(self.words) != set(mems):
            raise ConfigError(f"memory init names {sorted(self.words)} differ from the model "
                              f"memories {sorted(mems)}")
        for name, words in self.words.items():
            mem = mems[name]
            if len(words) > mem.depth:
                raise ConfigError(f"{name}: {len(words)} words, the memory holds {mem.depth}")
            if any(not 0 <= w < 1 << mem.width for w in words):
                raise ConfigError(f"{name}: a word does not fit {mem.width} bits")
        return self

    def padded(self, mem):
        """Words of ``mem`` (a :class:`ModelMemory`) padded with zeros to its depth."""
        words = list(self.words[mem.name])
        return words + [0] * (mem.depth - len(words))
