"""The host link's request receiver and the payload buffer's cursor.

:class:`RequestReceiver` takes request frames (:mod:`tritium.hw.protocol`) off a byte
stream: the header into its registers, the payload into the buffer, every byte but the
start byte through the frame CRC. It holds a good request, or the reason it refused a
frame, until the link has answered. :class:`PayloadCursor` is the buffer address the
receiver writes the payload at and the link's readers read it back from.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import WritePort
from amaranth.lib.wiring import In, Out

from .host_crc import CRC_RESIDUE, CrcRequest
from .protocol import MAX_PAYLOAD, REQUEST_START

#: Address bits of a payload byte in the link's buffer.
PAYLOAD_ADDR_BITS = (MAX_PAYLOAD).bit_length()


def greater_than(x, c):
    """``x > c`` for a constant ``c``: for ``c + 1`` or ``c`` a power of two a few
    OR gates over ``x``'s high bits instead of a subtractor."""
    if c + 1 & c == 0:                      # c = 2**k - 1: x has a bit at k or above
        return x[c.bit_length():] != 0
    if c & (c - 1) == 0:                    # c = 2**k: above k, or bit k and any below
        k = c.bit_length() - 1
        return (x[k + 1:] != 0) | (x[k] & (x[:k] != 0))
    return x > c


class PayloadCursor(wiring.Component):
    """A payload byte's index in the buffer and whether it is the end (``index == length``).

    ``at_end`` is a register beside ``index``: ``index + 1 == length`` is registered
    every cycle, and a ``step`` takes it. ``index`` never steps in two cycles running
    (a received byte takes the CRC's cycles, a read byte a read cycle first), so a step
    finds it settled and the comparator is on no path of the step's.

    Members
    -------
    length : In(range(MAX_PAYLOAD + 1))
    step : In(1)
        ``index + 1`` (and its end test) into the registers.
    load, load_index, load_at_end : In(1), In(...), In(1)
        Set ``index`` and ``at_end`` (the loader knows the end: ``length`` may change
        in the same cycle); takes precedence over ``step``.
    index : Out(range(MAX_PAYLOAD + 1))
    at_end : Out(1)
    """

    def __init__(self):
        index = range(MAX_PAYLOAD + 1)
        super().__init__({"length": In(index), "step": In(1), "load": In(1),
                          "load_index": In(index), "load_at_end": In(1),
                          "index": Out(index), "at_end": Out(1)})

    def elaborate(self, platform):
        m = Module()
        end_next = Signal()
        m.d.sync += end_next.eq(self.index + 1 == self.length)
        with m.If(self.load):
            m.d.sync += [self.index.eq(self.load_index), self.at_end.eq(self.load_at_end)]
        with m.Elif(self.step):
            m.d.sync += [self.index.eq(self.index + 1), self.at_end.eq(end_next)]
        return m


#: The states that hold a frame for the link, and the flag each raises.
HELD_STATES = {"REQUEST": "request", "NAK_LENGTH": "nak_length", "NAK_TIMEOUT": "nak_timeout",
               "NAK_CRC": "nak_crc"}


class ReceivedFrame(wiring.Signature):
    """What :class:`RequestReceiver` holds once a frame is in.

    ``request`` (a good frame: ``cmd``, ``seq``, ``length``, ``arg`` its first four
    payload bytes, little-endian) or one of ``nak_length`` (over ``MAX_PAYLOAD``),
    ``nak_timeout`` (idle mid-frame), ``nak_crc`` (a bad frame CRC) stays high until
    ``release``, a cycle in which the link has sent its response.
    """

    def __init__(self):
        super().__init__({
            "request": Out(1), "nak_length": Out(1), "nak_timeout": Out(1), "nak_crc": Out(1),
            "cmd": Out(8), "seq": Out(8), "length": Out(range(MAX_PAYLOAD + 1)), "arg": Out(32),
            "release": In(1),
        })


class RequestReceiver(wiring.Component):
    """A request frame off ``rx``: header into registers, payload into the buffer.

    The UART's byte is taken into ``byte`` whenever that register is free
    (``rx.ready`` is its empty flag, a flip-flop), and the receiving states consume
    it: the link holds one byte and the UART one more. Each byte but the start byte
    goes through the frame CRC (``crc.feed`` with ``to_frame``; its source is
    ``byte``), and the state machine holds while the CRC works (``crc_hold``): 11
    cycles a byte. The CRC bytes go through it too: a good frame leaves
    :data:`~tritium.hw.host_crc.CRC_RESIDUE` (``frame_crc``).

    A frame's header starts at the start byte; garbage before it is dropped, and
    ``idle_timeout`` cycles without a byte drop a half-received header silently and
    refuse a half-received payload or CRC (``nak_timeout``).

    Parameters
    ----------
    idle_timeout : int
        Cycles without a byte that end a frame.

    Members
    -------
    rx : In(stream.Signature(8))
    frame : Out(ReceivedFrame())
    crc : Out(CrcRequest())
    crc_hold : In(1)
    frame_crc : In(32)
    byte : Out(8)
        The received byte (the CRC's ``rx_byte`` source).
    write : Out(WritePort.Signature(addr_width=PAYLOAD_ADDR_BITS, shape=8))
        A payload byte into the buffer, at ``cursor_index``.
    cursor : Out(cursor signature)
        Drives a :class:`PayloadCursor`: ``length``, its loads and steps.
    cursor_index : In, cursor_at_end : In(1)
    receiving : Out(1)
        Waiting for or taking a frame's bytes (not checking, not held).
    """

    def __init__(self, idle_timeout):
        if idle_timeout < 2:
            raise ValueError("the idle timeout is at least 2 cycles")
        self.idle_timeout = int(idle_timeout)
        index = range(MAX_PAYLOAD + 1)
        cursor = wiring.Signature({"length": Out(index), "step": Out(1), "load": Out(1),
                                   "load_index": Out(index), "load_at_end": Out(1)})
        super().__init__({
            "rx": In(stream.Signature(8)), "frame": Out(ReceivedFrame()),
            "crc": Out(CrcRequest()), "crc_hold": In(1), "frame_crc": In(32),
            "byte": Out(8), "write": Out(WritePort.Signature(addr_width=PAYLOAD_ADDR_BITS,
                                                             shape=8)),
            "cursor": Out(cursor), "cursor_index": In(index), "cursor_at_end": In(1),
            "receiving": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        frame, byte = self.frame, self.byte
        full = Signal()                 # ``byte`` holds a byte not yet consumed
        m.d.comb += self.rx.ready.eq(~full)
        with m.If(self.rx.valid & ~full):
            m.d.sync += [byte.eq(self.rx.payload), full.eq(1)]
        got = Signal()                  # a receiving state consumes ``byte``
        m.d.comb += [self.write.addr.eq(self.cursor_index), self.write.data.eq(byte),
                     self.cursor.length.eq(frame.length)]
        # Idle timer: from 2**n - (timeout - 1) up; its top bit is the timeout.
        idle_bits = (self.idle_timeout - 1).bit_length()
        idle = Signal(idle_bits + 1)
        idle_start = (1 << idle_bits) - (self.idle_timeout - 1)
        header_byte = Signal(2)         # HEAD: which header byte; CRC: which CRC byte
        length_bad = Signal()           # the header's length is over MAX_PAYLOAD

        def consume():
            m.d.comb += got.eq(full)
            with m.If(full):
                m.d.sync += full.eq(0)

        def receiving(timeout_state):
            """Consume a byte into the CRC, or count an idle cycle."""
            consume()
            with m.If(got):
                m.d.sync += idle.eq(idle_start)
                m.d.comb += [self.crc.feed.eq(1), self.crc.to_frame.eq(1)]
            with m.Elif(idle[-1]):
                m.next = timeout_state
            with m.Else():
                m.d.sync += idle.eq(idle + 1)

        with m.If(~self.crc_hold), m.FSM(name="receiver") as fsm:
            with m.State("SYNC"):
                consume()
                m.d.sync += [idle.eq(idle_start), header_byte.eq(0)]
                m.d.comb += self.crc.init_frame.eq(1)
                with m.If(got & (byte == REQUEST_START)):
                    m.next = "HEAD"

            with m.State("HEAD"):       # cmd, seq, length (little-endian)
                receiving("SYNC")
                with m.If(got):
                    m.d.sync += header_byte.eq(header_byte + 1)
                    length = Cat(frame.length[:8], byte)
                    with m.Switch(header_byte):
                        with m.Case(0):
                            m.d.sync += frame.cmd.eq(byte)
                        with m.Case(1):
                            m.d.sync += frame.seq.eq(byte)
                        with m.Case(2):
                            m.d.sync += frame.length[:8].eq(byte)
                        with m.Case(3):
                            m.d.sync += [frame.length.eq(length),
                                         length_bad.eq(greater_than(length, MAX_PAYLOAD))]
                            m.d.comb += [self.cursor.load.eq(1),
                                         self.cursor.load_at_end.eq(length == 0)]
                            m.next = "HEAD_CHK"

            with m.State("HEAD_CHK"):   # the length tests, from registers
                with m.If(length_bad):
                    m.next = "NAK_LENGTH"
                with m.Elif(self.cursor_at_end):
                    m.next = "CRC"
                with m.Else():
                    m.next = "PAYLOAD"

            with m.State("PAYLOAD"):
                with m.If(self.cursor_at_end):
                    m.next = "CRC"
                with m.Else():
                    receiving("NAK_TIMEOUT")
                with m.If(got):
                    m.d.comb += [self.write.en.eq(1), self.cursor.step.eq(1)]
                    with m.If(self.cursor_index < 4):
                        m.d.sync += frame.arg.eq(Cat(frame.arg[8:], byte))

            with m.State("CRC"):        # a good frame leaves the residue
                receiving("NAK_TIMEOUT")
                with m.If(got):
                    m.d.sync += header_byte.eq(header_byte + 1)
                    with m.If(header_byte == 3):
                        # the readers start at the payload's 5th byte
                        m.d.comb += [self.cursor.load.eq(1), self.cursor.load_index.eq(4),
                                     self.cursor.load_at_end.eq(frame.length == 4)]
                        m.next = "CRC_CHK"

            with m.State("CRC_CHK"):
                with m.If(self.frame_crc == CRC_RESIDUE):
                    m.next = "REQUEST"
                with m.Else():
                    m.next = "NAK_CRC"

            for state in HELD_STATES:
                with m.State(state):
                    with m.If(frame.release):
                        m.next = "SYNC"

        m.d.comb += [getattr(frame, HELD_STATES[state]).eq(fsm.ongoing(state))
                     for state in HELD_STATES]
        m.d.comb += self.receiving.eq(Cat(fsm.ongoing(s)
                                          for s in ["SYNC", "HEAD", "PAYLOAD", "CRC"]).any())
        return m
