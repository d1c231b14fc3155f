"""The host link's bit-serial CRC-32 (zlib's) over the frame, the model image and a section.

:class:`SerialCrc` holds three CRC registers (``frame``, ``image``, ``section``) and
puts one byte at a time through those a request enables, one bit a cycle.
"""

import zlib

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

CRC_INIT = 0xFFFFFFFF
CRC_POLY = 0xEDB88320       # zlib's CRC-32, bit-reflected
#: The CRC register after data followed by its own CRC-32 (little-endian).
CRC_RESIDUE = zlib.crc32(bytes(4)) ^ CRC_INIT
#: The CRC registers, in the order of the flags that name them.
CRC_REGISTERS = ("frame", "image", "section")
#: The byte sources, the first taken unless ``from_<name>`` of another is high.
CRC_SOURCES = ("rx", "ram", "tx")


class CrcRequest(wiring.Signature):
    """What a requester of :class:`SerialCrc` drives: a byte to feed (``feed`` with the
    registers it goes through, ``image_zero``, ``shift``), registers to initialise and
    the byte's source. :func:`connect_requests` ORs several requesters into one CRC;
    only one feeds at a time."""

    def __init__(self):
        members = {"feed": Out(1), "image_zero": Out(1), "shift": Out(1)}
        members.update({f"to_{r}": Out(1) for r in CRC_REGISTERS})
        members.update({f"init_{r}": Out(1) for r in CRC_REGISTERS})
        members.update({f"from_{s}": Out(1) for s in CRC_SOURCES[1:]})
        super().__init__(members)


def connect_requests(m, crc, *requests):
    """Drive ``crc``'s request inputs with the OR of ``requests`` (:class:`CrcRequest`
    interfaces), member by member."""
    for name in CrcRequest().members:
        m.d.comb += getattr(crc, name).eq(
            Cat(getattr(r, name) for r in requests).any())


class SerialCrc(wiring.Component):
    """Bit-serial CRC-32 for the frame, image and section registers.

    ``feed`` starts a byte: for 8 cycles it goes through the registers whose
    ``to_<register>`` flag was high with it, least significant bit first.
    ``image_zero`` feeds the image register zeros instead (a CRC field counted as
    zeros); ``shift`` shifts the frame register without feedback (its bytes going
    out). ``init_<register>`` sets a register to the initial value a cycle later.

    Requests are registered (``pending``) before they reach the CRC registers: the
    requester's logic ends at a few flip-flops, not at every CRC bit. The byte is
    the request cycle's ``<source>_byte`` chosen by ``from_ram`` / ``from_tx`` (else
    ``rx_byte``). ``hold`` (a request pending or a byte shifting) is a register, set
    a cycle ahead: 9 cycles a byte.

    Parameters
    ----------
    registered : bool
        Register the sources and the choice among them every cycle; the byte then
        enters the data register in the pending cycle: only routing lies between a
        block RAM's output and a flip-flop (the ECP5 configuration). Without, the
        data register takes the chosen source every cycle the CRC is idle.

    Members
    -------
    feed, to_frame, to_image, to_section, image_zero, shift : In(1)
    init_frame, init_image, init_section : In(1)
    rx_byte, ram_byte, tx_byte : In(8)
    from_ram, from_tx : In(1)
    hold : Out(1)
    frame, image, section : Out(32)
        The CRC registers (initial value :data:`CRC_INIT`).
    """

    def __init__(self, registered=False):
        self.registered = registered
        members = {"feed": In(1), "image_zero": In(1), "shift": In(1), "hold": Out(1)}
        members.update({f"to_{r}": In(1) for r in CRC_REGISTERS})
        members.update({f"init_{r}": In(1) for r in CRC_REGISTERS})
        members.update({f"{s}_byte": In(8) for s in CRC_SOURCES})
        members.update({f"from_{s}": In(1) for s in CRC_SOURCES[1:]})
        members.update({r: Out(32, init=CRC_INIT) for r in CRC_REGISTERS})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        regs = {r: getattr(self, r) for r in CRC_REGISTERS}
        busy, pending = Signal(name="busy"), Signal(name="pending")
        data, count = Signal(8), Signal(3)
        enabled = {r: Signal(name=f"{r}_en") for r in CRC_REGISTERS}
        image_zero, shift = Signal(), Signal()
        last_bit = count == 7
        bit = data[0]
        with m.If(busy):
            m.d.sync += [data.eq(data[1:]), count.eq(count + 1)]
            with m.If(last_bit):
                m.d.sync += busy.eq(0)
            feedback = {"frame": (regs["frame"][0] ^ bit) & ~shift,
                        "image": regs["image"][0] ^ (bit & ~image_zero),
                        "section": regs["section"][0] ^ bit}
            for r, reg in regs.items():
                with m.If(enabled[r]):
                    m.d.sync += reg.eq(reg[1:] ^ Mux(feedback[r], CRC_POLY, 0))

        sources = {s: getattr(self, f"{s}_byte") for s in CRC_SOURCES}
        chosen = {s: getattr(self, f"from_{s}") for s in CRC_SOURCES[1:]}
        if self.registered:
            # The request cycle's sources and choice, registered; the byte enters the
            # data register in the pending cycle, before its first bit shifts.
            src_q = {s: Signal(8, name=f"src_{s}") for s in CRC_SOURCES}
            sel_q = {s: Signal(name=f"sel_{s}") for s in CRC_SOURCES[1:]}
            m.d.sync += [src_q[s].eq(sources[s]) for s in CRC_SOURCES]
            m.d.sync += [sel_q[s].eq(chosen[s]) for s in CRC_SOURCES[1:]]
            byte = src_q[CRC_SOURCES[0]]
            for s in CRC_SOURCES[1:]:
                byte = Mux(sel_q[s], src_q[s], byte)
            with m.If(pending):
                m.d.sync += data.eq(byte)
        else:
            # The data register holds the request cycle's byte once a request is pending.
            byte = sources[CRC_SOURCES[0]]
            for s in CRC_SOURCES[1:]:
                byte = Mux(chosen[s], sources[s], byte)
            with m.If(~self.hold):
                m.d.sync += data.eq(byte)

        flags = {r: getattr(self, f"to_{r}") for r in CRC_REGISTERS}
        flags.update(image_zero=self.image_zero, shift=self.shift)
        flags_q = {k: Signal(name=f"{k}_q") for k in flags}
        m.d.sync += [pending.eq(self.feed)] + [flags_q[k].eq(f) for k, f in flags.items()]
        # busy | pending of the next cycle: a request now, one pending, or a byte not done
        m.d.sync += self.hold.eq(self.feed | pending | (busy & ~last_bit))
        with m.If(pending):
            m.d.sync += [busy.eq(1), image_zero.eq(flags_q["image_zero"]),
                         shift.eq(flags_q["shift"])]
            m.d.sync += [enabled[r].eq(flags_q[r]) for r in CRC_REGISTERS]
        # An init lands a cycle after its request. Every init comes at least a cycle before
        # the register's next feed, whose first bit goes in two cycles after the feed's
        # request: nothing is lost.
        for r, reg in regs.items():
            init = Signal(name=f"init_{r}_q")
            m.d.sync += init.eq(getattr(self, f"init_{r}"))
            with m.If(init):
                m.d.sync += reg.eq(CRC_INIT)
        return m
