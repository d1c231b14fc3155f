"""The chained PE array: PE slices in a systolic chain, for arrays that span a large device.

A broadcast array (:class:`tritium.hw.pe.PEArray` with :class:`tritium.hw.threshold.ThresholdUnit`)
sends every input word, command and load word from one place to all P PEs and
gathers all P results back into one place. On an ECP5-85F the weight block RAMs,
and so the PEs, spread over the whole device, and those nets (fan-out P, or
P * acc_bits into one register) cross the device: register-copy trees do not
bring them within a 100 MHz cycle (docs/timing.md).

Here (``HwConfig.chain``) every PE is a *slice* that takes what it needs from the
slice before it, one register stage later, and passes it on:

* the **input bus** (input word, lane op, accumulator controls, weight address,
  valid bit) into slice ``i`` ``i + 1`` cycles after the word enters the chain;
* the **result bus** at the accumulator stage: the shared input counter ``Q`` (computed
  once, at the head), the threshold set, and the result-memory write (enable, address);
* the **load buses**: weight-bank and threshold-memory writes (a write lands in slice
  ``i``'s memory ``i + 1`` cycles after it is presented; a RUN's reads of slice ``i``
  are delayed by the same ``i`` cycles, so their order is the order at the head);
* the **activation vector**: slice ``i`` appends its activation to the vector of slices
  ``0 .. i - 1`` (one register per slice); the last slice's vector is the output;
* a **reset** copy per slice (valid bits and accumulators).

Every net runs between neighbouring slices. Each slice writes its own raw results
(``D_p``, for layers without output activations) into its own result memory, so no
net gathers P results either; the host's read address passes along the slices and
the accumulator it selects comes back along them (``res_sel``, ``res_word``).

The integers are those of the broadcast array (the PE contract in
:mod:`tritium.hw.pe`). The latency is :attr:`HwConfig.latency`, which counts the
chain: P + 1 cycles more than the broadcast array's with the same registers (the
slices, the vector register and a compare stage, :data:`CHAIN_COMPARE_STAGES`). The chain
never stalls: ``inp.ready`` is 1 and ``out.ready`` must be held at 1 (the accelerator
does: its output path takes a result every cycle).
"""

from amaranth.hdl import Cat, Module, Mux, ResetSignal, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .config import ConfigError
from .layouts import (NO_RW_CHECK, command_layout, threshold_load_signature,
                      weight_load_signature)
from .pe import PE, ShiftAccumulator, accumulator_options, weight_bank
from .pipeline import register
from .popcount import Popcount
from .threshold import multi_threshold, threshold_memory
from .toolchain import COPY_ATTR, LUTRAM_OK_ATTR


def result_write_layout(res_depth):
    """The result-memory write of an input beat: ``en`` (the beat's result is raw: write it)
    and the entry ``addr``."""
    return data.StructLayout({"en": unsigned(1), "addr": unsigned(max(1, (res_depth - 1).bit_length()))})


def chain_input_layout(cfg, res_depth):
    """One input beat of the chain: word ``x``, command ``cmd`` and result write ``res``."""
    return data.StructLayout({"x": unsigned(cfg.simd), "cmd": command_layout(cfg),
                              "res": result_write_layout(res_depth)})


def chain_output_layout(cfg):
    """A chain output beat: the P multi-threshold activations (slice ``p`` in ``act[p]``)."""
    return data.StructLayout({"act": data.ArrayLayout(unsigned(cfg.out_bits), cfg.pe)})


#: Lanes per copy of a slice's lane-op register: keeps the lane op's fan-out into the
#: lane LUTs short (docs/timing.md).
OP_GROUP_LANES = 16

def _acc_controls(cfg):
    """The controls a slice's accumulator takes, ``pe_latency`` cycles after the lane op:
    ``valid``, ``last``, and those of ``shl``, ``neg``, ``dbl`` its PE implements (only what
    a slice reads travels: the chain's registers are kept, unread ones too)."""
    options = accumulator_options(cfg)
    used = {"shl": options["horner"], "neg": options["negate"], "dbl": options["double"]}
    return data.StructLayout({"valid": 1, "last": 1, **{f: 1 for f, on in used.items() if on}})


def _controls(cfg):
    """The controls on the input bus (beside the input word and the weight address): the
    lane op where the PE has more than one, and the accumulator's."""
    lane_op = {"op": 2} if len(cfg.ops) > 1 else {}
    return data.StructLayout({**lane_op, **_acc_controls(cfg).members})


def _reg(m, value, name, *, rst=None):
    """A register of ``value``, loaded every cycle; ``rst`` (a signal) clears it, or only
    its ``valid`` field where it has one (data bits have no reset: cheaper in FPGAs).

    Marked as a deliberate copy (:data:`COPY_ATTR`): slice ``p``'s own delay of a bus
    (``x_s{p}_d0``) and the next slice's input register (``x_s{p+1}``) load the same value,
    and synthesis would otherwise merge them, so that a slice computed with registers
    of slices further down the chain (on the ULX3S: a 9.9 ns net from slice 7's controls
    into slice 10's popcount, 74.9 MHz)."""
    reg = register(m, value, name, reset_less=True, attrs={COPY_ATTR: 1})
    if rst is not None:
        target = reg.valid if hasattr(reg, "valid") else reg
        with m.If(rst):
            m.d.sync += target.eq(0)
    return reg


def _delay(m, value, cycles, name, rst=None):
    """``value`` through ``cycles`` registers (see :func:`_reg`)."""
    for k in range(cycles):
        value = _reg(m, value, f"{name}_d{k}", rst=rst)
    return value


def _load_layout(signature):
    """A struct with the members of a load port's signature (en, bank, addr, data)."""
    return data.StructLayout({name: member.shape for name, member in signature.members.items()})


class PEChain(wiring.Component):
    """P PE slices in a chain, each with its weight bank, threshold memory and result memory.

    Parameters
    ----------
    cfg : HwConfig
        With ``chain`` (and so ``addr_reg`` and ``weight_reg``).
    res_depth : int
        Entries of each slice's result memory.
    init : MemoryInit or None
        Initial weight and threshold words (``weights_p{k}``, ``thresholds_p{k}``).

    Members
    -------
    inp : In(stream.Signature(chain_input_layout(cfg, res_depth)))
        Input words with their commands and result writes; ``ready`` is always 1.
    out : Out(stream.Signature(chain_output_layout(cfg)))
        One beat per command with ``last``, :attr:`HwConfig.latency` cycles after it
        entered; ``ready`` must be 1.
    wload, tload : In
        Weight-bank and threshold-memory write ports (a write lands ``bank + 1`` cycles
        later).
    res_addr : In(range(res_depth)), res_data : Out(ArrayLayout(signed(acc_bits), P))
        Result-memory read port: entry ``res_addr`` of every slice. The address passes
        slice by slice (slice ``p`` reads it ``p + 1`` cycles later), so hold it
        :meth:`AccelConfig.res_latency` (P + 2) cycles.
    res_sel : In(range(P)), res_word : Out(signed(acc_bits))
        The accumulator of slice ``res_sel`` in entry ``res_addr``, gathered back along
        the slices (each slice passes on its own or its predecessor's): valid P + 2 cycles
        after both are set. The host link reads results through it: no net gathers P
        results into one place.
    """

    def __init__(self, cfg, res_depth, *, init=None):
        if not cfg.chain:
            raise ConfigError("PEChain needs a configuration with chain = true")
        self.cfg, self.res_depth, self.init = cfg, res_depth, init
        super().__init__({
            "inp": In(stream.Signature(chain_input_layout(cfg, res_depth))),
            "out": Out(stream.Signature(chain_output_layout(cfg))),
            "wload": In(weight_load_signature(cfg)),
            "tload": In(threshold_load_signature(cfg)),
            "res_addr": In(range(res_depth)),
            "res_data": Out(data.ArrayLayout(signed(cfg.acc_bits), cfg.pe)),
            "res_sel": In(range(max(cfg.pe, 2))),
            "res_word": Out(signed(cfg.acc_bits)),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        m.d.comb += self.inp.ready.eq(1)
        pay, cmd = self.inp.payload, self.inp.payload.cmd
        res_layout = data.StructLayout({"q": signed(cfg.acc_bits), "t_addr": cfg.t_addr_bits,
                                        "en": 1, "addr": len(pay.res.addr)})
        # The input bus: controls, weight address and input word.
        ctl = Signal(_controls(cfg))
        m.d.comb += ctl.valid.eq(self.inp.valid)
        m.d.comb += [getattr(ctl, f).eq(getattr(cmd, f)) for f in ctl.shape().members
                     if f != "valid"]
        x, w_addr = pay.x, cmd.w_addr
        wl = Signal(_load_layout(weight_load_signature(cfg)))
        tl = Signal(_load_layout(threshold_load_signature(cfg)))
        for load, port in ((wl, self.wload), (tl, self.tload)):
            m.d.comb += [load.en.eq(port.en), load.bank.eq(port.bank), load.addr.eq(port.addr),
                         load.data.eq(port.data)]
        # Slice 0's stages after the chain's input: its input register, the bank read, the
        # bank's output register, the popcount registers; then the accumulator's output,
        # where the result bus joins.
        res = self._head(m, pay, 3 + cfg.pe_latency, res_layout)
        rst = ResetSignal()
        vector = tail_valid = None
        read = Signal(data.StructLayout({"addr": len(self.res_addr), "sel": len(self.res_sel)}))
        m.d.comb += [read.addr.eq(self.res_addr), read.sel.eq(self.res_sel)]
        word = None
        for p in range(cfg.pe):
            rst = _reg(m, rst, f"rst_s{p}")
            ctl = _reg(m, ctl, f"ctl_s{p}", rst=rst)
            x = _reg(m, x, f"x_s{p}")
            w_addr = _reg(m, w_addr, f"w_addr_s{p}")
            (wl, w_hit), (tl, t_hit) = (_load_reg(m, wl, f"wl_s{p}", rst, p),
                                        _load_reg(m, tl, f"tl_s{p}", rst, p))
            read = _reg(m, read, f"read_s{p}")
            res, vector, tail_valid, entry = self._slice(m, p, rst, ctl, x, w_addr, res,
                                                         (wl, w_hit), (tl, t_hit), vector,
                                                         read.addr)
            # The host's read: slice p passes on its own entry when it is the one selected.
            word = _reg(m, entry if word is None else Mux(read.sel == p, entry, word),
                        f"res_word_s{p}")
        m.d.comb += [self.out.payload.act.as_value().eq(vector), self.out.valid.eq(tail_valid),
                     self.res_word.eq(word)]
        return m

    def _head(self, m, pay, acc_stage, res_layout):
        """The shared input counter ``Q`` (with bit-serial inputs) and the beat's threshold
        set and result write, aligned with slice 0's accumulator output (``acc_stage``)."""
        cfg, cmd = self.cfg, pay.cmd
        head = Signal(res_layout)
        t_addr = _delay(m, cmd.t_addr, acc_stage, "head_t_addr")
        res = _delay(m, pay.res, acc_stage, "head_res")
        m.d.comb += [head.t_addr.eq(t_addr), head.en.eq(res.en), head.addr.eq(res.addr)]
        if cfg.bit_serial:
            # popcount(x) is the same for every PE: one counter at the head, Q its sum.
            ctl = Signal(data.StructLayout({"valid": 1, "count": 1, "last": 1, "shl": 1, "neg": 1}))
            m.d.comb += [ctl.valid.eq(self.inp.valid), ctl.count.eq(cmd.count),
                         ctl.last.eq(cmd.last), ctl.shl.eq(cmd.shl), ctl.neg.eq(cmd.neg)]
            x = _delay(m, pay.x, 3, "head_x")
            ctl = _delay(m, ctl, acc_stage, "head_ctl", rst=ResetSignal())
            m.submodules.xcount = xpop = Popcount(cfg.simd, cfg.pipeline, in_reg=cfg.lane_reg)
            m.submodules.qacc = qacc = ShiftAccumulator(cfg.pop_bits, cfg.acc_bits, double=False)
            m.d.comb += [
                xpop.i.eq(x), xpop.en.eq(1),
                qacc.value.eq(Mux(ctl.count, xpop.o, 0)), qacc.en.eq(ctl.valid),
                qacc.clear.eq(ctl.last), qacc.shl.eq(ctl.shl), qacc.neg.eq(ctl.neg),
                head.q.eq(qacc.acc_next),
            ]
        return head

    def _slice(self, m, p, rst, ctl, x, w_addr, res_in, wl, tl, vector_in, read_addr):
        """Slice ``p`` from its input registers (``ctl``, ``x``, ``w_addr``, the loads
        ``wl``, ``tl`` with their write enables): bank read, lane op, popcount, accumulator, ``D = A - Q``,
        threshold compare, result write. Returns its result bus register, its activation
        vector register, (last slice) the output's valid bit, and the result-memory entry
        at ``read_addr`` (registered)."""
        cfg = self.cfg
        name = f"s{p}"
        (wl, w_hit), (tl, t_hit) = wl, tl
        # Stage 1: the bank read; stage 2: the bank's output register (on ECP5 the block
        # RAM's own, boards/bram_outreg.py). The input word and controls follow.
        m.submodules[f"bank{p}"] = bank = weight_bank(cfg, self.init, p)
        rd, wr = bank.read_port(), bank.write_port()
        m.d.comb += [rd.addr.eq(w_addr), rd.en.eq(1),
                     wr.en.eq(w_hit), wr.addr.eq(wl.addr), wr.data.eq(wl.data)]
        word = _reg(m, rd.data, f"w_{name}")
        ctl = _reg(m, ctl, f"ctl_{name}_d0", rst=rst)
        x = _delay(m, x, 2, f"x_{name}")
        # The lane op drives every lane: one register copy per OP_GROUP_LANES lanes, beside
        # the accumulator controls' register (only those go on to the accumulator).
        groups = max(1, cfg.simd // OP_GROUP_LANES) if len(cfg.ops) > 1 else 1
        ops = [_reg(m, ctl.op, f"op_{name}_g{g}") for g in range(groups)] if len(cfg.ops) > 1 else []
        acc_layout = _acc_controls(cfg)
        acc_ctl = Signal(acc_layout)
        m.d.comb += [getattr(acc_ctl, f).eq(getattr(ctl, f)) for f in acc_layout.members]
        ctl_acc = _delay(m, _reg(m, acc_ctl, f"ctl_{name}_d1", rst=rst), cfg.pe_latency,
                         f"ctl_{name}_pop", rst=rst)
        m.submodules[f"pe{p}"] = pe = PE(cfg, reset=rst, op_groups=groups)
        m.d.comb += [
            pe.x.eq(x), pe.s.eq(word[:cfg.simd]), pe.m.eq(word[cfg.simd:] if cfg.ternary else 0),
            pe.op.eq(Cat(*ops)), pe.en.eq(1), pe.step.eq(ctl_acc.valid), pe.clear.eq(ctl_acc.last),
            *(getattr(pe, f).eq(getattr(ctl_acc, f)) for f in acc_layout.members
              if f not in ("valid", "last")),
        ]
        # Result stage: A and the result bus (Q, threshold set, result write) registered;
        # the bus passes on to the next slice from here.
        res = _reg(m, res_in, f"res_{name}")
        a = _reg(m, pe.acc_next, f"a_{name}")
        result = _reg(m, ctl_acc.valid & ctl_acc.last, f"result_{name}", rst=rst)
        # Threshold stage 1: D = A - Q and the threshold read; stage 2: both registered.
        m.submodules[f"thresholds{p}"] = thr_mem = threshold_memory(cfg, self.init, p)
        t_rd, t_wr = thr_mem.read_port(), thr_mem.write_port()
        m.d.comb += [t_rd.addr.eq(res.t_addr), t_rd.en.eq(1),
                     t_wr.en.eq(t_hit), t_wr.addr.eq(tl.addr),
                     t_wr.data.eq(tl.data)]
        diff = Signal(signed(cfg.acc_bits), name=f"diff_{name}")
        m.d.comb += diff.eq(a - res.q)
        d = _delay(m, diff, 2, f"d_{name}")
        thr = _reg(m, t_rd.data, f"thr_{name}")
        write = _delay(m, Cat(res.en, res.addr), 2, f"rw_{name}")
        valid = _delay(m, result, 2, f"valid_{name}", rst=rst)
        # Compare stage: D and the thresholds once more in fabric registers beside the
        # compare, so the compare's carry chain starts from flip-flops next to it (on ECP5
        # the thresholds' register is the block RAM's output register; docs/timing.md).
        d_cmp, thr_cmp = _reg(m, d, f"d_cmp_{name}"), _reg(m, thr, f"thr_cmp_{name}")
        # The slice's result memory: the raw results of RUNs without output activations,
        # read by the host.
        results = Memory(shape=signed(cfg.acc_bits), depth=self.res_depth, init=[],
                         attrs={**NO_RW_CHECK, LUTRAM_OK_ATTR: 1})
        m.submodules[f"results{p}"] = results
        r_rd, r_wr = results.read_port(), results.write_port()
        m.d.comb += [r_wr.en.eq(valid & write[0]), r_wr.addr.eq(write[1:]), r_wr.data.eq(d),
                     r_rd.addr.eq(read_addr), self.res_data[p].eq(r_rd.data)]
        act = Signal(cfg.out_bits, name=f"act_{name}")
        m.d.comb += act.eq(multi_threshold(d_cmp, thr_cmp))
        vector = _reg(m, act if vector_in is None else Cat(vector_in, act), f"vector_{name}")
        tail_valid = None
        if p == cfg.pe - 1:     # the output's valid bit: the compare stage, then the vector's
            valid_cmp = _reg(m, valid, f"valid_cmp_{name}", rst=rst)
            tail_valid = _reg(m, valid_cmp, f"out_valid_{name}", rst=rst)
        return res, vector, tail_valid, r_rd.data


def _load_reg(m, load, name, rst, p):
    """A register of a load (enable, bank, address, data) and the write enable of slice
    ``p``'s memory, registered beside it (``load.en & load.bank == p``: no decode between
    the register and the block RAMs); ``rst`` clears both enables."""
    reg = Signal.like(load, name=name, reset_less=True)
    hit = Signal(name=f"{name}_hit", reset_less=True)   # ``rst`` clears it, not the domain reset
    m.d.sync += [reg.eq(load), hit.eq(load.en & (load.bank == p))]
    with m.If(rst):
        m.d.sync += [reg.en.eq(0), hit.eq(0)]
    return reg, hit
