"""Board top level: PLL, UART, the accelerator behind its host link, status LEDs.

Vendor primitives (``SB_PLL40_PAD``, ``EHXPLLL``) live here only; the core
stays plain Verilog. The clock domain ``sync`` runs from the PLL at the
board's target frequency (:mod:`tritium.boards.clocks`) and is held in reset
until the PLL locks.

LEDs (as many as the board has, in this order): heartbeat (about 1 Hz, the
clock runs), image valid (a model is loaded or was in the bitstream), busy,
error.
"""

import math

from amaranth.hdl import Cat, ClockDomain, ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.build import ResourceError
from amaranth.lib import io, stream, wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

from ..hw.accel import Accelerator
from ..hw.uart import UART, uart_divisor
from .clocks import ecp5_pll, ice40_pll


def _ice40_clock(m, platform, board):
    pll = ice40_pll(board.clk_in_mhz, board.target_mhz)
    # The oscillator pin is the PLL's own pad: SB_PLL40_PAD takes it without a buffer.
    pad = platform.request(platform.default_clk, dir="-")
    clk, lock = Signal(), Signal()
    m.submodules.pll = Instance(
        "SB_PLL40_PAD",
        p_FEEDBACK_PATH="SIMPLE", p_PLLOUT_SELECT="GENCLK",
        p_DIVR=pll.divr, p_DIVF=pll.divf, p_DIVQ=pll.divq, p_FILTER_RANGE=pll.filter_range,
        i_PACKAGEPIN=pad.io, i_RESETB=1, i_BYPASS=0,
        o_PLLOUTGLOBAL=clk, o_LOCK=lock)
    return clk, lock, pll.f_out


def _ecp5_clock(m, platform, board):
    pll = ecp5_pll(board.clk_in_mhz, board.target_mhz)
    m.submodules.clk_in = clk_in = io.Buffer("i", platform.request(platform.default_clk, dir="-"))
    clk, lock = Signal(), Signal()
    m.submodules.pll = Instance(
        "EHXPLLL",
        p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
        p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
        p_CLKI_DIV=pll.clki_div, p_CLKFB_DIV=pll.clkfb_div, p_CLKOP_DIV=pll.clkop_div,
        p_CLKOP_CPHASE=max(0, pll.clkop_div // 2 - 1), p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
        a_FREQUENCY_PIN_CLKI=f"{pll.f_in:g}", a_FREQUENCY_PIN_CLKOP=f"{pll.f_out:g}",
        a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
        a_MFG_GMCREF_SEL="2",
        i_CLKI=clk_in.i, i_CLKFB=clk, i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0,
        i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
        o_CLKOP=clk, o_LOCK=lock)
    return clk, lock, pll.f_out


CLOCKS = {"ice40": _ice40_clock, "ecp5": _ecp5_clock}


class BringUpLink(wiring.Component):
    """Stand-in for the host link until it exists: keeps the whole accelerator alive.

    Received bytes shift through a register that drives every accelerator
    input; the outputs fold into the transmitted bytes. No protocol: it
    only lets the board be built, sized and timed with all memories in use.

    Members
    -------
    rx : In(stream.Signature(8))
    tx : Out(stream.Signature(8))
    busy, error, image_ok : Out(1)
    """

    def __init__(self, cfg, init=None):
        self.accel = Accelerator(cfg, init=init)
        self.image_ok_at_reset = init is not None
        super().__init__({"rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8)),
                          "busy": Out(1), "error": Out(1), "image_ok": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.accel = accel = self.accel
        inputs = [p for name, p in _ports(accel, In)]
        width = sum(len(p) for p in inputs)
        shreg = Signal(width)
        m.d.comb += self.rx.ready.eq(1)
        with m.If(self.rx.valid):
            m.d.sync += shreg.eq((shreg << 8) | self.rx.payload)
        pos = 0
        for p in inputs:
            m.d.comb += p.eq(shreg[pos:pos + len(p)])
            pos += len(p)
        fold = Signal(8)
        bits = [b for name, p in _ports(accel, Out) for b in p]
        acc = 0
        for k in range(0, len(bits), 8):
            acc = acc ^ Cat(*bits[k:k + 8])
        m.d.sync += fold.eq(acc)
        m.d.comb += [self.tx.payload.eq(fold), self.tx.valid.eq(self.rx.valid),
                     self.busy.eq(accel.busy), self.error.eq(accel.error),
                     self.image_ok.eq(self.image_ok_at_reset)]
        return m


def _ports(component, flow):
    for path, member, value in component.signature.flatten(component):
        if member.flow == flow:
            yield path, value


def make_link(cfg, clk_hz, init):
    """The host link around the accelerator: :class:`~tritium.hw.host.HostLink`
    when present, else :class:`BringUpLink`."""
    try:
        from ..hw.host import HostLink
    except ImportError:
        return BringUpLink(cfg, init)
    return HostLink(cfg, clk_freq=clk_hz, image_valid_at_reset=init is not None, init=init)


def _link_status(link):
    if isinstance(link, BringUpLink):
        return link.image_ok, link.busy, link.error
    return link.status.image_ok, link.status.busy, link.status.error


class BoardCore(wiring.Component):
    """Everything of a board but its clocking and pins: UART, host link, LED logic.

    The unit the UART-level simulation runs (sim/cocotb_board.py): the board
    top instantiates it in the PLL's clock domain.

    Parameters
    ----------
    cfg : AccelConfig
    clk_hz : float
        Clock frequency (the UART divisor, the host link's timeouts, the heartbeat).
    baud : int
    init : MemoryInit or None
        Model memory contents; the image is valid from reset when given.

    Members
    -------
    rx_pin : In(1)
    tx_pin : Out(1)
    leds : Out(4)
        Heartbeat (about 1 Hz), image valid, busy, error.
    """

    def __init__(self, cfg, clk_hz, baud, init=None):
        self.cfg, self.clk_hz, self.baud, self.init = cfg, clk_hz, baud, init
        self.divisor = uart_divisor(clk_hz, baud)
        super().__init__({"rx_pin": In(1, init=1), "tx_pin": Out(1, init=1), "leds": Out(4)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart = uart = UART(self.divisor)
        m.d.comb += [uart.rx_pin.eq(self.rx_pin), self.tx_pin.eq(uart.tx_pin)]
        m.submodules.link = link = make_link(self.cfg, self.clk_hz, self.init)
        wiring.connect(m, uart.rx, link.rx)
        wiring.connect(m, link.tx, uart.tx)
        # The heartbeat is the top bit of a free-running counter (about 1 Hz): a plain
        # incrementer is one unbroken carry chain. A reloaded counter (a zero test, or a
        # prescaler's carry out into a second counter) is not: nextpnr splits its chains
        # into a path far longer than the PLL clock's period (docs/timing.md).
        beat = Signal(max(1, round(math.log2(self.clk_hz))))
        m.d.sync += beat.eq(beat + 1)
        heartbeat = beat[-1]
        image_ok, busy, error = _link_status(link)
        m.d.comb += self.leds.eq(Cat(heartbeat, image_ok, busy, error))
        return m


class BoardTop(Elaboratable):
    """The whole design of a board: PLL, reset synchroniser, :class:`BoardCore`, pins.

    Parameters
    ----------
    board : Board
    cfg : AccelConfig
    init : MemoryInit or None
        Model memory contents (placeholders for a hardware-only build).
    """

    def __init__(self, board, cfg, init=None):
        self.board, self.cfg, self.init = board, cfg, init
        self.f_mhz = None

    def elaborate(self, platform):
        board = self.board
        m = Module()
        clk, lock, self.f_mhz = CLOCKS[board.family](m, platform, board)
        m.domains.sync = ClockDomain("sync")
        m.d.comb += ClockSignal("sync").eq(clk)
        platform.add_clock_constraint(clk, self.f_mhz * 1e6)
        m.submodules.reset_sync = ResetSynchronizer(~lock, domain="sync")

        m.submodules.core = core = BoardCore(self.cfg, self.f_mhz * 1e6, board.baud, self.init)
        names = [io_.name for io_ in platform.lookup("uart", 0).ios if hasattr(io_, "name")]
        pins = platform.request("uart", 0, dir={name: "-" for name in names})
        m.submodules.rx_pin = rx_pin = io.Buffer("i", pins.rx)
        m.submodules.tx_pin = tx_pin = io.Buffer("o", pins.tx)
        m.d.comb += [core.rx_pin.eq(rx_pin.i), tx_pin.o.eq(core.tx_pin)]
        for k in range(4):
            try:
                led = io.Buffer("o", platform.request("led", k, dir="-"))
            except ResourceError:
                break
            m.submodules[f"led{k}"] = led
            m.d.comb += led.o.eq(core.leds[k])
        return m
