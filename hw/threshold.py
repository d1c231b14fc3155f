"""The multi-threshold unit and its threshold memories."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .layouts import (NO_RW_CHECK, output_layout, result_layout, threshold_load_signature,
                      thresholds_layout, unpack_signed)
from .pe import write_ports


class ThresholdUnit(wiring.Component):
    """``act_p = sum_t [D_p >= T'_p[t_addr][t]]`` for every PE result.

    Each PE has its own threshold memory of ``cfg.thr_depth`` sets of
    ``2**out_bits - 1`` signed thresholds. ``T'`` are the *folded* thresholds:
    the compiler adds the row constant ``K_p`` of the PE contract to the
    model's thresholds (``acc >= T`` iff ``D >= T + K``). A threshold of
    ``2**(acc_bits-1) - 1`` past every result acts as "never"; the most negative
    value as "always". Two register stages (:data:`tritium.hw.config.THRESHOLD_STAGES`): the
    memory read beside the result, then the read data into a register (on ECP5
    the block RAM's clock-to-output time would otherwise precede the compare),
    beside the result again; the compare follows combinationally. Both stages
    advance together and stall while the output is full and not taken.

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
        # Stage 1: the threshold read; the result is registered beside it.
        # Data registers have no reset (only valid bits do); with cfg.data_every_step
        # they load on every step (the data matters only with its valid bit).
        every_step = cfg.data_every_step
        valid1 = Signal()
        d1 = Signal.like(self.i.payload.d, reset_less=True)
        acc = self.o.payload.acc
        if every_step:
            acc = Signal.like(self.i.payload.d, reset_less=True)
            m.d.comb += self.o.payload.acc.eq(acc)
        with m.If(adv):
            m.d.sync += [valid1.eq(self.i.valid), self.o.valid.eq(valid1)]
            if every_step:
                m.d.sync += [d1.eq(self.i.payload.d), acc.eq(d1)]
            else:
                with m.If(self.i.valid):
                    m.d.sync += d1.eq(self.i.payload.d)
                # Stage 2: the thresholds (held by the read port since) and the result.
                with m.If(valid1):
                    m.d.sync += acc.eq(d1)
        writes = write_ports(m, self.tload, cfg, "tl")
        for p in range(cfg.pe):
            m.submodules[f"thresholds{p}"] = mem = threshold_memory(cfg, self.init, p)
            rd, wr = mem.read_port(), mem.write_port()
            en, addr, data = writes[p]
            m.d.comb += [
                rd.addr.eq(self.i.payload.t_addr[p % len(self.i.payload.t_addr)]),
                rd.en.eq(adv if every_step else adv & self.i.valid),
                wr.addr.eq(addr), wr.data.eq(data), wr.en.eq(en),
            ]
            thr = Signal.like(rd.data, name=f"thr{p}", reset_less=True)
            with m.If(adv if every_step else adv & valid1):
                m.d.sync += thr.eq(rd.data)
            m.d.comb += self.o.payload.act[p].eq(multi_threshold(acc[p], thr))
        return m


def threshold_memory(cfg, init, p):
    """PE ``p``'s threshold memory, with its raw words from ``init`` (a MemoryInit, or
    None) unpacked into signed thresholds."""
    words = init.words[f"thresholds_p{p}"] if init else []
    return Memory(shape=thresholds_layout(cfg), depth=cfg.thr_depth, attrs=NO_RW_CHECK,
                  init=[[unpack_signed(w, t * cfg.acc_bits, cfg.acc_bits)
                         for t in range(cfg.n_thresholds)] for w in words])


def multi_threshold(d, thresholds):
    """The activation of result ``d``: how many of ``thresholds`` (a register of a threshold
    word) it reaches."""
    hits = [d >= thresholds[t] for t in range(thresholds.shape().length)]
    return sum(hits) if len(hits) > 1 else hits[0]
