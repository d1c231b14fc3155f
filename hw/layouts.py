"""Data layouts of the PE array's streams: the one definition of every field.

The future controller, the compiler's encoder and the testbenches pack and
unpack these layouts (``layout.const({...}).as_value().value`` gives the raw
integer), so field positions are defined once, here.

A *command* travels with every input word. Its fields (see docs/hardware.md):

``op``
    Lane operation (:data:`~tritium.hw.config.OP_XNOR`, ``OP_MXNOR``,
    ``OP_AND_S``, ``OP_AND_M``); ignored by a core that implements one op only.
``last``
    Emit the result after this word (one output beat per ``last``) and clear
    the accumulators: the next word starts a new accumulation.
``shl``
    Horner step: double the accumulators (and the shared counter) before
    adding this word. Bit-serial planes are sent most significant first.
``neg``
    Subtract this word's contribution instead of adding it.
``dbl``
    Double this word's PE contribution (``popcount << 1``).
``count``
    Also accumulate ``popcount(x)`` in the shared input counter.
``w_addr``
    Weight-bank word read by every PE for this input word.
``t_addr``
    Threshold set used for the result (read with ``last``).
"""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Out


#: Memory attribute: a read of the word being written in the same cycle is
#: undefined (loads happen while the array is idle), so synthesis adds no
#: read/write collision bypass logic around the block RAMs.
NO_RW_CHECK = {"no_rw_check": 1}


def command_layout(cfg):
    return data.StructLayout({
        "op": unsigned(2),
        "last": unsigned(1),
        "shl": unsigned(1),
        "neg": unsigned(1),
        "dbl": unsigned(1),
        "count": unsigned(1),
        "w_addr": unsigned(cfg.w_addr_bits),
        "t_addr": unsigned(cfg.t_addr_bits),
    })


def input_layout(cfg):
    """One input beat: the broadcast word ``x`` (S lanes, lane i = bit i) and its command."""
    return data.StructLayout({"x": unsigned(cfg.simd), "cmd": command_layout(cfg)})


def result_layout(cfg):
    """A PE array result: P signed results D and the threshold set to apply (with
    ``cfg.addr_reg`` one register copy of its address per threshold memory, else one)."""
    return data.StructLayout({
        "d": data.ArrayLayout(signed(cfg.acc_bits), cfg.pe),
        "t_addr": data.ArrayLayout(unsigned(cfg.t_addr_bits), cfg.pe if cfg.addr_reg else 1),
    })


def output_layout(cfg):
    """A core output beat: the results D and the multi-threshold activations."""
    return data.StructLayout({
        "acc": data.ArrayLayout(signed(cfg.acc_bits), cfg.pe),
        "act": data.ArrayLayout(unsigned(cfg.out_bits), cfg.pe),
    })


def thresholds_layout(cfg):
    """One threshold-memory word: ``2**out_bits - 1`` signed thresholds."""
    return data.ArrayLayout(signed(cfg.acc_bits), cfg.n_thresholds)


def weight_load_signature(cfg):
    """Write port into the weight banks: ``data`` bits 0..S-1 are the sign
    word, bits S..2S-1 the mask word (ternary-capable cores only)."""
    return wiring.Signature({
        "en": Out(1),
        "bank": Out(range(cfg.pe)) if cfg.pe > 1 else Out(1),
        "addr": Out(cfg.w_addr_bits),
        "data": Out(cfg.weight_width),
    })


def store_load_signature(accel_cfg):
    """Write port into the accelerator's weight store (words as for the banks)."""
    return wiring.Signature({
        "en": Out(1),
        "addr": Out(range(accel_cfg.store_depth)),
        "data": Out(accel_cfg.core.weight_width),
    })


def threshold_load_signature(cfg):
    """Write port into the threshold memories (one per PE)."""
    return wiring.Signature({
        "en": Out(1),
        "bank": Out(range(cfg.pe)) if cfg.pe > 1 else Out(1),
        "addr": Out(cfg.t_addr_bits),
        "data": Out(thresholds_layout(cfg)),
    })


def pack(layout, values):
    """Raw integer of ``values`` (a dict / list, nested as the layout) in ``layout``."""
    return layout.const(values).as_value().value


def unpack_signed(raw, offset, width):
    v = (raw >> offset) & ((1 << width) - 1)
    return v - (1 << width) if v >> (width - 1) else v
