"""The accelerator: the memories and the core, with the components of
:mod:`tritium.hw.accel_blocks` (controller, address generator, activation fetch,
output path) between them.

With ``store_depth > 0`` it also has a weight store and the ``LOAD_W`` copy
engine that fills the weight banks from it while RUNs execute (weight
streaming). See docs/accelerator.md for the layouts, the loop nest of ``RUN``,
weight streaming and the timing, which :mod:`tritium.sw.isasim` models cycle
for cycle.
"""

import re

from amaranth.hdl import Module, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from . import isa
from .accel_blocks import (ActivationFetch, AddressGenerator, Controller, OutputPath, WeightCopy,
                           buffer_granularity)
from .accel_config import AccelConfig
from .chain import PEChain
from .core import Core
from .layouts import (NO_RW_CHECK, store_load_signature, threshold_load_signature,
                      weight_load_signature)
from .protocol import ERR_BITS
from .toolchain import LUTRAM_OK_ATTR

#: Name of the accelerator's top-level Verilog module.
ACCEL_TOP = "tritium_accel"


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
        m = Module()
        if core.chain:
            # The chained array (hw/chain.py) holds the result memories, one per slice.
            m.submodules.chain = dp = PEChain(core, cfg.res_depth, init=self.init)
            m.d.comb += [dp.res_addr.eq(self.res_addr), self.res_data.eq(dp.res_data),
                         dp.res_sel.eq(self.res_sel), self.res_word.eq(dp.res_word)]
        else:
            m.submodules.core = dp = Core(core, init=self.init)
        wiring.connect(m, wiring.flipped(self.tload), dp.tload)
        m.submodules.controller = ctrl = Controller(cfg)
        m.submodules.addresses = addresses = AddressGenerator(cfg)
        m.submodules.fetch = fetch = ActivationFetch(cfg)
        m.submodules.output = output = OutputPath(cfg, self.res_layout)
        m.d.comb += [
            ctrl.start.eq(self.start), self.busy.eq(ctrl.busy), self.done.eq(ctrl.done),
            self.error.eq(ctrl.error), self.error_code.eq(ctrl.error_code),
            self.cycles.eq(ctrl.cycles),
            addresses.config.eq(ctrl.config), addresses.bounds.eq(ctrl.bounds),
            addresses.run_start.eq(ctrl.run_start),
            fetch.config.eq(ctrl.config),
            output.config.eq(ctrl.config), output.bounds.eq(ctrl.bounds),
            output.running.eq(ctrl.running), ctrl.run_done.eq(output.result_done),
            output.act_we.eq(self.act_we), output.act_addr.eq(self.act_addr),
            output.act_data.eq(self.act_data),
        ]
        wiring.connect(m, addresses.beats, fetch.beats)
        wiring.connect(m, fetch.words, dp.inp)
        wiring.connect(m, dp.out, output.results)
        self._memories(m, ctrl, fetch, output)
        if cfg.store_depth:
            m.submodules.weight_copy = copy = WeightCopy(cfg)
            m.submodules[STORE_NAME] = store = Memory(shape=core.weight_width, depth=cfg.store_depth,
                                                      init=[], attrs=NO_RW_CHECK)
            wiring.connect(m, copy.store_rd, store.read_port())
            wiring.connect(m, copy.store_wr, store.write_port())
            wiring.connect(m, wiring.flipped(self.sload), copy.sload)
            wiring.connect(m, wiring.flipped(self.wload), copy.wload)
            wiring.connect(m, copy.banks, dp.wload)
            m.d.comb += [copy.start.eq(ctrl.load_start), copy.args.eq(ctrl.load_args),
                         ctrl.load_busy.eq(copy.busy)]
        else:
            wiring.connect(m, wiring.flipped(self.wload), dp.wload)
        return m

    def _memories(self, m, ctrl, fetch, output):
        """The program memory, the activation buffers and (without a chain) the result
        memory, with their ports on the components'."""
        cfg, core = self.cfg, self.cfg.core
        m.submodules.prog = prog = Memory(shape=isa.INSTR_BITS, depth=cfg.prog_depth,
                                          init=self.init.words["program"] if self.init else [],
                                          attrs=NO_RW_CHECK)
        wiring.connect(m, ctrl.prog, prog.read_port())
        prog_wr = prog.write_port()
        m.d.comb += [prog_wr.en.eq(self.prog_we), prog_wr.addr.eq(self.prog_addr),
                     prog_wr.data.eq(self.prog_data)]
        for k in range(2):
            m.submodules[f"act{k}"] = mem = Memory(shape=core.simd, depth=cfg.act_depth, init=[],
                                                   attrs=NO_RW_CHECK)
            wiring.connect(m, getattr(fetch, f"buf{k}"), mem.read_port())
            wiring.connect(m, getattr(output, f"buf{k}"),
                           mem.write_port(granularity=buffer_granularity(cfg)))
        # Results: written by RUNs, read by the host; no image initialises them, so ECP5
        # boards may put them in LUT RAM and leave the block RAMs to the model's memories.
        if not core.chain:
            m.submodules.results = res = Memory(shape=self.res_layout, depth=cfg.res_depth,
                                                init=[], attrs={**NO_RW_CHECK, LUTRAM_OK_ATTR: 1})
            res_rd = res.read_port()
            wiring.connect(m, output.res, res.write_port())
            m.d.comb += [res_rd.addr.eq(self.res_addr), self.res_data.eq(res_rd.data)]


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
