"""Lane operations, shift-and-negate accumulators, the PE and the P x S PE array.

The integer each PE computes (the *PE contract*, also in docs/hardware.md)
---------------------------------------------------------------------------
For every accepted input word ``x`` (S lanes) with command ``c``, PE ``p``
reads weight word ``w = bank_p[c.w_addr]`` (sign word ``s``, mask word ``m``)
and forms the lane word

* ``xnor``:  ``~(x ^ s)``            (binary weights, bipolar inputs)
* ``mxnor``: ``m & ~(x ^ s)``        (ternary weights, bipolar inputs)
* ``and_s``: ``x & s``               (bit plane of k-bit inputs, sign word)
* ``and_m``: ``x & m``               (bit plane of k-bit inputs, mask word)

then updates its accumulator ``A_p`` and the array's shared input counter ``Q``::

    A_p <- (2 * A_p if c.shl else A_p) + (-1)**c.neg * (popcount(lane) << c.dbl)
    Q   <- (2 * Q   if c.shl else Q  ) + (-1)**c.neg * (popcount(x) if c.count else 0)

and with ``c.last`` emits ``D_p = A_p - Q`` (after this word's update), then
clears ``A_p`` and ``Q`` to 0 (they are 0 after reset too). The
relation to :func:`tritium.sw.model.reference.accumulate` is exact:
``reference_acc = D_p - K_p`` with a per-row constant ``K_p`` that the compiler
folds into the thresholds (see :mod:`tritium.hw.contract`, which also builds
the command sequence of each mode).
"""

from amaranth.hdl import Cat, Module, Mux, ResetSignal, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.data import StructLayout
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .config import OP_AND_M, OP_AND_S, OP_MXNOR, OP_XNOR
from .layouts import NO_RW_CHECK, input_layout, result_layout, weight_load_signature
from .pipeline import delay, register
from .popcount import Popcount
from .toolchain import COPY_ATTR


def lane_function(op, x, s, m):
    """The lane word of one op code (Amaranth values or Python ints)."""
    if op == OP_XNOR:
        return ~(x ^ s)
    if op == OP_MXNOR:
        return m & ~(x ^ s)
    if op == OP_AND_S:
        return x & s
    if op == OP_AND_M:
        return x & m
    raise ValueError(f"unknown lane op {op}")


class LaneOps(wiring.Component):
    """The lane operation of one PE over S lanes.

    Parameters
    ----------
    simd : int
        S, lanes.
    ops : tuple of int
        Op codes implemented (see :mod:`tritium.hw.config`). With a single op
        the ``op`` input is ignored; otherwise an op code outside ``ops``
        yields the first op.

    Members
    -------
    x, s, m : In(simd)
        Broadcast input, sign word and mask word.
    op : In(2 * op_groups)
        Op code of this cycle; with ``op_groups`` > 1 one copy per group of
        about ``simd / op_groups`` lanes (group ``g``: lanes ``g * simd // op_groups`` up
        to the next group's first; its op in bits ``2g, 2g + 1``), so that
        a register copy per group can drive it (a PE's op drives every lane).
    o : Out(simd)
        Lane word.
    """

    def __init__(self, simd, ops, op_groups=1):
        self.simd, self.ops, self.op_groups = simd, tuple(ops), op_groups
        super().__init__({"x": In(simd), "s": In(simd), "m": In(simd), "op": In(2 * op_groups),
                          "o": Out(simd)})

    def elaborate(self, platform):
        m = Module()
        for g in range(self.op_groups):
            lanes = slice(g * self.simd // self.op_groups, (g + 1) * self.simd // self.op_groups)
            m.d.comb += self.o[lanes].eq(self._lanes(self.op[2 * g:2 * g + 2], self.x[lanes],
                                                     self.s[lanes], self.m[lanes]))
        return m

    def _lanes(self, op_code, x, s, w_m):
        """The lane word of ``x``, ``s``, ``w_m`` under ``op_code``."""
        out = lane_function(self.ops[0], x, s, w_m)
        for op in self.ops[1:]:
            out = Mux(op_code == op, lane_function(op, x, s, w_m), out)
        return out


class ShiftAccumulator(wiring.Component):
    """Accumulator with Horner shift, negation and doubling of its addend.

    ``acc_next = (acc << 1 if shl else acc) + (-1)**neg * (value << dbl)``. On
    cycles with ``en``, ``acc`` takes ``acc_next``, or 0 when ``clear`` is also
    set (the cycle that emits a result), so the next accumulation starts from 0
    without a multiplexer in front of the adder (a synchronous reset is free in
    FPGA flip-flops).

    Parameters
    ----------
    in_width : int
        Width of the unsigned addend ``value``.
    acc_bits : int
        Signed accumulator width.
    horner, negate, double : bool
        Whether ``shl``, ``neg`` and ``dbl`` are implemented; an unimplemented
        input is ignored (``dbl`` then reads as ``double_default``).
    double_default : int
        Value of ``dbl`` when ``double`` is False.
    max_total : int or None
        Largest sum of ``value`` over one accumulation. With ``horner``,
        ``negate`` and ``double`` all off the sum never goes negative, so the
        register is unsigned and only ``max_total.bit_length()`` bits wide (the
        doubling by ``double_default`` is wiring); ``None`` (or any of the three
        on) keeps a signed ``acc_bits``-bit register.
    reset : Value or None
        What clears the register besides ``clear``: the domain reset (``None``) or a
        local copy of it (the chained array, :mod:`tritium.hw.chain`: the domain reset
        would reach every accumulator across the device).

    Members
    -------
    value : In(in_width)
    en, clear, shl, neg, dbl : In(1)
    acc : Out(signed(acc_bits))
        Registered accumulator.
    acc_next : Out(signed(acc_bits))
        The accumulator after this cycle's addend.
    """

    def __init__(self, in_width, acc_bits, *, horner=True, negate=True, double=True,
                 double_default=0, max_total=None, reset=None):
        self.in_width, self.acc_bits = in_width, acc_bits
        self.reset = reset
        self.horner, self.negate, self.double = horner, negate, double
        self.double_default = double_default
        self.max_total = max_total
        self._MustUse__silence = True  # no "never used" warning when the check below fails
        if self.narrow and (max_total << double_default) >> (acc_bits - 1):
            raise ValueError(f"a sum of {max_total} << {double_default} does not fit "
                             f"a signed {acc_bits}-bit accumulator")
        self._MustUse__silence = False
        super().__init__({
            "value": In(in_width), "en": In(1), "clear": In(1), "shl": In(1), "neg": In(1),
            "dbl": In(1), "acc": Out(signed(acc_bits)), "acc_next": Out(signed(acc_bits)),
        })

    @property
    def narrow(self):
        """Whether the register is the narrow unsigned sum (see ``max_total``)."""
        return self.max_total is not None and not (self.horner or self.negate or self.double)

    def elaborate(self, platform):
        m = Module()
        if self.narrow:
            return self._elaborate_narrow(m)
        if self.double:
            addend = Mux(self.dbl, self.value << 1, self.value)
        else:
            addend = self.value << self.double_default
        # No reset multiplexer in front of the register: the domain reset and
        # ``clear`` share the flip-flops' synchronous reset pin.
        acc = Signal(signed(self.acc_bits), name="acc_reg", reset_less=True)
        base = Mux(self.shl, acc << 1, acc) if self.horner else acc
        if self.negate:
            # base - addend = base + ~addend + 1 in one carry chain: a low bit of ``neg``
            # in both operands makes the carry-in (no negating adder in front of the sum).
            w = self.acc_bits
            term = Signal(w, name="addend")
            m.d.comb += term.eq(addend)
            total = Cat(self.neg, base[:w]) + Cat(self.neg, term ^ self.neg.replicate(w))
            m.d.comb += self.acc_next.eq(total[1:w + 1])
        else:
            m.d.comb += self.acc_next.eq(base + addend)
        m.d.comb += self.acc.eq(acc)
        with m.If((self.en & self.clear) | self._reset()):
            m.d.sync += acc.eq(0)
        with m.Elif(self.en):
            m.d.sync += acc.eq(self.acc_next)
        return m

    def _reset(self):
        return ResetSignal() if self.reset is None else self.reset

    def _elaborate_narrow(self, m):
        total = Signal(self.max_total.bit_length(), name="acc_reg", reset_less=True)
        total_next = Signal.like(total, name="acc_sum")
        m.d.comb += [
            total_next.eq(total + self.value),
            self.acc_next.eq(total_next << self.double_default),
            self.acc.eq(total << self.double_default),
        ]
        with m.If((self.en & self.clear) | self._reset()):
            m.d.sync += total.eq(0)
        with m.Elif(self.en):
            m.d.sync += total.eq(total_next)
        return m


def accumulator_options(cfg):
    """Which of :class:`ShiftAccumulator`'s ``horner`` (``shl``), ``negate`` (``neg``) and
    ``double`` (``dbl``) a PE of ``cfg`` implements: all with bit-serial inputs, doubling
    only with mask words too; Horner also with multi-plane weights."""
    return {"horner": cfg.bit_serial or cfg.weight_planes > 1, "negate": cfg.bit_serial,
            "double": cfg.bit_serial and cfg.ternary}


#: The command fields (and the valid bit) a PE needs: ``op`` with the input word, the
#: accumulator controls ``cfg.pe_latency`` cycles later.
PE_CONTROLS = StructLayout({"valid": 1, "op": 2, "last": 1, "shl": 1, "neg": 1, "dbl": 1})


def _pe_controls(cmd, valid):
    """The :data:`PE_CONTROLS` of a command and its valid bit."""
    return PE_CONTROLS(Cat(valid, cmd.op, cmd.last, cmd.shl, cmd.neg, cmd.dbl))


def write_ports(m, load, cfg, name):
    """``(en, addr, data)`` of each of the P memories a load port (``en``, ``bank``,
    ``addr``, ``data``) writes. With ``cfg.addr_reg`` they pass one register stage: address
    and enable copied per memory, the data in one register (copies of it, per memory or
    per group of memories, left the design unroutable or slower on the ULX3S; it is a
    kept copy because the weight and threshold ports both load the host link's word, and
    yosys would merge the two registers into one driving every memory); a write
    lands a cycle later, which no reader sees (a RUN reads the banks several cycles after
    it starts, and it starts after the weight copy is done)."""
    if not cfg.addr_reg:
        return [(load.en & (load.bank == p), load.addr, load.data) for p in range(cfg.pe)]
    data = _copy(m, load.data, 1, f"{name}_data")
    return [(_copy(m, load.en & (load.bank == p), 1, f"{name}_en{p}", reset_less=False),
             _copy(m, load.addr, 1, f"{name}_addr{p}"), data) for p in range(cfg.pe)]


def _copy(m, value, en, name, reset_less=True):
    """One register copy of ``value`` that synthesis keeps apart from its siblings
    (:data:`tritium.hw.toolchain.COPY_ATTR`)."""
    return register(m, value, name, en=en, reset_less=reset_less, attrs={COPY_ATTR: 1})


def weight_bank(cfg, init, p):
    """PE ``p``'s weight bank, with its words from ``init`` (a MemoryInit, or None)."""
    return Memory(shape=cfg.weight_width, depth=cfg.weight_depth, attrs=NO_RW_CHECK,
                  init=init.words[f"weights_p{p}"] if init else [])


class PE(wiring.Component):
    """One processing element: lane op, popcount tree, shift-negate accumulator.

    Latency from ``s``/``m``/``x`` to ``acc_next`` is ``cfg.pe_latency`` cycles;
    the command inputs must be delayed by the same amount (the array does it,
    once for all PEs or, with ``cfg.weight_reg``, per PE).

    Parameters
    ----------
    cfg : HwConfig
    popcount_style : str
        ``"tree"`` (the design) or ``"chain"`` (naive baseline, benchmarks only).
    reset : Value or None
        The accumulator's reset besides ``clear`` (see :class:`ShiftAccumulator`): the
        domain reset (``None``) or a local copy of it.
    op_groups : int
        Copies of ``op``, each driving about ``simd / op_groups`` lanes (:class:`LaneOps`).

    Members
    -------
    x, s, m : In(simd)
        Broadcast input, sign and mask words (registered weight-bank output).
    op : In(2 * op_groups)
        Lane op code, aligned with ``x`` (one copy per op group).
    en : In(1)
        Pipeline clock enable.
    step, clear, shl, neg, dbl : In(1)
        Accumulator controls, aligned with the popcount output.
    acc_next : Out(signed(cfg.acc_bits))
        Accumulator after this cycle's update.
    """

    def __init__(self, cfg, popcount_style="tree", *, reset=None, op_groups=1):
        self.cfg, self.popcount_style, self.reset = cfg, popcount_style, reset
        self.op_groups = op_groups
        s = cfg.simd
        super().__init__({
            "x": In(s), "s": In(s), "m": In(s), "op": In(2 * op_groups), "en": In(1),
            "step": In(1), "clear": In(1), "shl": In(1), "neg": In(1), "dbl": In(1),
            "acc_next": Out(signed(cfg.acc_bits)),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        m.submodules.lanes = lanes = LaneOps(cfg.simd, cfg.ops, self.op_groups)
        m.submodules.popcount = pop = Popcount(cfg.simd, cfg.pipeline, self.popcount_style,
                                               in_reg=cfg.lane_reg)
        m.submodules.accumulator = acc = ShiftAccumulator(
            cfg.pop_bits, cfg.acc_bits, **accumulator_options(cfg), double_default=1,
            max_total=cfg.padded_fan_in, reset=self.reset)
        m.d.comb += [
            lanes.x.eq(self.x), lanes.s.eq(self.s), lanes.m.eq(self.m), lanes.op.eq(self.op),
            pop.i.eq(lanes.o), pop.en.eq(self.en),
            acc.value.eq(pop.o), acc.en.eq(self.step & self.en), acc.clear.eq(self.clear),
            acc.shl.eq(self.shl), acc.neg.eq(self.neg), acc.dbl.eq(self.dbl),
            self.acc_next.eq(acc.acc_next),
        ]
        return m


class PEArray(wiring.Component):
    """P PEs with per-PE weight banks, a broadcast input and a shared input counter.

    Pipeline (each stage advances together; a full output register that is
    not taken stalls everything): with ``cfg.addr_reg`` a register copy of the
    weight address per bank (1 cycle), weight-bank read (1 cycle, 2 with
    ``cfg.weight_reg``), lane register and popcount tree (``cfg.pe_latency`` cycles), accumulate
    into the output register (1 cycle).
    One result beat leaves per input word whose command has ``last``.

    Parameters
    ----------
    cfg : HwConfig
    popcount_style : str
        Popcount of the PEs (see :class:`PE`).
    init : MemoryInit or None
        Initial weight words (``weights_p{k}``, see :mod:`tritium.hw.meminit`).

    Members
    -------
    i : In(stream.Signature(input_layout(cfg)))
        Input words with their commands.
    o : Out(stream.Signature(result_layout(cfg)))
        Results ``D_p = A_p - Q`` (see the module docstring) and the threshold address.
    wload : In(weight_load_signature(cfg))
        Weight-bank write port.
    """

    def __init__(self, cfg, popcount_style="tree", *, init=None):
        self.cfg, self.popcount_style, self.init = cfg, popcount_style, init
        super().__init__({
            "i": In(stream.Signature(input_layout(cfg))),
            "o": Out(stream.Signature(result_layout(cfg))),
            "wload": In(weight_load_signature(cfg)),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        adv = Signal()
        m.d.comb += [adv.eq(~self.o.valid | self.o.ready), self.i.ready.eq(adv)]

        x0, cmd0, valid0 = self.i.payload.x, self.i.payload.cmd, self.i.valid
        w_addr = [cmd0.w_addr] * cfg.pe
        if cfg.addr_reg:
            # Stage 0: one register copy of the weight address per bank (kept apart in
            # synthesis: COPY_ATTR), so each copy drives one bank and can sit beside it;
            # the input word and command follow.
            w_addr = [_copy(m, cmd0.w_addr, adv, f"w_addr_copy{p}") for p in range(cfg.pe)]
            x0 = delay(m, x0, 1, "x_a", en=adv, reset_less=True)
            cmd0 = delay(m, cmd0, 1, "cmd_a", en=adv, reset_less=True)
            valid0 = delay(m, valid0, 1, "valid_a", en=adv)

        # Stage 1: weight-bank read; the input word and command are registered alongside.
        # Data registers have no reset (only valid bits do): cheaper in FPGAs.
        x1 = Signal(cfg.simd, reset_less=True)
        cmd1 = Signal.like(self.i.payload.cmd, reset_less=True)
        valid1 = Signal()
        with m.If(adv):
            m.d.sync += [x1.eq(x0), cmd1.eq(cmd0), valid1.eq(valid0)]
        words = []
        writes = write_ports(m, self.wload, cfg, "wl")
        for p in range(cfg.pe):
            m.submodules[f"bank{p}"] = bank = weight_bank(cfg, self.init, p)
            rd, wr = bank.read_port(), bank.write_port()
            en, addr, data = writes[p]
            m.d.comb += [
                rd.addr.eq(w_addr[p]), rd.en.eq(adv),
                wr.addr.eq(addr), wr.data.eq(data), wr.en.eq(en),
            ]
            words.append(delay(m, rd.data, int(cfg.weight_reg), f"w{p}", en=adv, reset_less=True))

        if cfg.weight_reg:
            # One more stage after the block RAMs (their output register on ECP5-class
            # parts): x and the command follow it. The PEs take the input word and their
            # controls from copies of this stage, one per PE (kept apart in synthesis:
            # COPY_ATTR): a shared register would drive every lane of the array (op
            # reaches thousands of LUTs, x 2 * P per bit) across the device.
            xs = [_copy(m, x1, adv, f"x_copy{p}") for p in range(cfg.pe)]
            ctls = [_copy(m, _pe_controls(cmd1, valid1), adv, f"ctl_copy{p}", reset_less=False)
                    for p in range(cfg.pe)]
            x1 = delay(m, x1, 1, "x", en=adv, reset_less=True)
            cmd1 = delay(m, cmd1, 1, "cmd_w", en=adv, reset_less=True)
            valid1 = delay(m, valid1, 1, "valid_w", en=adv)
        else:
            xs, ctls = [x1] * cfg.pe, [_pe_controls(cmd1, valid1)] * cfg.pe

        # Stage 2 .. 1+pe_latency: lane register, popcount trees; the command follows in a delay line (and
        # with weight_reg each PE's controls in its own).
        cmd2 = delay(m, cmd1, cfg.pe_latency, "cmd", en=adv, reset_less=True)
        valid2 = delay(m, valid1, cfg.pe_latency, "valid", en=adv)
        if cfg.weight_reg:
            ctls2 = [delay(m, ctl, cfg.pe_latency, f"ctl{p}", en=adv) for p, ctl in enumerate(ctls)]
        else:
            ctls2 = [_pe_controls(cmd2, valid2)] * cfg.pe
        results = []
        for p, word in enumerate(words):
            pe = PE(cfg, self.popcount_style)
            m.submodules[f"pe{p}"] = pe
            ctl, ctl2 = ctls[p], ctls2[p]
            m.d.comb += [
                pe.x.eq(xs[p]), pe.s.eq(word[:cfg.simd]),
                pe.m.eq(word[cfg.simd:] if cfg.ternary else 0), pe.op.eq(ctl.op), pe.en.eq(adv),
                pe.step.eq(ctl2.valid), pe.clear.eq(ctl2.last), pe.shl.eq(ctl2.shl),
                pe.neg.eq(ctl2.neg), pe.dbl.eq(ctl2.dbl),
            ]
            results.append(pe.acc_next)

        if cfg.bit_serial:
            # popcount(x_b) is the same for every PE: one shared counter.
            m.submodules.xcount = xpop = Popcount(cfg.simd, cfg.pipeline, in_reg=cfg.lane_reg)
            m.submodules.qacc = qacc = ShiftAccumulator(cfg.pop_bits, cfg.acc_bits, double=False)
            count2 = delay(m, cmd1.count, cfg.pe_latency, "count", en=adv, reset_less=True)
            m.d.comb += [
                xpop.i.eq(x1), xpop.en.eq(adv),
                qacc.value.eq(Mux(count2, xpop.o, 0)), qacc.en.eq(valid2 & adv),
                qacc.clear.eq(cmd2.last), qacc.shl.eq(cmd2.shl), qacc.neg.eq(cmd2.neg),
            ]
            results = [r - qacc.acc_next for r in results]

        # Output register: with cfg.data_every_step the data loads on every step (it
        # matters only with o.valid), else on the command's last bit. With addr_reg the
        # threshold address leaves in one register copy per threshold memory.
        if cfg.addr_reg:
            out = Signal.like(self.o.payload.d, reset_less=True)
            m.d.comb += self.o.payload.d.eq(out)
            for k, t_addr in enumerate(self.o.payload.t_addr):
                m.d.comb += t_addr.eq(_copy(m, cmd2.t_addr, adv, f"t_addr_copy{k}"))
            loads = [out[p].eq(r) for p, r in enumerate(results)]
        else:
            out = Signal.like(self.o.payload, reset_less=True)
            m.d.comb += self.o.payload.eq(out)
            loads = [out.t_addr[0].eq(cmd2.t_addr)] + [out.d[p].eq(r) for p, r in enumerate(results)]
        with m.If(adv):
            m.d.sync += self.o.valid.eq(valid2 & cmd2.last)
            if cfg.data_every_step:
                m.d.sync += loads
            else:
                with m.If(valid2 & cmd2.last):
                    m.d.sync += loads
        return m
