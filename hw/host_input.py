"""The host link's input writer: an INPUT request's words into the activation buffer."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import WritePort
from amaranth.lib.wiring import In, Out

from .host_receiver import greater_than
from .protocol import MAX_PAYLOAD, input_word_bytes


class InputWriter(wiring.Component):
    """An INPUT payload's words (from its 5th byte) into buffer 0 from word ``first`` on.

    A ``start`` pulse takes ``first``; the writer then reads the payload byte by byte
    (``step`` the cursor, ``shift`` the byte into the link's word assembler) and writes
    each whole word, little-endian, to ``act``. At the payload's end one of
    ``done_ok``, ``done_length`` (a word cut short) or ``done_range`` (a word past the
    buffer; none of those is written) is high for a cycle, and the writer is idle again.

    Every state waits while ``hold`` (the link's serial CRC works).

    Parameters
    ----------
    cfg : AccelConfig
    addr_width, data_width : int
        Of the accelerator's activation write port.

    Members
    -------
    start : In(1)
    first : In(32)
    hold : In(1)
    step : Out(1), at_end : In(1)
        The payload cursor.
    shift : Out(1)
        The byte read (a cycle after the cursor moved) into the word assembler.
    word : In(8 * input_word_bytes(simd))
        The assembler's last bytes.
    act : Out(WritePort.Signature(addr_width, shape=data_width))
        The word's write; with ``cfg.act_reg`` from registers (it lands a cycle later):
        the range test and the state decode end there.
    done_ok, done_length, done_range : Out(1)
    """

    def __init__(self, cfg, addr_width, data_width):
        self.cfg = cfg
        self.word_bytes = input_word_bytes(cfg.core.simd)
        super().__init__({
            "start": In(1), "first": In(32), "hold": In(1),
            "step": Out(1), "at_end": In(1), "shift": Out(1), "word": In(8 * self.word_bytes),
            "act": Out(WritePort.Signature(addr_width=addr_width, shape=data_width)),
            "done_ok": Out(1), "done_length": Out(1), "done_range": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        last_word = self.cfg.act_depth - 1
        address = Signal(range(self.cfg.act_depth + MAX_PAYLOAD + 1))
        out_of_range = Signal()         # a word was (or starts) past the buffer
        word_byte = Signal(range(self.word_bytes))
        word_ready = Signal()           # a whole word waits in the assembler
        if self.cfg.act_reg:
            m.d.sync += self.act.en.eq(0)
        with m.If(~self.hold), m.FSM(name="input"):
            with m.State("IDLE"):
                m.d.sync += [out_of_range.eq(greater_than(self.first, last_word)),
                             address.eq(self.first), word_byte.eq(0), word_ready.eq(0)]
                with m.If(self.start):
                    m.next = "READ"
            with m.State("READ"):       # the read of the cursor's byte; a word's write
                with m.If(word_ready):
                    m.d.sync += [word_ready.eq(0), address.eq(address + 1)]
                    with m.If(~out_of_range & ~greater_than(address, last_word)):
                        write = [self.act.en.eq(1), self.act.addr.eq(address),
                                 self.act.data.eq(self.word)]
                        if self.cfg.act_reg:
                            m.d.sync += write
                        else:
                            m.d.comb += write
                    with m.Else():
                        m.d.sync += out_of_range.eq(1)
                with m.If(self.at_end):
                    with m.If(word_byte != 0):
                        m.d.comb += self.done_length.eq(1)
                    with m.Elif(out_of_range |
                                (word_ready & greater_than(address, last_word))):
                        m.d.comb += self.done_range.eq(1)
                    with m.Else():
                        m.d.comb += self.done_ok.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.next = "USE"
            with m.State("USE"):        # the byte into the assembler
                m.d.comb += [self.shift.eq(1), self.step.eq(1)]
                with m.If(word_byte == self.word_bytes - 1):
                    m.d.sync += [word_byte.eq(0), word_ready.eq(1)]
                with m.Else():
                    m.d.sync += word_byte.eq(word_byte + 1)
                m.next = "READ"
        return m
