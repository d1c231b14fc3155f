"""The accelerator's blocks: controller, address generator, activation fetch, output path
and weight copy engine (docs/accelerator.md, "Blocks").

:class:`~tritium.hw.accel.Accelerator` holds the memories and the PE array and connects
these components; each is a :class:`wiring.Component` whose ports are wires after
flattening, so the split adds no logic and no register.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import ReadPort, WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from . import isa
from .accel_loops import (Carries, DiagonalDigit, LoopDigit, bits, bound_registers, decodes, odometer, product,
                          thermometer)
from .chain import chain_input_layout, chain_output_layout
from .config import OP_AND_M, OP_AND_S, OP_MXNOR, OP_XNOR
from .isa import Opcode
from .layouts import input_layout, output_layout, store_load_signature, weight_load_signature
from .pipeline import delayed
# Status codes reported in ``error_code``: defined once, with the host protocol's.
from .protocol import ERR_BAD_OPCODE, ERR_BITS, ERR_NONE, ERR_PC_OVERFLOW

#: The instructions that set configuration registers.
CFG_OPS = (Opcode.CFG_IN, Opcode.CFG_WIN, Opcode.CFG_OUT, Opcode.CFG_MEM)
#: The loop bounds with derived registers (``bound - 2``, ``bound == 1``) for :class:`LoopDigit`.
BOUNDED = ("in_cw", "kw", "kh", "pool", "tiles", "out_w", "out_h")


def config_layout(cfg):
    """The configuration registers: every field of the ``CFG_*`` instructions, as wide as its
    largest value on ``cfg`` (:meth:`AccelConfig.field_limit`)."""
    return data.StructLayout({f.name: range(cfg.field_limit(op, f.name) + 1)
                              for op in CFG_OPS for f in isa.INSTRUCTIONS[op].fields})


#: The loop bounds given as a count after the first (``bound = field + 1``), by bound name.
EXTRA_BOUNDS = {"images": "extra_images", "w_planes": "extra_w_planes"}


def bounds_layout(cfg):
    """Registers derived from the loop bounds: ``m2`` (bound - 2) and ``is1`` (bound == 1) of
    :data:`BOUNDED`, of ``in_planes`` with bit-serial inputs, of the image count
    (``images``: ``extra_images + 1``) with an image loop and of the weight planes
    (``w_planes``: ``extra_w_planes + 1``) with multi-plane weight kinds."""
    cl = config_layout(cfg)
    names = BOUNDED + (("in_planes",) if cfg.core.bit_serial else ())
    fields = {name: data.StructLayout({"m2": cl[name].shape, "is1": 1}) for name in names}
    extra = (("images",) if cfg.max_images > 1 else ()) + (
        ("w_planes",) if cfg.core.weight_planes > 1 else ())
    for name in extra:
        fields[name] = data.StructLayout({"m2": cl[EXTRA_BOUNDS[name]].shape, "is1": 1})
    return data.StructLayout(fields)


def _width(n):
    """Bits of ``Signal(range(n))``."""
    return Shape.cast(range(n)).width


def _counter(cfg, op, name, signal_name):
    """A loop counter over field ``name`` of ``op``, as wide as this configuration needs."""
    return Signal(range(max(2, cfg.field_limit(op, name))), name=signal_name)


def beat_layout(cfg):
    """A beat's command: only what changes within a RUN travels down the pipeline (the
    configuration registers hold until the RUN ends)."""
    core = cfg.core
    return data.StructLayout({
        "sub": 1, "last": 1, "shl": 1, "neg_plane": 1, "last_word": 1,
        "w_addr": core.w_addr_bits, "tile": _width(max(2, cfg.field_limit(Opcode.CFG_MEM, "tiles"))),
        **({"r_addr": _width(cfg.res_depth)} if core.chain else {})})


def fetch_layout(cfg):
    """What the address generator hands the activation fetch per beat: the buffer address
    (modulo the buffers' depth), the padding test, the bit plane and the command."""
    plane = {"plane": _width(cfg.core.act_bits)} if cfg.core.bit_serial else {}
    return data.StructLayout({"addr": ceil_log2(cfg.act_depth), "inside": 1, **plane,
                              "beat": beat_layout(cfg)})


def _buffer_port(cfg, kind):
    """Signature of an activation buffer's read or write port."""
    core = cfg.core
    if kind == "read":
        return ReadPort.Signature(addr_width=ceil_log2(cfg.act_depth), shape=core.simd)
    return WritePort.Signature(addr_width=ceil_log2(cfg.act_depth), shape=core.simd,
                               granularity=buffer_granularity(cfg))


def buffer_granularity(cfg):
    """The activation buffers' write granularity: with a weight store, RUNs over neuron-fold
    ranges write P-lane slots of a word."""
    core = cfg.core
    return core.pe if cfg.store_depth and core.pe < core.simd else None


def _bipolar(cfg, r):
    """The input is bipolar (XNOR lanes); always without bit-serial inputs."""
    return r.in_bipolar if cfg.core.bit_serial else Const(1)


def _bound(bounds, name):
    """The :class:`LoopDigit` registers of bound ``name``."""
    return bounds[name].m2, bounds[name].is1


class Controller(wiring.Component):
    """Fetch, decode and sequencing of a program, its configuration registers and the cycle
    counter.

    Members
    -------
    start : In(1); busy, done, error, error_code, cycles : Out
        As :class:`~tritium.hw.accel.Accelerator`'s.
    prog : In(ReadPort.Signature)
        The program memory's read port.
    config : Out(config_layout(cfg)); bounds : Out(bounds_layout(cfg))
        The configuration registers and the loop bounds' derived registers.
    run_start : Out(1)
        Pulse: a RUN issues (its configuration registers are final).
    running : Out(1); run_done : In(1)
        A RUN is in progress; it ends with ``run_done``.
    load_start : Out(1), load_args : Out; load_busy : In(1)
        A ``LOAD_W`` issues with its arguments; the copy engine is busy.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "start": In(1), "busy": Out(1), "done": Out(1), "error": Out(1),
            "error_code": Out(ERR_BITS), "cycles": Out(32),
            "prog": In(ReadPort.Signature(addr_width=ceil_log2(cfg.prog_depth), shape=isa.INSTR_BITS)),
            "config": Out(config_layout(cfg)), "bounds": Out(bounds_layout(cfg)),
            "run_start": Out(1), "running": Out(1), "run_done": In(1),
            "load_start": Out(1), "load_args": Out(isa.instruction_layout()["args"].shape["load_w"].shape),
            "load_busy": In(1),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        insn = Signal(isa.instruction_layout())     # the instruction being executed (a register)
        m.d.comb += self.load_args.eq(insn.args.load_w)
        r = self._registers(m)

        pc = Signal(range(cfg.prog_depth + 1))      # the address of insn
        # The address the read port fetches next: pc + 2 while executing (the read data
        # holds instruction pc + 1), 0 while idle (the start's fetch needs no multiplexer).
        fetch_addr = Signal(range(cfg.prog_depth + 3))
        self._cycle_counter(m)

        # The fetch pipeline: the instruction register insn holds instruction pc, the
        # program memory's read data the next one (prefetched). When the controller moves
        # on, insn takes the read data and the read port fetches the one after (read
        # enable); a stall holds both. The decode starts from flip-flops, and the read
        # port's address and enable come from registers and that decode: no block RAM
        # clock-to-output time in the loop. Filling the pipeline after start costs one
        # cycle per program run (START_CYCLES; docs/accelerator.md, "Timing").
        fetch = Signal()            # insn <= read data; read the next; pc steps
        m.d.comb += [self.prog.addr.eq(fetch_addr), self.prog.en.eq(fetch)]
        # The instruction's kind, decoded as it enters insn (from the read data) and held
        # beside it in one-hot flags, and "pc is past the program memory", registered as pc
        # steps: EXEC's fetch, its stalls and its state changes start from these flip-flops
        # rather than from a decode of insn: no decode between insn and fetch_addr
        # (docs/timing.md).
        kinds = {"cfg": CFG_OPS, "run": (Opcode.RUN,), "end": (Opcode.END,), "sync": (Opcode.SYNC,),
                 "load": (Opcode.LOAD_W,) if cfg.store_depth else ()}
        is_op = {k: Signal(name=f"insn_is_{k}") for k in kinds}
        next_op = isa.instruction_layout()(self.prog.data).opcode
        pc_over = Signal()          # pc >= prog_depth
        with m.If(fetch):
            m.d.sync += [insn.eq(self.prog.data), pc.eq(pc + 1), fetch_addr.eq(fetch_addr + 1),
                         pc_over.eq(pc + 1 >= cfg.prog_depth)]
            m.d.sync += [is_op[k].eq(Cat(*(next_op == op for op in ops)).any() if ops else 0)
                         for k, ops in kinds.items()]
        load_busy = self.load_busy
        with m.FSM(name="ctrl") as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.comb += fetch.eq(1)
                    m.d.sync += [self.done.eq(0), self.error.eq(0),
                                 self.error_code.eq(ERR_NONE)]
                    m.next = "FILL"
            with m.State("FILL"):
                # Instruction 0 into insn, instruction 1 read.
                m.d.comb += fetch.eq(1)
                m.d.sync += [pc.eq(0), pc_over.eq(0)]
                m.next = "EXEC"
            with m.State("EXEC"):
                with m.If(pc_over):
                    m.d.sync += [self.error.eq(1), self.error_code.eq(ERR_PC_OVERFLOW),
                                 fetch_addr.eq(0)]
                    m.next = "IDLE"
                # RUN (with wait_w), LOAD_W and END stall while a copy runs.
                with m.Elif(is_op["cfg"]):
                    with m.Switch(insn.opcode):
                        for op in kinds["cfg"]:
                            with m.Case(op):
                                args = getattr(insn.args, op.name.lower())
                                for f in isa.INSTRUCTIONS[op].fields:
                                    m.d.sync += r[f.name].eq(getattr(args, f.name))
                    m.d.comb += fetch.eq(1)
                with m.Elif(is_op["run"]):
                    with m.If(~(insn.args.run.wait_w & load_busy)):
                        m.d.comb += [fetch.eq(1), self.run_start.eq(1)]
                        m.d.sync += self.running.eq(1)
                        m.next = "RUN"
                with m.Elif(is_op["end"]):
                    with m.If(~load_busy):
                        m.d.sync += [self.done.eq(1), fetch_addr.eq(0)]
                        m.next = "IDLE"
                with m.Elif(is_op["load"]):
                    with m.If(~load_busy):
                        m.d.comb += [fetch.eq(1), self.load_start.eq(1)]
                with m.Elif(is_op["sync"]):
                    m.d.comb += fetch.eq(1)
                with m.Else():
                    m.d.sync += [self.error.eq(1), self.error_code.eq(ERR_BAD_OPCODE),
                                 fetch_addr.eq(0)]
                    m.next = "IDLE"
            with m.State("RUN"):
                with m.If(self.run_done):
                    m.d.sync += self.running.eq(0)
                    m.next = "EXEC"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m

    def _registers(self, m):
        """The configuration registers (reset 0; written by the controller's CFG_*) onto
        ``config``, and their bounds' derived registers onto ``bounds``. The configuration
        registers are stable from the cycle after their CFG instruction and the loop
        counters first step a cycle after the RUN issues, so the derived registers are
        ready by then."""
        r = {name: Signal(field.shape, name=f"r_{name}") for name, field in self.config.shape()}
        m.d.comb += [self.config[name].eq(reg) for name, reg in r.items()]
        for name, field in self.bounds.shape():
            if name in EXTRA_BOUNDS:
                extra = r[EXTRA_BOUNDS[name]]
                m2, one = Signal.like(extra, name=f"{name}_m2"), Signal(name=f"{name}_is1")
                m.d.sync += [m2.eq(extra - 1), one.eq(extra == 0)]
            else:
                m2, one = bound_registers(m, r[name])
            m.d.comb += [self.bounds[name].m2.eq(m2), self.bounds[name].is1.eq(one)]
        return r

    def _cycle_counter(self, m):
        """Cycles from start until done / error."""
        counting = Signal()
        with m.If(self.start):
            m.d.sync += [self.cycles.eq(1), counting.eq(1)]
        with m.Elif(counting & ~self.done & ~self.error):
            m.d.sync += self.cycles.eq(self.cycles + 1)


class AddressGenerator(wiring.Component):
    """The loop nest of ``RUN`` (docs/accelerator.md): one beat per cycle from the cycle
    after ``run_start``, each with its activation address and command.

    Members
    -------
    config, bounds : In
        The controller's configuration registers and derived bound registers.
    run_start : In(1)
        Pulse: a RUN starts.
    beats : Out(stream.Signature(fetch_layout(cfg), always_ready=True))
        The beats, :attr:`AccelConfig.address_stages` - 1 - ``act_reg`` cycles after their
        loop counters; ``addr`` is combinational (it goes to the buffers' read ports).
    """

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "config": In(config_layout(cfg)), "bounds": In(bounds_layout(cfg)), "run_start": In(1),
            "beats": Out(stream.Signature(fetch_layout(cfg), always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        issuing = Signal()
        beat, position = self._loops(m, issuing)
        self._address(m, beat, position, issuing)
        return m

    def _loops(self, m, issuing):
        """The loop counters and the beat's command; returns the command and the counters
        and running sums the address stages read."""
        cfg, core, r, b = self.cfg, self.cfg.core, self.config, self.bounds
        # Loop counters, outermost first: (img,) oy, ox, tile, py, px, (weight plane,) plane
        # (down), ky, kx, c, sub; with both plane kinds one diagonal digit replaces the two.
        # Every counter and running sum is as wide as this configuration needs
        # (AccelConfig.field_limit, the weight-bank address), not as its ISA field. A core
        # without bit-serial inputs has no plane counter (one plane) and no second beat.
        oy, ox = _counter(cfg, Opcode.CFG_OUT, "out_h", "oy"), _counter(cfg, Opcode.CFG_OUT, "out_w", "ox")
        tile = _counter(cfg, Opcode.CFG_MEM, "tiles", "tile")
        py, px = Signal(range(8), name="py"), Signal(range(8), name="px")
        ky, kx = _counter(cfg, Opcode.CFG_WIN, "kh", "ky"), _counter(cfg, Opcode.CFG_WIN, "kw", "kx")
        cw = _counter(cfg, Opcode.CFG_IN, "in_cw", "cw")
        sub = Signal()              # second beat (and_m) of a ternary K-bit word
        # word within the row: (wp*kh*kw + ky*kw + kx)*in_cw + cw (planes top plane first)
        j = Signal(core.w_addr_bits)
        tile_w = Signal(core.w_addr_bits)   # tile * words_per_row (both modulo the bank depth)

        bipolar = _bipolar(cfg, r)
        two_beats = r.ternary & ~bipolar if core.ternary and core.bit_serial else Const(0)

        # Loop-counter digits with registered last-value flags (see LoopDigit).
        def digit(value, name):
            return LoopDigit(value, r[name], _bound(b, name))

        d_c, d_kx, d_ky = digit(cw, "in_cw"), digit(kx, "kw"), digit(ky, "kh")
        d_px, d_py = digit(px, "pool"), digit(py, "pool")
        d_tile = digit(tile, "tiles")
        d_ox, d_oy = digit(ox, "out_w"), digit(oy, "out_h")
        # The accumulation's digits (innermost first): the second beat of a ternary K-bit
        # word, channel words, kernel columns and rows, bit planes (counting down).
        inner = []
        if core.ternary and core.bit_serial:
            inner.append((LoopDigit(sub, Mux(two_beats, 2, 1), (Const(0), ~two_beats)), [], []))
        # Weight planes (top plane first, counting up): the words of the next plane follow in
        # the row, so j runs on where the kernel wraps and a plane's last word is not the
        # row's; plane_start flags a plane's first word (its beat doubles the accumulator).
        # With bit-serial inputs too, one DiagonalDigit walks both plane kinds (j: its
        # word_wrap).
        multi = core.weight_planes > 1
        diagonal = multi and core.bit_serial
        if multi:
            wp = Signal(range(core.weight_planes), name="w_plane")
            d_wp = None if diagonal else LoopDigit(wp, r.extra_w_planes + 1, _bound(b, "w_planes"))
            plane_start = Signal(name="w_plane_start")
            j_wrap = [] if diagonal else [j.eq(Mux(d_wp.last, 0, j + 1))]
        else:
            j_wrap = [j.eq(0)]
        inner += [(d_c, [j.eq(j + 1)], []), (d_kx, [j.eq(j + 1)], []), (d_ky, [j.eq(j + 1)], j_wrap)]
        k_ky = len(inner) - 1
        if core.bit_serial:
            plane = Signal(range(core.act_bits), name="plane")
            top_plane = Signal.like(plane, name="top_plane")
            m.d.sync += top_plane.eq(r.in_planes - 1)
            if diagonal:
                d_wp = DiagonalDigit(wp, plane, _bound(b, "w_planes"), _bound(b, "in_planes"),
                                     top_plane, r.in_planes - 1,
                                     (r.extra_w_planes == 0) & (r.in_planes == 1))
                j_wrap += d_wp.word_wrap(j, Signal(core.w_addr_bits, name="w_plane_base"))
            else:
                inner.append((LoopDigit(plane, r.in_planes, _bound(b, "in_planes"), top=top_plane), [], []))
        else:
            plane = top_plane = Const(0)
        if multi:
            inner.append((d_wp, [], []))
        step_res = []
        if core.chain:
            # The result entry of each beat (the chain's slices write their own result
            # memories): out_base + pixel * tiles + tile, as the output path counts it.
            i_res_base = Signal(range(cfg.res_depth))
            step_res = [i_res_base.eq(i_res_base + r.tiles)]
        # The window's input position without a multiply: running sums of the strided
        # output position, (ox*pool + px)*sw = ox_s + px_s (ox_s steps by pool*sw, px_s by
        # sw), likewise for y, beside their counters (docs/accelerator.md, "Timing").
        cy_end, cx_end = self._window_ends()
        oy_s, py_s = Signal(range(7 * cy_end), name="oy_s"), Signal(range(50), name="py_s")
        ox_s, px_s = Signal(range(7 * cx_end), name="ox_s"), Signal(range(50), name="px_s")
        pool_sh, pool_sw = Signal(range(50), name="pool_sh"), Signal(range(50), name="pool_sw")
        m.d.sync += [pool_sh.eq(r.pool * r.sh), pool_sw.eq(r.pool * r.sw)]
        outer = [
            (d_px, [px_s.eq(px_s + r.sw)], [px_s.eq(0)]),
            (d_py, [py_s.eq(py_s + r.sh)], [py_s.eq(0)]),
            # j + 1 = kh*kw*in_cw (words per row) when the tile steps: no multiply.
            (d_tile, [tile_w.eq(tile_w + j + 1)], [tile_w.eq(0)]),
            (d_ox, [*step_res, ox_s.eq(ox_s + pool_sw)], [*step_res, ox_s.eq(0)]),
            (d_oy, [oy_s.eq(oy_s + pool_sh)], [oy_s.eq(0)]),
        ]
        low = self._low
        # The image loop (max_images > 1): image i's rows follow image i-1's in the input
        # tensor, so its input row is i * in_h + iy. oy_abs runs beside oy_s with the image's
        # first row added (modulo the address width), from img_next (the next image's first
        # row) when oy wraps; the padding test keeps using the row within the image.
        oy_abs = None
        if cfg.max_images > 1:
            img = Signal(range(cfg.max_images), name="img")
            d_img = LoopDigit(img, r.extra_images + 1, _bound(b, "images"))
            abits = ceil_log2(cfg.act_depth)
            oy_abs, img_next = Signal(abits, name="oy_abs"), Signal(abits, name="img_next")
            outer[-1][1].append(oy_abs.eq(oy_abs + pool_sh))
            outer[-1][2].append(oy_abs.eq(img_next))
            outer.append((d_img, [img_next.eq(img_next + low(r.in_h))], []))
        last_c = d_c.last
        # The last beat of one accumulation (one PE result): every inner digit at its last
        # value. A register, set a step ahead from the inner digits' next flags, so the outer
        # digits' carry is one AND of registers (and the inner carries at most four).
        end_acc = Signal()
        carries = [Cat(*(d.last for d, *_ in inner[:k])).all() for k in range(len(inner))]
        # The outer digits likewise: pre[k], every outer digit inside digit k at its last
        # value, is a register set a step ahead, so digit k's carry is end_acc & pre[k].
        outer_carries = Carries([d for d, *_ in outer], end_acc, "outer")

        # Between RUNs the counters hold the next RUN's start values: its configuration
        # registers are final in the cycle its RUN instruction issues, so no path runs
        # from the instruction's decode into the counters.
        with m.If(~issuing):
            m.d.sync += [oy.eq(0), ox.eq(0), tile.eq(0), py.eq(0), px.eq(0),
                         ky.eq(0), kx.eq(0), cw.eq(0), sub.eq(0), j.eq(0), tile_w.eq(0),
                         oy_s.eq(0), py_s.eq(0), ox_s.eq(0), px_s.eq(0)]
            if cfg.max_images > 1:
                m.d.sync += [img.eq(0), oy_abs.eq(0), img_next.eq(low(r.in_h))]
            if core.chain:
                m.d.sync += i_res_base.eq(r.out_base)
            if core.bit_serial:
                m.d.sync += plane.eq(r.in_planes - 1)
            if multi:
                m.d.sync += [wp.eq(0), plane_start.eq(1)]
            m.d.sync += [d.start for d, *_ in inner + outer]
            m.d.sync += end_acc.eq(Cat(*(d.first for d, *_ in inner)).all())
            m.d.sync += outer_carries.start
            with m.If(self.run_start):
                m.d.sync += issuing.eq(1)
        with m.Else():
            m.d.sync += end_acc.eq(Cat(*(d.next_last(c) for (d, *_), c in zip(inner, carries))).all())
            if multi:
                m.d.sync += plane_start.eq(carries[k_ky] & d_ky.last)
            odometer(m, [(d.last, [*d.step, *step], [*d.wrap, *wrap]) for d, step, wrap in inner],
                     done=[])
            m.d.sync += outer_carries.step
            odometer(m, [(d.last, [*d.step, *step], [*d.wrap, *wrap]) for d, step, wrap in outer],
                     done=[issuing.eq(0)], carries=outer_carries.carries)

        w_shl = plane_start & (d_wp.shl if diagonal else wp != 0) if multi else Const(0)
        beat = self._command(m, dict(diagonal=diagonal, sub=sub, end_acc=end_acc, plane=plane, top_plane=top_plane,
                                     j=j, last_c=last_c, tile_w=tile_w, tile=tile, w_shl=w_shl,
                                     i_res_base=i_res_base if core.chain else None))
        position = {"oy_s": oy_s, "py_s": py_s, "ox_s": ox_s, "px_s": px_s, "ky": ky, "kx": kx,
                    "cw": cw, "plane": plane, "oy_abs": oy_abs}
        return beat, position

    def _command(self, m, n):
        """The beat's command from the loop counters ``n``: only what changes within a RUN
        (the configuration registers hold until the RUN ends); the rest is decoded at the
        core's input (the threshold set t_base + tile travels as the tile)."""
        cfg, r = self.cfg, self.config
        bipolar = _bipolar(cfg, r)
        msb = n["plane"] == n["top_plane"]
        beat = Signal(beat_layout(cfg))
        if cfg.core.chain:
            m.d.comb += beat.r_addr.eq(n["i_res_base"] + n["tile"])
        m.d.comb += [
            beat.sub.eq(n["sub"]),
            beat.last.eq(n["end_acc"]),
            # Horner: the first word of every bit plane but the top one (k-bit inputs), of
            # every weight plane but the top one (bipolar inputs), of every diagonal but the
            # first (both).
            beat.shl.eq(n["w_shl"] if n["diagonal"] else
                        Mux(bipolar, n["w_shl"], ~msb & (n["j"] == 0) & ~n["sub"])),
            beat.neg_plane.eq(r.in_signed & msb & ~bipolar),
            beat.last_word.eq(n["last_c"]),
            beat.w_addr.eq(r.w_base + n["tile_w"] + n["j"]),
            beat.tile.eq(n["tile"]),
        ]
        return beat

    def _window_ends(self):
        """Bounds of the strided window positions' row and column sums (7 * out_h, 7 * out_w)."""
        return tuple(7 * max(2, self.cfg.field_limit(Opcode.CFG_OUT, name)) for name in ("out_h", "out_w"))

    def _low(self, value):
        """``value`` modulo the buffers' read address width (from the input pixel on,
        addresses are modulo it)."""
        return value[:min(ceil_log2(self.cfg.act_depth), len(value))]

    def _address(self, m, beat, position, issuing):
        """The activation address, at most one multiply per stage (docs/accelerator.md,
        "Timing"); the beat's command and the signals the read needs travel beside it."""
        cfg, core, r = self.cfg, self.cfg.core, self.config
        p, low, abits = position, self._low, ceil_log2(cfg.act_depth)
        cy_end, cx_end = self._window_ends()
        # Stage A: the strided window position of the output pixel, (oy*pool + py)*sh
        # (below 7 * 7 * out_h), and the kernel offsets ky - ph, kx - pw (one adder each).
        cy, cx = Signal(range(7 * cy_end), name="cy"), Signal(range(7 * cx_end), name="cx")
        ky_a, kx_a = Signal(range(-15, 64), name="ky_ph"), Signal(range(-15, 64), name="kx_pw")
        m.d.sync += [cy.eq(p["oy_s"] + p["py_s"]), cx.eq(p["ox_s"] + p["px_s"]),
                     ky_a.eq(p["ky"] - r.ph), kx_a.eq(p["kx"] - r.pw)]
        # Stage B: the input pixel's coordinates (negative or past the edge: padding),
        # from -ph >= -15 to 7 * cy + kh - 1 <= 7 * cy + 62.
        iy = Signal(range(-15, 7 * cy_end + 63), name="iy")
        ix = Signal(range(-15, 7 * cx_end + 63), name="ix")
        m.d.sync += [iy.eq(cy + ky_a), ix.eq(cx + kx_a)]
        # The same rows counted from the tensor's first image (modulo the address width).
        row = iy
        if cfg.max_images > 1:
            cy_abs, row = Signal(abits, name="cy_abs"), Signal(abits, name="iy_abs")
            m.d.sync += [cy_abs.eq(p["oy_abs"] + p["py_s"]), row.eq(cy_abs + ky_a)]
        # Stage C: the padding test and the pixel index. From here on the arithmetic is
        # modulo the read port's width (its address drops the upper bits anyway).
        inside = Signal()
        pixel = Signal(abits)
        inside_b = (iy >= 0) & (iy < r.in_h) & (ix >= 0) & (ix < r.in_w)
        m.d.sync += [inside.eq(inside_b),
                     pixel.eq(Mux(inside_b, product(m, low(row), low(r.in_w)) + low(ix), 0))]
        # Stage D: the pixel's plane. Stage E: its word; then (combinational, into the
        # read port) the tensor's base.
        pixel_plane = Signal(abits)
        if core.bit_serial:
            plane_c = delayed(m, p["plane"], "a", "b", "c")
            m.d.sync += pixel_plane.eq(pixel * low(r.in_planes) + plane_c)
        else:
            plane_c = Const(0)
            m.d.sync += pixel_plane.eq(pixel)
        cw_d = delayed(m, low(p["cw"]), "a", "b", "c", "d")
        word_ofs = Signal(abits)
        m.d.sync += word_ofs.eq(product(m, pixel_plane, low(r.in_cw)) + cw_d)
        out = self.beats.payload
        m.d.comb += [
            self.beats.valid.eq(delayed(m, issuing, "a", "b", "c", "d", "e")),
            out.addr.eq(low(r.in_base) + word_ofs),
            out.beat.eq(delayed(m, beat, "a", "b", "c", "d", "e")),
            out.inside.eq(delayed(m, inside, "d", "e")),
        ]
        if core.bit_serial:
            m.d.comb += out.plane.eq(delayed(m, plane_c, "d", "e"))


class ActivationFetch(wiring.Component):
    """Stage 1 reads the activation buffers at each beat's address; stage 2 hands the core
    the input word or the pad word with the beat's command (one more register stage with
    ``act_reg``).

    Members
    -------
    config : In(config_layout(cfg))
    beats : In(stream.Signature(fetch_layout(cfg), always_ready=True))
        From the :class:`AddressGenerator`.
    buf0, buf1 : In(ReadPort.Signature)
        The activation buffers' read ports.
    words : Out(stream.Signature(input_layout))
        To the core (the chain's input layout with ``cfg.core.chain``).
    """

    def __init__(self, cfg):
        self.cfg = cfg
        core = cfg.core
        layout = chain_input_layout(core, cfg.res_depth) if core.chain else input_layout(core)
        super().__init__({
            "config": In(config_layout(cfg)),
            "beats": In(stream.Signature(fetch_layout(cfg), always_ready=True)),
            "buf0": In(_buffer_port(cfg, "read")), "buf1": In(_buffer_port(cfg, "read")),
            "words": Out(stream.Signature(layout)),
        })

    def elaborate(self, platform):
        cfg, core, r = self.cfg, self.cfg.core, self.config
        s = core.simd
        m = Module()
        bipolar = _bipolar(cfg, r)
        # Stage 1: activation-buffer read; the command and the word's selection follow:
        # buffer 0, buffer 1 (inside), all ones (a pad of ones), the last-word mask (a pad
        # of ones in a pixel's last channel word) or nothing (a pad of zeros).
        inp = self.beats.payload
        beat_e, inside_e = inp.beat, inp.inside
        plane_e = inp.plane if core.bit_serial else Const(0)
        v1 = Signal()
        beat1 = Signal.like(beat_e, name="beat1")
        pad_bit = (r.pad_code >> plane_e)[0]
        from_buf0, from_buf1, pad_full, pad_masked = (Signal(name=n) for n in (
            "from_buf0", "from_buf1", "pad_full", "pad_masked"))
        m.d.sync += [v1.eq(self.beats.valid),
                     beat1.eq(beat_e),
                     from_buf0.eq(inside_e & ~r.in_buf), from_buf1.eq(inside_e & r.in_buf),
                     pad_full.eq(~inside_e & pad_bit & ~beat_e.last_word),
                     pad_masked.eq(~inside_e & pad_bit & beat_e.last_word)]
        for rd in (self.buf0, self.buf1):
            m.d.comb += [rd.addr.eq(inp.addr), rd.en.eq(1)]

        op = Signal(2)
        with m.If(bipolar):
            m.d.comb += op.eq(OP_MXNOR if core.ternary else OP_XNOR)
        with m.Elif(beat1.sub):
            m.d.comb += op.eq(OP_AND_M)
        with m.Else():
            m.d.comb += op.eq(OP_AND_S)
        cmd1 = Signal.like(self.words.payload.cmd)
        m.d.comb += [
            cmd1.op.eq(op),
            cmd1.last.eq(beat1.last),
            cmd1.shl.eq(beat1.shl),
            cmd1.neg.eq(Mux(beat1.sub, ~beat1.neg_plane, beat1.neg_plane)),
            cmd1.dbl.eq(~beat1.sub),
            cmd1.count.eq(~bipolar & ~r.ternary),
            cmd1.w_addr.eq(beat1.w_addr),
            cmd1.t_addr.eq(r.t_base + beat1.tile),
        ]

        # With act_reg, the read data into a register of its own (on ECP5 the block RAMs'
        # output register), the beat and its selection a cycle later beside it.
        words = [self.buf0.data, self.buf1.data]
        if cfg.act_reg:
            words = [delayed(m, w, "q", reset_less=True) for w in words]
            v1, cmd1, from_buf0, from_buf1, pad_full, pad_masked = (
                delayed(m, sig, "q") for sig in (v1, cmd1, from_buf0, from_buf1, pad_full,
                                                 pad_masked))
            beat1 = delayed(m, beat1, "q")
        # Stage 2: the input word (or the pad word) goes to the core.
        last_mask = Signal(s)       # lanes below last_lanes (all from S up); config only
        m.d.sync += last_mask.eq(thermometer(r.last_lanes, s))
        out = self.words
        m.d.comb += [
            out.valid.eq(v1),
            out.payload.x.eq((words[0] & from_buf0.replicate(s)) |
                             (words[1] & from_buf1.replicate(s)) |
                             pad_full.replicate(s) | (last_mask & pad_masked.replicate(s))),
            out.payload.cmd.eq(cmd1),
        ]
        if core.chain:
            m.d.comb += [out.payload.res.en.eq(beat1.last & (r.out_bits == 0)),
                         out.payload.res.addr.eq(beat1.r_addr)]
        return m


class OutputPath(wiring.Component):
    """The core's results through pooling and the packer into the activation buffers (one
    packer and one word per output bit plane), or (a raw layer) into the result memory;
    between RUNs, the host's writes into buffer 0.

    Members
    -------
    config, bounds : In
        The controller's configuration registers and derived bound registers.
    running : In(1)
        A RUN is in progress.
    results : In(stream.Signature(output_layout))
        From the core (the chain's output layout with ``cfg.core.chain``); always ready.
    act_we, act_addr, act_data : In
        The host's buffer-0 write (landing a cycle after it is presented).
    buf0, buf1 : In(WritePort.Signature)
        The activation buffers' write ports.
    res : In(WritePort.Signature) (only without ``cfg.core.chain``)
        The result memory's write port.
    result_done : Out(1)
        The RUN's last result is written (the run ends).
    """

    def __init__(self, cfg, res_layout):
        self.cfg = cfg
        core = cfg.core
        layout = chain_output_layout(core) if core.chain else output_layout(core)
        super().__init__({
            "config": In(config_layout(cfg)), "bounds": In(bounds_layout(cfg)), "running": In(1),
            "results": In(stream.Signature(layout)),
            "act_we": In(1), "act_addr": In(range(cfg.act_depth)), "act_data": In(core.simd),
            "buf0": In(_buffer_port(cfg, "write")), "buf1": In(_buffer_port(cfg, "write")),
            **({} if core.chain else {"res": In(WritePort.Signature(
                addr_width=ceil_log2(cfg.res_depth), shape=res_layout))}),
            "result_done": Out(1),
        })

    def elaborate(self, platform):
        cfg, core, r, b = self.cfg, self.cfg.core, self.config, self.bounds
        s, pe = core.simd, core.pe
        m = Module()
        m.d.comb += self.results.ready.eq(1)
        # The core's results, registered: its threshold compare ends its last cycle.
        out_valid = delayed(m, self.results.valid, "r")
        out = delayed(m, self.results.payload, "r", reset_less=core.data_every_step)
        o_oy, o_ox = _counter(cfg, Opcode.CFG_OUT, "out_h", "o_oy"), _counter(cfg, Opcode.CFG_OUT, "out_w", "o_ox")
        o_tile = _counter(cfg, Opcode.CFG_MEM, "tiles", "o_tile")
        o_py, o_px = Signal(range(8), name="o_py"), Signal(range(8), name="o_px")
        tiles_per_word = s // pe
        # A RUN over a range of neuron folds (weight streaming) starts at slot out_slot of
        # its first word and keeps the lanes below.
        slot0 = r.out_slot[:bits(max(tiles_per_word, 2) - 1)] if cfg.store_depth else 0
        o_word = Signal(ceil_log2(cfg.act_depth))   # channel word of the output pixel being packed (modulo)
        kbit = core.out_bits > 1
        # Pooling keeps each PE's running maximum: unsigned values of out_bits; with one
        # bit the maximum is an OR.
        pooled = Signal(data.ArrayLayout(core.out_bits, pe) if kbit else pe)
        # One packer per output bit plane (packer: plane 0).
        packers = [Signal(s, name="packer" if b == 0 else f"packer{b}") for b in range(core.out_bits)]
        packer = packers[0]
        out_digits = (LoopDigit(o_px, r.pool, _bound(b, "pool")),
                      LoopDigit(o_py, r.pool, _bound(b, "pool")),
                      LoopDigit(o_tile, r.tiles, _bound(b, "tiles")),
                      LoopDigit(o_ox, r.out_w, _bound(b, "out_w")),
                      LoopDigit(o_oy, r.out_h, _bound(b, "out_h")))
        o_last_px, o_last_py, o_last_tile = (d.last for d in out_digits[:3])
        o_starts = [o_oy.eq(0), o_ox.eq(0), o_tile.eq(0), o_py.eq(0), o_px.eq(0)]
        if cfg.max_images > 1:
            # The images' output pixels follow each other: only the end of the run moves out.
            o_img = Signal(range(cfg.max_images), name="o_img")
            out_digits += (LoopDigit(o_img, r.extra_images + 1, _bound(b, "images")),)
            o_starts.append(o_img.eq(0))
        out_carries = Carries(out_digits, out_valid, "out")
        first_pos = (o_px == 0) & (o_py == 0)
        last_pos = o_last_px & o_last_py
        if kbit:
            merged = Signal.like(pooled, name="merged")
            m.d.comb += [merged[p].eq(Mux(first_pos | (out.act[p] > pooled[p]), out.act[p], pooled[p]))
                         for p in range(pe)]
            planes = [Cat(merged[p][k] for p in range(pe)) for k in range(core.out_bits)]
        else:
            acts = Signal(pe)
            m.d.comb += acts.eq(Cat(out.act[p][0] for p in range(pe)))
            merged = Signal(pe)
            m.d.comb += merged.eq(Mux(first_pos, acts, pooled | acts))
            planes = [merged]
        raw = r.out_bits == 0

        # Running partial addresses of the output pixel (o_oy*out_w + o_ox): out_base plus
        # its multiple of out_cw (activation words) and of tiles (result entries).
        o_act_base = Signal(range(cfg.act_depth))
        o_res_base = Signal(range(cfg.res_depth))
        # The slot, decoded (from its upper and lower bits) into a one-hot lane-group select:
        # placing P bits is an AND, not a shifter; the slots from the current one up are
        # the complement of its thermometer.
        slot = Signal(range(max(tiles_per_word, 2)))
        sel, below = decodes(slot, tiles_per_word)
        placed = [Signal(s, name="placed" if k == 0 else f"placed{k}") for k in range(core.out_bits)]
        m.d.comb += [pl.eq(plane.replicate(tiles_per_word) &
                           Cat(sel[k].replicate(pe) for k in range(tiles_per_word)))
                     for pl, plane in zip(placed, planes)]
        # With k-bit outputs a pixel's words of plane b lie out_cw * b past its plane 0's:
        # the pixel base steps by out_cw * out_bits (a register set between RUNs).
        pixel_step = r.out_cw
        if kbit:
            pixel_step = Signal(len(r.out_cw) + len(r.out_bits), name="pixel_step")
            finishing = Signal()        # the last result is in: the RUN ends with its last plane
        with m.If(~self.running):           # the next RUN's start values (as the counters')
            m.d.sync += [*o_starts,
                         slot.eq(slot0), o_word.eq(0), *(pk.eq(0) for pk in packers),
                         self.result_done.eq(0), o_act_base.eq(r.out_base),
                         o_res_base.eq(r.out_base)]
            if kbit:
                m.d.sync += [pixel_step.eq(r.out_cw * r.out_bits), finishing.eq(0)]
            m.d.sync += [d.start for d in out_digits]
            m.d.sync += out_carries.start
        with m.Elif(out_valid):
            m.d.sync += out_carries.step
            # The next result belongs to the next pixel (row-major: the pixel index steps).
            with m.If(o_last_px & o_last_py & o_last_tile):
                m.d.sync += [o_act_base.eq(o_act_base + pixel_step),
                             o_res_base.eq(o_res_base + r.tiles)]
            # With k-bit outputs a RUN ends when its last word's last plane is written.
            done = [self.result_done.eq(r.out_bits < 2), finishing.eq(1)] if kbit else [
                self.result_done.eq(1)]
            odometer(m, [(d.last, d.step, d.wrap) for d in out_digits],
                     done=done, carries=out_carries.carries)
            m.d.sync += pooled.eq(merged)
            with m.If(last_pos & ~raw):
                # A completed word: plane 0 goes to the write register; planes 1 .. stay
                # in their packers, which _writes shifts out one a cycle (zeros behind).
                done_word = [packer.eq(0), *(pk.eq(pk | pl) for pk, pl in zip(packers[1:], placed[1:]))]
                with m.If(o_last_tile):
                    m.d.sync += [slot.eq(slot0), *done_word, o_word.eq(0)]
                with m.Elif(sel[-1]):
                    m.d.sync += [slot.eq(0), *done_word, o_word.eq(o_word + 1)]
                with m.Else():
                    m.d.sync += [slot.eq(slot + 1),
                                 *(pk.eq(pk | pl) for pk, pl in zip(packers, placed))]

        # A pooled result is written: every one into its slot (a weight store), or the
        # packer's word when it is full or the pixel's last tile is done.
        act_write = Signal()
        with m.If(self.running):
            if buffer_granularity(cfg) is not None:
                m.d.comb += act_write.eq(out_valid & last_pos & ~raw)
            else:
                m.d.comb += act_write.eq(out_valid & last_pos & ~raw & (o_last_tile | sel[-1]))
        self._writes(m, act_write, o_act_base + o_word, placed,
                     [pk | pl for pk, pl in zip(packers, placed)], Mux(o_last_tile, ~below, sel),
                     finishing if kbit else None, packers)
        # Raw results go to the result memory at once (from the register of the core's
        # results); the chain's slices have written theirs already.
        if not core.chain:
            m.d.comb += [
                self.res.en.eq(out_valid & self.running & raw),
                self.res.addr.eq(o_res_base + o_tile),
                self.res.data.eq(out.acc),
            ]
        return m

    def _writes(self, m, act_write, addr, placed, packed, slots, finishing, packers):
        """The activation buffers' writes: registered here, then by the memories. The last
        one lands in the cycle the RUN ends (run_done).

        With one write enable per P-lane slot (a weight store) every pooled result writes
        its own slot, the pixel's last tile also zeros into the slots above it (the
        packer's word would have had them): no packer, no slots kept. Without, the
        packer's word is written when it is full or the pixel's last tile is done.
        ``placed`` and ``packed`` hold one word per output bit plane: plane 0 is written
        at once, planes 1 .. out_bits - 1 in the cycles after, each ``out_cw`` words
        further (the compiler keeps results at least out_bits cycles apart): shifted out
        of the packers of planes 1 .. (``packers``, which keep a completed word), or with
        a weight store from a holding register. ``finishing`` (k-bit cores): the RUN's last result is in; it ends
        with its last plane's write.
        Between RUNs the same registers carry the host's writes into buffer 0 (a host
        write lands a cycle after it is presented): no multiplexer at the buffer's port.
        """
        cfg, r = self.cfg, self.config
        out_word, w_addr = Signal(cfg.core.simd), Signal(range(cfg.act_depth))
        n_en = len(self.buf0.en)
        w_slots = Signal(n_en)
        w_bufs = [Signal(name=f"w_buf{k}") for k in range(2)]     # buffer k is written
        slotted = buffer_granularity(cfg) is not None
        words = placed if slotted else packed
        # Planes 1 .. of the word being written, and how many of them are still to go.
        hold = [Signal(cfg.core.simd, name=f"hold{k}") for k in range(1, len(words))] if slotted \
            else packers[1:]
        left = Signal(range(len(words)), name="planes_left")

        # A pooled result's plane 0 (or nothing); with a weight store its later planes into
        # the holding register.
        fresh = [w_addr.eq(addr),
                 *(w_buf.eq(act_write & (r.out_buf == k)) for k, w_buf in enumerate(w_bufs)),
                 out_word.eq(words[0]),
                 w_slots.eq(slots if slotted else -1),
                 *(h.eq(w) for h, w in zip(hold, words[1:]) if slotted)]
        if hold:
            fresh.append(left.eq(Mux(act_write, r.out_bits - 1, 0)))
        with m.If(self.running):
            if hold:
                with m.If(left != 0):   # the next plane, out_cw words on; buffer and slots hold
                    m.d.sync += [w_addr.eq(w_addr + r.out_cw), out_word.eq(hold[0]),
                                 *(h.eq(n) for h, n in zip(hold, hold[1:] + [0])),
                                 left.eq(left - 1)]
                    with m.If(finishing & (left == 1)):
                        m.d.sync += self.result_done.eq(1)
                with m.Else():
                    m.d.sync += fresh
            else:
                m.d.sync += fresh
        with m.Else():
            m.d.sync += [w_addr.eq(self.act_addr), out_word.eq(self.act_data), w_slots.eq(-1),
                         w_bufs[0].eq(self.act_we), w_bufs[1].eq(0)]
            if hold:
                m.d.sync += left.eq(0)
        for wr, w_buf in zip((self.buf0, self.buf1), w_bufs):
            m.d.comb += [wr.en.eq(w_buf.replicate(n_en) & w_slots), wr.addr.eq(w_addr),
                         wr.data.eq(out_word)]


class WeightCopy(wiring.Component):
    """Weight-bank writes: the host's, or those of the ``LOAD_W`` copy engine from the
    weight store.

    The engine reads one store word per cycle (bank-major: bank 0's ``count`` words from
    ``src``, then bank 1's, ...) and writes it into its bank one cycle later; it runs
    beside the controller, so a RUN can read one region of the banks while the engine
    fills another.

    Members
    -------
    start : In(1), args : In(LOAD_W arguments)
        Pulse: copy; the arguments of the fetched instruction (read while idle).
    busy : Out(1)
        A copy runs (its reads or its last write).
    store_rd, store_wr : In(ReadPort.Signature), In(WritePort.Signature)
        The weight store's ports (one address: single-port RAM).
    sload : In(store_load_signature)
        The host's store write (while no copy runs).
    wload : In(weight_load_signature)
        The host's bank write.
    banks : Out(weight_load_signature)
        To the core's weight banks.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        core = cfg.core
        store = dict(addr_width=ceil_log2(cfg.store_depth), shape=core.weight_width)
        super().__init__({
            "start": In(1), "args": In(isa.instruction_layout()["args"].shape["load_w"].shape),
            "busy": Out(1),
            "store_rd": In(ReadPort.Signature(**store)), "store_wr": In(WritePort.Signature(**store)),
            "sload": In(store_load_signature(cfg)), "wload": In(weight_load_signature(core)),
            "banks": Out(weight_load_signature(core)),
        })

    def elaborate(self, platform):
        cfg, core, args = self.cfg, self.cfg.core, self.args
        m = Module()
        st_rd, st_wr = self.store_rd, self.store_wr
        reading = Signal()          # a store word is read this cycle
        src = Signal(range(cfg.store_depth))
        # The bank address and the word counters hold a bank's worth (the compiler
        # refuses a longer copy: AccelConfig.field_limit).
        base, i = Signal(core.w_addr_bits), Signal(range(cfg.field_limit(Opcode.LOAD_W, "count")))
        # Words left in this bank, minus one: its last word is a test for zero (no
        # comparison through a subtraction on the path into the bank counter).
        count_m1, left = Signal.like(i), Signal.like(i)
        bank = Signal(range(max(core.pe, 2)))
        w_valid = Signal()          # the word read last cycle is written this cycle
        w_bank, w_addr = Signal.like(bank), Signal(core.w_addr_bits)
        with m.If(~reading):    # the fetched instruction's arguments (used if it is LOAD_W)
            m.d.sync += [src.eq(args.src), count_m1.eq(args.count - 1),
                         left.eq(args.count - 1), base.eq(args.addr), i.eq(0), bank.eq(0)]
            with m.If(self.start):
                m.d.sync += reading.eq(1)
        with m.Else():
            m.d.sync += src.eq(src + 1)
            odometer(m, [
                (left == 0, [i.eq(i + 1), left.eq(left - 1)], [i.eq(0), left.eq(count_m1)]),
                (bank == core.pe - 1, [bank.eq(bank + 1)], [bank.eq(0)]),
            ], done=[reading.eq(0)])
        m.d.sync += [w_valid.eq(reading), w_bank.eq(bank), w_addr.eq(base + i)]
        # One address for both store ports (single-port RAM: the host writes while idle).
        addr = Signal.like(src)
        host, banks = self.wload, self.banks
        m.d.comb += [
            addr.eq(Mux(reading, src, self.sload.addr)),
            st_rd.addr.eq(addr), st_rd.en.eq(reading),
            st_wr.addr.eq(addr), st_wr.en.eq(self.sload.en & ~reading),
            st_wr.data.eq(self.sload.data),
            banks.en.eq(Mux(w_valid, 1, host.en)),
            banks.bank.eq(Mux(w_valid, w_bank, host.bank)),
            banks.addr.eq(Mux(w_valid, w_addr, host.addr)),
            banks.data.eq(Mux(w_valid, st_rd.data, host.data)),
            self.busy.eq(reading | w_valid),
        ]
        return m
