"""The multi-threshold unit and its threshold memories."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .layouts import (NO_RW_CHECK, output_layout, result_layout, threshold_load_signature,
                      thresholds_layout, unpack_signed)


class ThresholdUnit(wiring.Component):
    """``act_p = sum_t [D_p >= T'_p[t_addr][t]]`` for every PE result.

    Each PE has its own threshold memory of ``cfg.thr_depth`` sets of
    ``2**out_bits - 1`` signed thresholds. ``T'`` are the *folded* thresholds:
    the compiler adds the row constant ``K_p`` of the PE contract to the
    model's thresholds (``acc >= T`` iff ``D >= T + K``). A threshold of
    ``2**(acc_bits-1) - 1`` past every result acts as "never"; the most negative
    value as "always". One register stage: the memory read and the result
    register advance together, and stall while the output is full and not taken.

    Parameters
    ----------
    cfg : HwConfig
    init : MemoryInit or None
        Initial raw threshold words (``thresholds_p{k}``, see :mod:`tritium.hw.meminit`).

    Members
    -------
    i : In(stream.Signature(result_layout(cfg)))
        Results from the PE array.
    o : Out(stream.Signature(output_layout(cfg)))
        Results ``acc`` (the same D values) and activations ``act``.
    tload : In(threshold_load_signature(cfg))
        Threshold-memory write port.
    """

    def __init__(self, cfg, *, init=None):
        self.cfg, self.init = cfg, init
        super().__init__({
            "i": In(stream.Signature(result_layout(cfg))),
            "o": Out(stream.Signature(output_layout(cfg))),
            "tload": In(threshold_load_signature(cfg)),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        adv = Signal()
        m.d.comb += [adv.eq(~self.o.valid | self.o.ready), self.i.ready.eq(adv)]
        with m.If(adv):
            m.d.sync += self.o.valid.eq(self.i.valid)
            with m.If(self.i.valid):
                m.d.sync += self.o.payload.acc.eq(self.i.payload.d)
        for p in range(cfg.pe):
            layout = thresholds_layout(cfg)
            words = self.init.words[f"thresholds_p{p}"] if self.init else []
            mem = Memory(shape=layout, depth=cfg.thr_depth, attrs=NO_RW_CHECK,
                         init=[[unpack_signed(w, t * cfg.acc_bits, cfg.acc_bits)
                                for t in range(cfg.n_thresholds)] for w in words])
            m.submodules[f"thresholds{p}"] = mem
            rd, wr = mem.read_port(), mem.write_port()
            m.d.comb += [
                rd.addr.eq(self.i.payload.t_addr), rd.en.eq(adv & self.i.valid),
                wr.addr.eq(self.tload.addr), wr.data.eq(self.tload.data),
                wr.en.eq(self.tload.en & (self.tload.bank == p)),
            ]
            d = self.o.payload.acc[p]
            hits = [d >= rd.data[t] for t in range(cfg.n_thresholds)]
            m.d.comb += self.o.payload.act[p].eq(sum(hits) if len(hits) > 1 else hits[0])
        return m
