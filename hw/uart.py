"""UART 8N1 receiver and transmitter as byte streams (board-independent).

A serial line carries, per byte, one start bit (0), eight data bits least
significant first, and one stop bit (1); the line idles at 1. Both sides time
bits with a clock divider ``divisor = round(clk_freq / baud)``
(:func:`uart_divisor`), so the bit time is off by at most half a clock
cycle; the receiver samples in the middle of each bit, which tolerates a
baud-rate mismatch of a few percent (the sample of the stop bit drifts by
``10 * error`` bit times).

:class:`UARTRx` is a stream *source* (``rx``), :class:`UARTTx` a stream
*sink* (``tx``), both :class:`amaranth.lib.stream` byte streams;
:class:`UART` has both.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .config import ConfigError

#: Data bits per frame (8N1).
DATA_BITS = 8
#: Smallest divisor (clock cycles per bit) that keeps mid-bit sampling meaningful.
MIN_DIVISOR = 4


def uart_divisor(clk_freq, baud):
    """Clock cycles per bit: ``round(clk_freq / baud)``, refused below :data:`MIN_DIVISOR`."""
    if baud <= 0 or clk_freq <= 0:
        raise ConfigError(f"UART needs a positive clock and baud rate (got {clk_freq}, {baud})")
    divisor = int(round(clk_freq / baud))
    if divisor < MIN_DIVISOR:
        raise ConfigError(f"UART: {baud} baud is too fast for a {clk_freq / 1e6:g} MHz clock "
                          f"(needs at least {MIN_DIVISOR} clock cycles per bit)")
    return divisor


def _check_divisor(component, divisor):
    if not isinstance(divisor, int) or divisor < MIN_DIVISOR:
        component._MustUse__silence = True       # refused: never elaborated, no warning
        raise ConfigError(f"UART divisor must be an integer >= {MIN_DIVISOR}, got {divisor!r}")


class UARTRx(wiring.Component):
    """8N1 receiver: the ``rx`` pin in, received bytes out as a stream.

    The pin passes a two-flip-flop synchroniser. A falling edge starts a
    frame; the start bit is checked half a bit later (a glitch shorter than
    that is ignored), then each data bit and the stop bit are sampled one bit
    time apart, mid-bit. A byte whose stop bit is 0 is dropped and flagged
    in ``framing_error``; the receiver then waits for the line to return to
    1 before it looks for the next start bit (a break does not repeat the
    error). A byte that arrives while the previous one is still not taken
    (``stream.valid`` and not ``ready``) is dropped and flagged in
    ``overrun``.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (see :func:`uart_divisor`).

    Members
    -------
    pin : In(1)
        The serial input (idle 1).
    stream : Out(stream.Signature(8))
        Received bytes.
    framing_error, overrun : Out(1)
        One-cycle pulses.
    """

    def __init__(self, divisor):
        _check_divisor(self, divisor)
        self.divisor = divisor
        super().__init__({"pin": In(1, init=1), "stream": Out(stream.Signature(8)),
                          "framing_error": Out(1), "overrun": Out(1)})

    def elaborate(self, platform):
        m = Module()
        sync_ff = Signal(2, init=0b11)
        m.d.sync += sync_ff.eq((sync_ff << 1) | self.pin)
        line = sync_ff[1]

        timer = Signal(range(self.divisor))
        bit = Signal(range(DATA_BITS + 1))
        shreg = Signal(DATA_BITS)

        with m.If(self.stream.ready):
            m.d.sync += self.stream.valid.eq(0)

        with m.FSM(name="uart_rx"):
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):          # a glitch, not a start bit
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [timer.eq(self.divisor - 1), bit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [timer.eq(self.divisor - 1), shreg.eq((shreg >> 1) | (line << 7)),
                                 bit.eq(bit + 1)]
                    with m.If(bit == DATA_BITS - 1):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    with m.If(self.stream.valid & ~self.stream.ready):
                        m.d.comb += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.stream.payload.eq(shreg), self.stream.valid.eq(1)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += self.framing_error.eq(1)
                    m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """8N1 transmitter: bytes in as a stream, the ``tx`` pin out.

    A byte is taken (``ready``) only while the transmitter is idle; it then
    leaves as start bit, eight data bits and stop bit, ``divisor`` cycles
    each. Back-to-back bytes follow one another without idle time.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (see :func:`uart_divisor`).

    Members
    -------
    stream : In(stream.Signature(8))
        Bytes to send.
    pin : Out(1)
        The serial output (idle 1).
    busy : Out(1)
        A frame is being sent.
    """

    def __init__(self, divisor):
        _check_divisor(self, divisor)
        self.divisor = divisor
        super().__init__({"stream": In(stream.Signature(8)), "pin": Out(1, init=1),
                          "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        frame = Signal(DATA_BITS + 2, init=(1 << (DATA_BITS + 2)) - 1)     # stop, data, start: shifted out LSB first
        left = Signal(range(DATA_BITS + 3))          # bits still to send
        m.d.comb += [self.pin.eq(frame[0]), self.busy.eq(left != 0),
                     self.stream.ready.eq(left == 0)]
        with m.If(self.stream.valid & self.stream.ready):
            m.d.sync += [frame.eq((1 << (DATA_BITS + 1)) | (self.stream.payload << 1)),
                         left.eq(DATA_BITS + 2), timer.eq(self.divisor - 1)]
        with m.Elif(left != 0):
            with m.If(timer != 0):
                m.d.sync += timer.eq(timer - 1)
            with m.Else():
                m.d.sync += [frame.eq((frame >> 1) | (1 << (DATA_BITS + 1))), left.eq(left - 1),
                             timer.eq(self.divisor - 1)]
        return m


class UART(wiring.Component):
    """Receiver and transmitter sharing one divisor.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (see :func:`uart_divisor`).

    Members
    -------
    rx_pin : In(1)
    tx_pin : Out(1)
    rx : Out(stream.Signature(8))
        Received bytes (source).
    tx : In(stream.Signature(8))
        Bytes to send (sink).
    framing_error, overrun : Out(1)
        Receiver error pulses (see :class:`UARTRx`).
    """

    def __init__(self, divisor):
        _check_divisor(self, divisor)
        self.divisor = divisor
        super().__init__({"rx_pin": In(1, init=1), "tx_pin": Out(1, init=1),
                          "rx": Out(stream.Signature(8)), "tx": In(stream.Signature(8)),
                          "framing_error": Out(1), "overrun": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver = rx = UARTRx(self.divisor)
        m.submodules.transmitter = tx = UARTTx(self.divisor)
        wiring.connect(m, rx.stream, wiring.flipped(self.rx))
        wiring.connect(m, wiring.flipped(self.tx), tx.stream)
        m.d.comb += [rx.pin.eq(self.rx_pin), self.tx_pin.eq(tx.pin),
                     self.framing_error.eq(rx.framing_error), self.overrun.eq(rx.overrun)]
        return m
