"""The accelerator: controller, address generator, buffers and output path around the core.

With ``store_depth > 0`` it also has a weight store and the ``LOAD_W`` copy
engine that fills the weight banks from it while RUNs execute (weight
streaming). See docs/accelerator.md for the layouts, the loop nest of ``RUN``,
weight streaming and the timing, which :mod:`tritium.sw.isasim` models cycle
for cycle.
"""

import re

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from . import isa
from .accel_config import AccelConfig
from .config import OP_AND_M, OP_AND_S, OP_MXNOR, OP_XNOR, ConfigError
from .chain import PEChain
from .core import Core
from .isa import Opcode
from .layouts import (NO_RW_CHECK, store_load_signature, threshold_load_signature,
                      weight_load_signature)
from .toolchain import LUTRAM_OK_ATTR
# Status codes reported in ``error_code``: defined once, with the host protocol's.
from .protocol import ERR_BAD_OPCODE, ERR_BITS, ERR_NONE, ERR_PC_OVERFLOW

#: Name of the accelerator's top-level Verilog module.
ACCEL_TOP = "tritium_accel"


def _field_regs(cfg, spec, name_prefix=""):
    """One register per field of an instruction (reset 0), as wide as the field's largest
    value on ``cfg`` (:meth:`AccelConfig.field_limit`)."""
    return {f.name: Signal(range(cfg.field_limit(spec.opcode, f.name) + 1), name=f"{name_prefix}{f.name}")
            for f in spec.fields}


class Accelerator(wiring.Component):
    """PE-array accelerator executing tritium programs.

    Parameters
    ----------
    cfg : AccelConfig
    init : MemoryInit or None
        Initial contents of the program, weight and threshold memories
        (:mod:`tritium.hw.meminit`): a bitstream that holds a model. ``None``:
        all zero, loaded by the host.

    Members
    -------
    start : In(1)
        Pulse: run the program from address 0.
    busy, done : Out(1)
        ``done`` stays high from END until the next ``start``.
    error : Out(1), error_code : Out(4)
        Set (and the core stops) on an illegal instruction or a program counter
        past the program memory.
    cycles : Out(32)
        Cycles from ``start`` to ``done`` of the last run.
    prog_we, prog_addr, prog_data : In
        Program-memory write port (host).
    act_we, act_addr, act_data : In
        Activation buffer 0 write port (host: the network input; a write lands one
        cycle after it is presented, and none while a RUN is in progress).
    res_addr : In, res_data : Out
        Result-memory read port: P signed accumulators, :attr:`AccelConfig.res_latency`
        cycles after the address (one cycle; P + 2 in a chain).
    res_sel : In, res_word : Out (only with ``cfg.core.chain``)
        Accumulator ``res_sel`` of entry ``res_addr``, ``res_latency`` cycles after both
        (the host link's read: gathered along the chain's slices, hw/chain.py).
    wload, tload : In
        Weight-bank and threshold-memory write ports of the core.
    sload : In (only with ``cfg.store_depth > 0``)
        Weight-store write port (host; while no ``LOAD_W`` copy is running).
    """

    def __init__(self, cfg, *, init=None):
        if not isinstance(cfg, AccelConfig):
            raise TypeError("Accelerator needs an AccelConfig")
        if cfg.core.out_bits != 1:
            self._MustUse__silence = True     # refused: never elaborated, no warning
            raise ConfigError(f"the accelerator's output path packs bipolar activations only: it "
                              f"needs out_bits = 1 (got {cfg.core.out_bits})")
        if init is not None:
            init.check(cfg)
        self.cfg, self.init = cfg, init
        core = cfg.core
        self.res_layout = data.ArrayLayout(signed(core.acc_bits), core.pe)
        super().__init__({
            "start": In(1), "busy": Out(1), "done": Out(1), "error": Out(1), "error_code": Out(ERR_BITS),
            "cycles": Out(32),
            "prog_we": In(1), "prog_addr": In(range(cfg.prog_depth)), "prog_data": In(isa.INSTR_BITS),
            "act_we": In(1), "act_addr": In(range(cfg.act_depth)), "act_data": In(core.simd),
            "res_addr": In(range(cfg.res_depth)), "res_data": Out(self.res_layout),
            "wload": In(weight_load_signature(core)), "tload": In(threshold_load_signature(core)),
            **({"sload": In(store_load_signature(cfg))} if cfg.store_depth else {}),
            **({"res_sel": In(range(max(core.pe, 2))), "res_word": Out(signed(core.acc_bits))}
               if core.chain else {}),
        })

    def elaborate(self, platform):
        cfg, core = self.cfg, self.cfg.core
        s, pe = core.simd, core.pe
        m = Module()
        if core.chain:
            # The chained array (hw/chain.py) holds the result memories, one per slice.
            m.submodules.chain = dp = PEChain(core, cfg.res_depth, init=self.init)
        else:
            m.submodules.core = dp = Core(core, init=self.init)
        wiring.connect(m, wiring.flipped(self.tload), dp.tload)
        insn = Signal(isa.instruction_layout())     # the instruction being executed (a register)
        load_start = Signal()       # the controller issues a LOAD_W
        load_busy = self._weight_path(m, dp, load_start, insn.args.load_w)

        # ---------------------------------------------------------- memories
        m.submodules.prog = prog = Memory(shape=isa.INSTR_BITS, depth=cfg.prog_depth,
                                          init=self.init.words["program"] if self.init else [],
                                          attrs=NO_RW_CHECK)
        prog_rd, prog_wr = prog.read_port(), prog.write_port()
        m.d.comb += [prog_wr.en.eq(self.prog_we), prog_wr.addr.eq(self.prog_addr),
                     prog_wr.data.eq(self.prog_data)]
        bufs = []
        # With a weight store, RUNs over neuron-fold ranges write P-lane slots of a word.
        granularity = pe if cfg.store_depth and pe < s else None
        for k in range(2):
            mem = Memory(shape=s, depth=cfg.act_depth, init=[], attrs=NO_RW_CHECK)
            m.submodules[f"act{k}"] = mem
            bufs.append((mem.read_port(), mem.write_port(granularity=granularity)))
        # Results: written by RUNs, read by the host; no image initialises them, so ECP5
        # boards may put them in LUT RAM and leave the block RAMs to the model's memories.
        if core.chain:
            m.d.comb += [dp.res_addr.eq(self.res_addr), self.res_data.eq(dp.res_data),
                         dp.res_sel.eq(self.res_sel), self.res_word.eq(dp.res_word)]
        else:
            m.submodules.results = res = Memory(shape=self.res_layout, depth=cfg.res_depth,
                                                init=[], attrs={**NO_RW_CHECK, LUTRAM_OK_ATTR: 1})
            res_rd, res_wr = res.read_port(), res.write_port()
            m.d.comb += [res_rd.addr.eq(self.res_addr), self.res_data.eq(res_rd.data)]

        # ---------------------------------------------------------- registers
        specs = isa.INSTRUCTIONS
        r = {}
        for op in (Opcode.CFG_IN, Opcode.CFG_WIN, Opcode.CFG_OUT, Opcode.CFG_MEM):
            r.update(_field_regs(cfg, specs[op], "r_"))
        lim = cfg.field_limit

        pc = Signal(range(cfg.prog_depth + 1))      # the address of insn
        # The address the read port fetches next: pc + 2 while executing (the read data
        # holds instruction pc + 1), 0 while idle (the start's fetch needs no multiplexer).
        fetch_addr = Signal(range(cfg.prog_depth + 3))
        running = Signal()          # a RUN is in progress
        run_start = Signal()
        run_done = Signal()

        # Cycle counter: counts from start until done / error.
        counting = Signal()
        with m.If(self.start):
            m.d.sync += [self.cycles.eq(1), counting.eq(1)]
        with m.Elif(counting & ~self.done & ~self.error):
            m.d.sync += self.cycles.eq(self.cycles + 1)

        # ---------------------------------------------------------- controller
        # The fetch pipeline: the instruction register insn holds instruction pc, the
        # program memory's read data the next one (prefetched). When the controller moves
        # on, insn takes the read data and the read port fetches the one after (read
        # enable); a stall holds both. The decode starts from flip-flops, and the read
        # port's address and enable come from registers and that decode: no block RAM
        # clock-to-output time in the loop. Filling the pipeline after start costs one
        # cycle per program run (START_CYCLES; docs/accelerator.md, "Timing").
        fetch = Signal()            # insn <= read data; read the next; pc steps
        m.d.comb += [prog_rd.addr.eq(fetch_addr), prog_rd.en.eq(fetch)]
        # The instruction's kind, decoded as it enters insn (from the read data) and held
        # beside it in one-hot flags, and "pc is past the program memory", registered as pc
        # steps: EXEC's fetch, its stalls and its state changes start from these flip-flops
        # rather than from a decode of insn: no decode between insn and fetch_addr
        # (docs/timing.md).
        kinds = {"cfg": (Opcode.CFG_IN, Opcode.CFG_WIN, Opcode.CFG_OUT, Opcode.CFG_MEM),
                 "run": (Opcode.RUN,), "end": (Opcode.END,), "sync": (Opcode.SYNC,),
                 "load": (Opcode.LOAD_W,) if cfg.store_depth else ()}
        is_op = {k: Signal(name=f"insn_is_{k}") for k in kinds}
        next_op = isa.instruction_layout()(prog_rd.data).opcode
        pc_over = Signal()          # pc >= prog_depth
        with m.If(fetch):
            m.d.sync += [insn.eq(prog_rd.data), pc.eq(pc + 1), fetch_addr.eq(fetch_addr + 1),
                         pc_over.eq(pc + 1 >= cfg.prog_depth)]
            m.d.sync += [is_op[k].eq(Cat(*(next_op == op for op in ops)).any() if ops else 0)
                         for k, ops in kinds.items()]
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
                                for f in specs[op].fields:
                                    m.d.sync += r[f.name].eq(getattr(args, f.name))
                    m.d.comb += fetch.eq(1)
                with m.Elif(is_op["run"]):
                    with m.If(~(insn.args.run.wait_w & load_busy)):
                        m.d.comb += [fetch.eq(1), run_start.eq(1)]
                        m.d.sync += running.eq(1)
                        m.next = "RUN"
                with m.Elif(is_op["end"]):
                    with m.If(~load_busy):
                        m.d.sync += [self.done.eq(1), fetch_addr.eq(0)]
                        m.next = "IDLE"
                with m.Elif(is_op["load"]):
                    with m.If(~load_busy):
                        m.d.comb += [fetch.eq(1), load_start.eq(1)]
                with m.Elif(is_op["sync"]):
                    m.d.comb += fetch.eq(1)
                with m.Else():
                    m.d.sync += [self.error.eq(1), self.error_code.eq(ERR_BAD_OPCODE),
                                 fetch_addr.eq(0)]
                    m.next = "IDLE"
            with m.State("RUN"):
                with m.If(run_done):
                    m.d.sync += running.eq(0)
                    m.next = "EXEC"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))

        # ---------------------------------------------------------- address generator
        # Loop counters, outermost first: (img,) oy, ox, tile, py, px, plane (down), ky, kx,
        # c, sub.
        # Every counter and running sum is as wide as this configuration needs
        # (AccelConfig.field_limit, the weight-bank address), not as its ISA field. A core
        # without bit-serial inputs has no plane counter (one plane) and no second beat.
        def counter(op, name, signal_name):
            return Signal(range(max(2, lim(op, name))), name=signal_name)

        oy, ox = counter(Opcode.CFG_OUT, "out_h", "oy"), counter(Opcode.CFG_OUT, "out_w", "ox")
        tile = counter(Opcode.CFG_MEM, "tiles", "tile")
        py, px = Signal(range(8)), Signal(range(8))
        ky, kx = counter(Opcode.CFG_WIN, "kh", "ky"), counter(Opcode.CFG_WIN, "kw", "kx")
        cw = counter(Opcode.CFG_IN, "in_cw", "cw")
        sub = Signal()              # second beat (and_m) of a ternary K-bit word
        j = Signal(core.w_addr_bits)        # word within the row: (ky*kw + kx)*in_cw + cw
        tile_w = Signal(core.w_addr_bits)   # tile * words_per_row (both modulo the bank depth)
        issuing = Signal()

        bipolar = r["in_bipolar"] if core.bit_serial else Const(1)
        two_beats = r["ternary"] & ~bipolar if core.ternary and core.bit_serial else Const(0)
        # Loop-counter digits with registered last-value flags (see _LoopDigit). The
        # configuration registers are stable from the cycle after their CFG instruction
        # and the counters first step a cycle after the RUN issues, so the bounds'
        # derived registers (bound - 2, bound == 1, in_planes - 1) are ready by then.
        derived = {name: _bound_registers(m, r[name])
                   for name in ("in_cw", "kw", "kh", "pool", "tiles", "out_w", "out_h")}
        d_c, d_kx, d_ky = (_LoopDigit(cw, r["in_cw"], derived["in_cw"]),
                           _LoopDigit(kx, r["kw"], derived["kw"]),
                           _LoopDigit(ky, r["kh"], derived["kh"]))
        d_px, d_py = _LoopDigit(px, r["pool"], derived["pool"]), _LoopDigit(py, r["pool"], derived["pool"])
        d_tile = _LoopDigit(tile, r["tiles"], derived["tiles"])
        d_ox, d_oy = _LoopDigit(ox, r["out_w"], derived["out_w"]), _LoopDigit(oy, r["out_h"], derived["out_h"])
        # The accumulation's digits (innermost first): the second beat of a ternary K-bit
        # word, channel words, kernel columns and rows, bit planes (counting down).
        inner = []
        if core.ternary and core.bit_serial:
            inner.append((_LoopDigit(sub, Mux(two_beats, 2, 1), (Const(0), ~two_beats)), [], []))
        inner += [(d_c, [j.eq(j + 1)], []), (d_kx, [j.eq(j + 1)], []), (d_ky, [j.eq(j + 1)], [j.eq(0)])]
        if core.bit_serial:
            plane = Signal(range(core.act_bits), name="plane")
            top_plane = Signal.like(plane)
            m.d.sync += top_plane.eq(r["in_planes"] - 1)
            inner.append((_LoopDigit(plane, r["in_planes"], _bound_registers(m, r["in_planes"]),
                                     top=top_plane), [], []))
        else:
            plane = top_plane = Const(0)
        step_res = []
        if core.chain:
            # The result entry of each beat (the chain's slices write their own result
            # memories): out_base + pixel * tiles + tile, as the output path counts it.
            i_res_base = Signal(range(cfg.res_depth))
            step_res = [i_res_base.eq(i_res_base + r["tiles"])]
        # The window's input position without a multiply: running sums of the strided
        # output position, (ox*pool + px)*sw = ox_s + px_s (ox_s steps by pool*sw, px_s by
        # sw), likewise for y, beside their counters (docs/accelerator.md, "Timing").
        cy_end, cx_end = (7 * max(2, lim(Opcode.CFG_OUT, name)) for name in ("out_h", "out_w"))
        oy_s, py_s = Signal(range(7 * cy_end), name="oy_s"), Signal(range(50), name="py_s")
        ox_s, px_s = Signal(range(7 * cx_end), name="ox_s"), Signal(range(50), name="px_s")
        pool_sh, pool_sw = Signal(range(50), name="pool_sh"), Signal(range(50), name="pool_sw")
        m.d.sync += [pool_sh.eq(r["pool"] * r["sh"]), pool_sw.eq(r["pool"] * r["sw"])]
        outer = [
            (d_px, [px_s.eq(px_s + r["sw"])], [px_s.eq(0)]),
            (d_py, [py_s.eq(py_s + r["sh"])], [py_s.eq(0)]),
            # j + 1 = kh*kw*in_cw (words per row) when the tile steps: no multiply.
            (d_tile, [tile_w.eq(tile_w + j + 1)], [tile_w.eq(0)]),
            (d_ox, [*step_res, ox_s.eq(ox_s + pool_sw)], [*step_res, ox_s.eq(0)]),
            (d_oy, [oy_s.eq(oy_s + pool_sh)], [oy_s.eq(0)]),
        ]
        # The read port's address width: from the input pixel on, addresses are modulo it.
        abits = len(bufs[0][0].addr)

        def low(value):
            return value[:min(abits, len(value))]

        # The image loop (max_images > 1): image i's rows follow image i-1's in the input
        # tensor, so its input row is i * in_h + iy. oy_abs runs beside oy_s with the image's
        # first row added (modulo the address width), from img_next (the next image's first
        # row) when oy wraps; the padding test keeps using the row within the image.
        if cfg.max_images > 1:
            img = Signal(range(cfg.max_images), name="img")
            extra = r["extra_images"]
            images_m2, images_is1 = Signal.like(extra, name="images_m2"), Signal(name="images_is1")
            m.d.sync += [images_m2.eq(extra - 1), images_is1.eq(extra == 0)]
            d_img = _LoopDigit(img, extra + 1, (images_m2, images_is1))
            oy_abs, img_next = Signal(abits, name="oy_abs"), Signal(abits, name="img_next")
            outer[-1][1].append(oy_abs.eq(oy_abs + pool_sh))
            outer[-1][2].append(oy_abs.eq(img_next))
            outer.append((d_img, [img_next.eq(img_next + low(r["in_h"]))], []))
        last_c = d_c.last
        # The last beat of one accumulation (one PE result): every inner digit at its last
        # value. A register, set a step ahead from the inner digits' next flags, so the outer
        # digits' carry is one AND of registers (and the inner carries at most four).
        end_acc = Signal()
        carries = [Cat(*(d.last for d, *_ in inner[:k])).all() for k in range(len(inner))]
        # The outer digits likewise: pre[k], every outer digit inside digit k at its last
        # value, is a register set a step ahead, so digit k's carry is end_acc & pre[k].
        outer_carries = _Carries([d for d, *_ in outer], end_acc, "outer")

        # Between RUNs the counters hold the next RUN's start values: its configuration
        # registers are final in the cycle its RUN instruction issues, so no path runs
        # from the instruction's decode into the counters.
        with m.If(~issuing):
            m.d.sync += [oy.eq(0), ox.eq(0), tile.eq(0), py.eq(0), px.eq(0),
                         ky.eq(0), kx.eq(0), cw.eq(0), sub.eq(0), j.eq(0), tile_w.eq(0),
                         oy_s.eq(0), py_s.eq(0), ox_s.eq(0), px_s.eq(0)]
            if cfg.max_images > 1:
                m.d.sync += [img.eq(0), oy_abs.eq(0), img_next.eq(low(r["in_h"]))]
            if core.chain:
                m.d.sync += i_res_base.eq(r["out_base"])
            if core.bit_serial:
                m.d.sync += plane.eq(r["in_planes"] - 1)
            m.d.sync += [d.start for d, *_ in inner + outer]
            m.d.sync += end_acc.eq(Cat(*(d.first for d, *_ in inner)).all())
            m.d.sync += outer_carries.start
            with m.If(run_start):
                m.d.sync += issuing.eq(1)
        with m.Else():
            m.d.sync += end_acc.eq(Cat(*(d.next_last(c) for (d, *_), c in zip(inner, carries))).all())
            _odometer(m, [(d.last, [*d.step, *step], [*d.wrap, *wrap]) for d, step, wrap in inner],
                      done=[])
            m.d.sync += outer_carries.step
            _odometer(m, [(d.last, [*d.step, *step], [*d.wrap, *wrap]) for d, step, wrap in outer],
                      done=[issuing.eq(0)], carries=outer_carries.carries)

        # The activation address, at most one multiply per stage (docs/accelerator.md,
        # "Timing"); the beat's command and the signals the read needs travel beside it.
        # Stage A: the strided window position of the output pixel, (oy*pool + py)*sh
        # (below 7 * 7 * out_h), and the kernel offsets ky - ph, kx - pw (one adder each).
        cy, cx = Signal(range(7 * cy_end), name="cy"), Signal(range(7 * cx_end), name="cx")
        ky_a, kx_a = Signal(range(-15, 64), name="ky_ph"), Signal(range(-15, 64), name="kx_pw")
        m.d.sync += [cy.eq(oy_s + py_s), cx.eq(ox_s + px_s),
                     ky_a.eq(ky - r["ph"]), kx_a.eq(kx - r["pw"])]
        # Stage B: the input pixel's coordinates (negative or past the edge: padding),
        # from -ph >= -15 to 7 * cy + kh - 1 <= 7 * cy + 62.
        iy = Signal(range(-15, 7 * cy_end + 63), name="iy")
        ix = Signal(range(-15, 7 * cx_end + 63), name="ix")
        m.d.sync += [iy.eq(cy + ky_a), ix.eq(cx + kx_a)]
        # The same rows counted from the tensor's first image (modulo the address width).
        row = iy
        if cfg.max_images > 1:
            cy_abs, row = Signal(abits, name="cy_abs"), Signal(abits, name="iy_abs")
            m.d.sync += [cy_abs.eq(oy_abs + py_s), row.eq(cy_abs + ky_a)]
        # Stage C: the padding test and the pixel index. From here on the arithmetic is
        # modulo the read port's width (its address drops the upper bits anyway).
        inside = Signal()
        pixel = Signal(abits)
        inside_b = (iy >= 0) & (iy < r["in_h"]) & (ix >= 0) & (ix < r["in_w"])
        m.d.sync += [inside.eq(inside_b),
                     pixel.eq(Mux(inside_b, _product(m, low(row), low(r["in_w"])) + low(ix), 0))]
        # Stage D: the pixel's plane. Stage E: its word; then (combinational, into the
        # read port) the tensor's base.
        pixel_plane = Signal(abits)
        if core.bit_serial:
            plane_c = _delayed(m, plane, "a", "b", "c")
            m.d.sync += pixel_plane.eq(pixel * low(r["in_planes"]) + plane_c)
        else:
            plane_c = Const(0)
            m.d.sync += pixel_plane.eq(pixel)
        cw_d = _delayed(m, low(cw), "a", "b", "c", "d")
        word_ofs = Signal(abits)
        m.d.sync += word_ofs.eq(_product(m, pixel_plane, low(r["in_cw"])) + cw_d)
        a_addr = Signal(abits)
        m.d.comb += a_addr.eq(low(r["in_base"]) + word_ofs)

        # The beat's command: only what changes within a RUN travels down the pipeline
        # (the configuration registers hold until the RUN ends); the rest is decoded at
        # the core's input (the threshold set t_base + tile travels as the tile).
        msb = plane == top_plane
        beat = Signal(data.StructLayout({
            "sub": 1, "last": 1, "shl": 1, "neg_plane": 1, "last_word": 1,
            "w_addr": core.w_addr_bits, "tile": len(tile),
            **({"r_addr": len(i_res_base)} if core.chain else {})}))
        if core.chain:
            m.d.comb += beat.r_addr.eq(i_res_base + tile)
        m.d.comb += [
            beat.sub.eq(sub),
            beat.last.eq(end_acc),
            beat.shl.eq(~bipolar & ~msb & (j == 0) & ~sub),
            beat.neg_plane.eq(r["in_signed"] & msb & ~bipolar),
            beat.last_word.eq(last_c),
            beat.w_addr.eq(r["w_base"] + tile_w + j),
            beat.tile.eq(tile),
        ]

        # Stage 1: activation-buffer read; the command and the word's selection follow:
        # buffer 0, buffer 1 (inside), all ones (a pad of ones), the last-word mask (a pad
        # of ones in a pixel's last channel word) or nothing (a pad of zeros).
        v1 = Signal()
        beat1 = Signal.like(beat)
        beat_e = _delayed(m, beat, "a", "b", "c", "d", "e")
        inside_e = _delayed(m, inside, "d", "e")
        plane_e = _delayed(m, plane_c, "d", "e") if core.bit_serial else Const(0)
        pad_bit = (r["pad_code"] >> plane_e)[0]
        from_buf0, from_buf1, pad_full, pad_masked = (Signal(name=n) for n in (
            "from_buf0", "from_buf1", "pad_full", "pad_masked"))
        m.d.sync += [v1.eq(_delayed(m, issuing, "a", "b", "c", "d", "e")),
                     beat1.eq(beat_e),
                     from_buf0.eq(inside_e & ~r["in_buf"]), from_buf1.eq(inside_e & r["in_buf"]),
                     pad_full.eq(~inside_e & pad_bit & ~beat_e.last_word),
                     pad_masked.eq(~inside_e & pad_bit & beat_e.last_word)]
        for rd, _ in bufs:
            m.d.comb += [rd.addr.eq(a_addr), rd.en.eq(1)]

        op = Signal(2)
        with m.If(bipolar):
            m.d.comb += op.eq(OP_MXNOR if core.ternary else OP_XNOR)
        with m.Elif(beat1.sub):
            m.d.comb += op.eq(OP_AND_M)
        with m.Else():
            m.d.comb += op.eq(OP_AND_S)
        cmd1 = Signal.like(dp.inp.payload.cmd)
        m.d.comb += [
            cmd1.op.eq(op),
            cmd1.last.eq(beat1.last),
            cmd1.shl.eq(beat1.shl),
            cmd1.neg.eq(Mux(beat1.sub, ~beat1.neg_plane, beat1.neg_plane)),
            cmd1.dbl.eq(~beat1.sub),
            cmd1.count.eq(~bipolar & ~r["ternary"]),
            cmd1.w_addr.eq(beat1.w_addr),
            cmd1.t_addr.eq(r["t_base"] + beat1.tile),
        ]

        # With act_reg, the read data into a register of its own (on ECP5 the block RAMs'
        # output register), the beat and its selection a cycle later beside it.
        words = [rd.data for rd, _ in bufs]
        if cfg.act_reg:
            words = [_delayed(m, w, "q", reset_less=True) for w in words]
            v1, cmd1, from_buf0, from_buf1, pad_full, pad_masked = (
                _delayed(m, sig, "q") for sig in (v1, cmd1, from_buf0, from_buf1, pad_full,
                                                  pad_masked))
            beat1 = _delayed(m, beat1, "q")
        # Stage 2: the input word (or the pad word) goes to the core.
        last_mask = Signal(s)       # lanes below last_lanes (all from S up); config only
        m.d.sync += last_mask.eq(_thermometer(r["last_lanes"], s))
        m.d.comb += [
            dp.inp.valid.eq(v1),
            dp.inp.payload.x.eq((words[0] & from_buf0.replicate(s)) |
                                (words[1] & from_buf1.replicate(s)) |
                                pad_full.replicate(s) | (last_mask & pad_masked.replicate(s))),
            dp.inp.payload.cmd.eq(cmd1),
        ]
        if core.chain:
            m.d.comb += [dp.inp.payload.res.en.eq(beat1.last & (r["out_bits"] == 0)),
                         dp.inp.payload.res.addr.eq(beat1.r_addr)]

        # ---------------------------------------------------------- output path
        m.d.comb += dp.out.ready.eq(1)
        # The core's results, registered: its threshold compare ends its last cycle.
        out_valid = _delayed(m, dp.out.valid, "r")
        out = _delayed(m, dp.out.payload, "r", reset_less=core.data_every_step)
        o_oy, o_ox = Signal.like(oy, name="o_oy"), Signal.like(ox, name="o_ox")
        o_tile = Signal.like(tile, name="o_tile")
        o_py, o_px = Signal.like(py, name="o_py"), Signal.like(px, name="o_px")
        tiles_per_word = s // pe
        # A RUN over a range of neuron folds (weight streaming) starts at slot out_slot of
        # its first word and keeps the lanes below.
        slot0 = r["out_slot"][:_bits(max(tiles_per_word, 2) - 1)] if cfg.store_depth else 0
        o_word = Signal(abits)      # channel word of the output pixel being packed (modulo)
        pooled = Signal(pe)
        packer = Signal(s)
        out_digits = (_LoopDigit(o_px, r["pool"], derived["pool"]),
                      _LoopDigit(o_py, r["pool"], derived["pool"]),
                      _LoopDigit(o_tile, r["tiles"], derived["tiles"]),
                      _LoopDigit(o_ox, r["out_w"], derived["out_w"]),
                      _LoopDigit(o_oy, r["out_h"], derived["out_h"]))
        o_last_px, o_last_py, o_last_tile = (d.last for d in out_digits[:3])
        o_starts = [o_oy.eq(0), o_ox.eq(0), o_tile.eq(0), o_py.eq(0), o_px.eq(0)]
        if cfg.max_images > 1:
            # The images' output pixels follow each other: only the end of the run moves out.
            o_img = Signal.like(img, name="o_img")
            out_digits += (_LoopDigit(o_img, extra + 1, (images_m2, images_is1)),)
            o_starts.append(o_img.eq(0))
        out_carries = _Carries(out_digits, out_valid, "out")
        first_pos = (o_px == 0) & (o_py == 0)
        last_pos = o_last_px & o_last_py
        acts = Signal(pe)
        m.d.comb += acts.eq(Cat(out.act[p][0] for p in range(pe)))
        merged = Signal(pe)
        m.d.comb += merged.eq(Mux(first_pos, acts, pooled | acts))
        raw = r["out_bits"] == 0
        result_done = Signal()      # the run's last result is written

        # Running partial addresses of the output pixel (o_oy*out_w + o_ox): out_base plus
        # its multiple of out_cw (activation words) and of tiles (result entries).
        o_act_base = Signal(range(cfg.act_depth))
        o_res_base = Signal(range(cfg.res_depth))
        # The slot, decoded (from its upper and lower bits) into a one-hot lane-group select:
        # placing P bits is an AND, not a shifter; the slots from the current one up are
        # the complement of its thermometer.
        slot = Signal(range(max(tiles_per_word, 2)))
        sel, below = _decodes(slot, tiles_per_word)
        placed = Signal(s)
        m.d.comb += placed.eq(merged.replicate(tiles_per_word) &
                              Cat(sel[k].replicate(pe) for k in range(tiles_per_word)))
        with m.If(~running):                # the next RUN's start values (as the counters')
            m.d.sync += [*o_starts,
                         slot.eq(slot0), o_word.eq(0), packer.eq(0),
                         result_done.eq(0), o_act_base.eq(r["out_base"]),
                         o_res_base.eq(r["out_base"])]
            m.d.sync += [d.start for d in out_digits]
            m.d.sync += out_carries.start
        with m.Elif(out_valid):
            m.d.sync += out_carries.step
            # The next result belongs to the next pixel (row-major: the pixel index steps).
            with m.If(o_last_px & o_last_py & o_last_tile):
                m.d.sync += [o_act_base.eq(o_act_base + r["out_cw"]),
                             o_res_base.eq(o_res_base + r["tiles"])]
            _odometer(m, [(d.last, d.step, d.wrap) for d in out_digits], done=[result_done.eq(1)],
                      carries=out_carries.carries)
            m.d.sync += pooled.eq(merged)
            with m.If(last_pos & ~raw):
                with m.If(o_last_tile):
                    m.d.sync += [slot.eq(slot0), packer.eq(0), o_word.eq(0)]
                with m.Elif(sel[-1]):
                    m.d.sync += [slot.eq(0), packer.eq(0), o_word.eq(o_word + 1)]
                with m.Else():
                    m.d.sync += [slot.eq(slot + 1), packer.eq(packer | placed)]

        # Writes: registered here, then by the memories. The last one lands in the cycle
        # the RUN ends (run_done).
        # With one write enable per P-lane slot (a weight store) every pooled result writes
        # its own slot, the pixel's last tile also zeros into the slots above it (the
        # packer's word would have had them): no packer, no slots kept. Without, the
        # packer's word is written when it is full or the pixel's last tile is done.
        # Between RUNs the same registers carry the host's writes into buffer 0 (a host
        # write lands a cycle after it is presented): no multiplexer at the buffer's port.
        act_write = Signal()
        out_word, w_addr = Signal(s), Signal.like(o_act_base)
        n_en = len(bufs[0][1].en)
        w_slots = Signal(n_en)
        w_bufs = [Signal(name=f"w_buf{k}") for k in range(2)]     # buffer k is written
        with m.If(running):
            m.d.sync += [w_addr.eq(o_act_base + o_word),
                         *(w_buf.eq(act_write & (r["out_buf"] == k)) for k, w_buf in enumerate(w_bufs))]
            if granularity is not None:
                m.d.comb += act_write.eq(out_valid & last_pos & ~raw)
                m.d.sync += [out_word.eq(placed), w_slots.eq(Mux(o_last_tile, ~below, sel))]
            else:
                m.d.comb += act_write.eq(out_valid & last_pos & ~raw & (o_last_tile | sel[-1]))
                m.d.sync += [out_word.eq(packer | placed), w_slots.eq(-1)]
        with m.Else():
            m.d.sync += [w_addr.eq(self.act_addr), out_word.eq(self.act_data), w_slots.eq(-1),
                         w_bufs[0].eq(self.act_we), w_bufs[1].eq(0)]
        for (_, wr), w_buf in zip(bufs, w_bufs):
            m.d.comb += [wr.en.eq(w_buf.replicate(n_en) & w_slots), wr.addr.eq(w_addr),
                         wr.data.eq(out_word)]
        # Raw results go to the result memory at once (from the register of the core's
        # results); the chain's slices have written theirs already.
        if not core.chain:
            m.d.comb += [
                res_wr.en.eq(out_valid & running & raw),
                res_wr.addr.eq(o_res_base + o_tile),
                res_wr.data.eq(out.acc),
            ]
        # The run ends one cycle after its last result is written.
        m.d.comb += run_done.eq(result_done)
        return m

    def _weight_path(self, m, dp, load_start, args):
        """Weight-bank writes: the host port, or the LOAD_W copy engine from the weight store.

        The engine reads one store word per cycle (bank-major: bank 0's ``count``
        words from ``src``, then bank 1's, ...) and writes it into its bank one
        cycle later; it runs beside the controller, so a RUN can read one region
        of the banks while the engine fills another. Returns its busy signal.
        """
        cfg, core = self.cfg, self.cfg.core
        if not cfg.store_depth:
            wiring.connect(m, wiring.flipped(self.wload), dp.wload)
            return Const(0)
        store = Memory(shape=core.weight_width, depth=cfg.store_depth, init=[], attrs=NO_RW_CHECK)
        m.submodules[STORE_NAME] = store
        st_rd, st_wr = store.read_port(), store.write_port()
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
            with m.If(load_start):
                m.d.sync += reading.eq(1)
        with m.Else():
            m.d.sync += src.eq(src + 1)
            _odometer(m, [
                (left == 0, [i.eq(i + 1), left.eq(left - 1)], [i.eq(0), left.eq(count_m1)]),
                (bank == core.pe - 1, [bank.eq(bank + 1)], [bank.eq(0)]),
            ], done=[reading.eq(0)])
        m.d.sync += [w_valid.eq(reading), w_bank.eq(bank), w_addr.eq(base + i)]
        # One address for both store ports (single-port RAM: the host writes while idle).
        addr = Signal.like(src)
        m.d.comb += [
            addr.eq(Mux(reading, src, self.sload.addr)),
            st_rd.addr.eq(addr), st_rd.en.eq(reading),
            st_wr.addr.eq(addr), st_wr.en.eq(self.sload.en & ~reading),
            st_wr.data.eq(self.sload.data),
            dp.wload.en.eq(Mux(w_valid, 1, self.wload.en)),
            dp.wload.bank.eq(Mux(w_valid, w_bank, self.wload.bank)),
            dp.wload.addr.eq(Mux(w_valid, w_addr, self.wload.addr)),
            dp.wload.data.eq(Mux(w_valid, st_rd.data, self.wload.data)),
        ]
        busy = Signal()
        m.d.comb += busy.eq(reading | w_valid)
        return busy


def _bound_registers(m, bound):
    """``(bound - 2, bound == 1)`` of a loop bound, registered (for :class:`_LoopDigit`)."""
    m2, one = Signal.like(bound, name=f"{bound.name}_m2"), Signal(name=f"{bound.name}_is1")
    m.d.sync += [m2.eq(bound - 2), one.eq(bound == 1)]
    return m2, one


class _LoopDigit:
    """A loop counter over ``range(bound)`` with its last-value flag in a register.

    ``last`` equals ``value == bound - 1`` at every cycle without comparing
    through a subtraction on the odometer's carry path: a step from ``value``
    makes the next value last when ``value == bound - 2``, a wrap when
    ``bound == 1``. ``start``, ``step`` and ``wrap`` are the sync statements of
    the counter and its flag (``start``: the flag of value 0, from ``bound``
    itself; ``registers``: :func:`_bound_registers` of ``bound``).
    """

    def __init__(self, value, bound, registers, *, top=None):
        m2, one = registers
        self.last = Signal(name=f"{value.name}_last")
        self.first, self.one = bound == 1, one
        self.start = self.last.eq(self.first)
        if top is None:
            self.stepped_last = value == m2
            self.step = [value.eq(value + 1), self.last.eq(self.stepped_last)]
            self.wrap = [value.eq(0), self.last.eq(one)]
        else:               # counting down from top = bound - 1 (registered) to 0
            self.stepped_last = value == 1
            self.step = [value.eq(value - 1), self.last.eq(self.stepped_last)]
            self.wrap = [value.eq(top), self.last.eq(one)]

    def next_last(self, carry):
        """The flag's next value when the carry into this digit is ``carry``."""
        return Mux(carry, Mux(self.last, self.one, self.stepped_last), self.last)


def _product(m, a, b):
    """``a * b`` at its full width on a kept wire: synthesis maps it to a DSP block (yosys
    maps only products of at least 11 bits to iCE40 SB_MAC16s) rather than LUTs, although
    only the low bits are used (an address modulo a memory's depth)."""
    prod = Signal(len(a) + len(b), attrs={"keep": 1})
    m.d.comb += prod.eq(a * b)
    return prod


def _bits(n):
    """Bits of an unsigned ``n``."""
    return max(1, int(n).bit_length())


def _decodes(value, n):
    """``(one_hot, thermometer)`` of ``value``, ``n`` bits each: bit ``i`` is ``value == i``,
    ``value > i``; decoded from the value's upper and lower bits (no comparator carry
    chain per bit)."""
    lo_bits = min(3, len(value))
    lo, hi = value[:lo_bits], value[lo_bits:]
    lo_vals, hi_vals = 1 << lo_bits, 1 << len(hi)
    eq_hi = [hi == h for h in range(hi_vals)]
    eq_lo = [lo == v for v in range(lo_vals)]
    gt_hi = [Cat(*eq_hi[h + 1:]).any() for h in range(hi_vals)]
    gt_lo = [Cat(*eq_lo[v + 1:]).any() for v in range(lo_vals)]
    one_hot, thermometer = [], []
    for i in range(n):
        h, v = i >> lo_bits, i & (lo_vals - 1)
        one_hot.append(Const(0) if h >= hi_vals else eq_hi[h] & eq_lo[v])
        thermometer.append(Const(0) if h >= hi_vals else gt_hi[h] | (eq_hi[h] & gt_lo[v]))
    return Cat(*one_hot), Cat(*thermometer)


def _thermometer(value, n):
    """``n`` bits, bit ``i`` = ``value > i`` (see :func:`_decodes`)."""
    return _decodes(value, n)[1]


class _Carries:
    """Registered carries of a nest of :class:`_LoopDigit` (innermost first) that steps
    when ``carry_in`` (a register) is high.

    ``pre[k]``, every digit inside digit ``k`` at its last value, is a register set a step
    ahead from the digits' next flags, so digit ``k``'s carry (``carries[k]``) is one AND
    of two registers, not an AND over every flag inside it. ``start``: the statements of
    the nest's start values; ``step``: those of a step (where ``carry_in`` is high).
    """

    def __init__(self, digits, carry_in, name):
        pre = [Const(1)] + [Signal(name=f"{name}_pre{k}") for k in range(1, len(digits))]
        self.carries = [carry_in & p for p in pre]
        nxt = [d.next_last(c) for d, c in zip(digits, self.carries)]
        self.start = [p.eq(Cat(*(d.first for d in digits[:k])).all()) for k, p in enumerate(pre) if k]
        self.step = [p.eq(Cat(*nxt[:k]).all()) for k, p in enumerate(pre) if k]


def _delayed(m, value, *stages, reset_less=False):
    """``value`` through one register per name in ``stages`` (names ``<value>_<stage>``)."""
    base = getattr(value, "name", "stage")
    for stage in stages:
        reg = Signal.like(value, name=f"{base}_{stage}", reset_less=reset_less)
        m.d.sync += reg.eq(value)
        value = reg
    return value


def _odometer(m, digits, done, carries=None):
    """Advance a nest of loop counters by one step, like an odometer.

    ``digits`` lists, innermost first, ``(is_last, step, wrap)``: the digit
    steps when every digit inside it is at its last value and it is not;
    it wraps (and carries outwards) when it is too. ``done`` runs when the
    outermost digit wraps. ``carries``: each digit's carry in, if the caller
    keeps them (default: the AND of the inner digits' flags; the innermost
    digit steps every time). Statements go to the sync domain.
    """
    if carries is None:
        carries = [Cat(*(d[0] for d in digits[:k])).all() for k in range(len(digits))]
    for (is_last, step, wrap), carry in zip(digits, carries):
        with m.If(carry & ~is_last):
            m.d.sync += step
        with m.If(carry & is_last):
            m.d.sync += wrap
    with m.If(carries[-1] & digits[-1][0]):
        m.d.sync += done


#: Name of the weight-store memory in the generated Verilog.
STORE_NAME = "store"


def accel_verilog(cfg):
    """Plain synthesizable Verilog of the accelerator (module ``tritium_accel``).

    The weight store is emitted without an initial value: Amaranth gives every
    memory one (zeros), but iCE40 SPRAM cannot be initialised, and yosys maps
    only memories without one to it. The host fills the store before any
    ``LOAD_W`` reads it, so nothing depends on its power-up contents.
    """
    from .core import to_verilog
    text = to_verilog(Accelerator(cfg), name=ACCEL_TOP)
    return drop_memory_init(text, STORE_NAME) if cfg.store_depth else text


def drop_memory_init(text, name):
    """Verilog ``text`` without the ``initial`` block that fills memory ``name`` (one line
    per word, as Amaranth's backend writes it); refuses text where it finds none."""
    pattern = re.compile(rf"^([ \t]*reg \[\d+:0\] {name} \[\d+:0\];\n)[ \t]*initial begin\n"
                         rf"(?:[ \t]*{name}\[\d+\] = [^;\n]*;\n)*[ \t]*end\n", re.MULTILINE)
    out, n = pattern.subn(r"\1", text)
    if n != 1:
        raise RuntimeError(f"the generated Verilog has no initial block of memory {name!r} to drop")
    return out
