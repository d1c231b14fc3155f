"""The host link's response sender: STATUS, NAK and RESULTS frames onto a byte stream.

:class:`ResponseSender` sends one response frame (:mod:`tritium.hw.protocol`) a
request asks for; the frame CRC comes from the link's :class:`~tritium.hw.host_crc.SerialCrc`.
"""

import enum

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .protocol import (ERR_BITS, FLAG_IMAGE_FAILED, FLAG_IMAGE_VALID, NAK, RESPONSE_FLAG,
                       RESPONSE_START, STATUS_PAYLOAD, Err, Nak, State, acc_bytes)


class Response(enum.IntEnum):
    """The kinds of response frame."""
    STATUS = 0
    NAK = 1
    RESULTS = 2


class ResponseSender(wiring.Component):
    """One response frame, byte by byte, each (but the start byte) through the frame CRC.

    A pulse on ``send_status``, ``send_nak`` (with ``nak_reason``) or ``send_results``
    sets the response up; the frame goes out on ``tx`` while ``active`` (the CRC's
    ``feed``/``shift`` requests and ``crc_hold`` pace it). ``done`` marks the transfer
    of the frame's last byte.

    Every byte leaves from a register (``byte``, also the CRC's source), computed a
    cycle ahead; ``tx.valid`` waits two settled cycles after a transfer, a CRC byte
    or ``prep`` (plus ``res_latency`` with a chained array): the byte selection is
    on no path into the UART or the CRC.

    Parameters
    ----------
    cfg : AccelConfig
        Its result memory's depth and entries, and its hash (in STATUS).
    image_pos_bits : int
        Width of ``image_pos``.

    Members
    -------
    tx : Out(stream.Signature(8))
    active : In(1)
        The link sends (its transmit state, the CRC idle).
    prep : In(1)
        The link sets the response up (the cycles before ``active``).
    send_status, send_nak, send_results : In(1)
    nak_reason : In(range(max(Nak) + 1))
    cmd, seq : In(8)
        The request's command and sequence number.
    first, count : In(16)
        RESULTS: the first entry and the number of entries.
    feed, shift, byte : Out(1), Out(1), Out(8)
        The CRC request for the byte transferred (``shift``: a CRC byte) and the byte.
    crc_hold : In(1)
    frame_crc : In(32)
    done : Out(1)
    run_done, run_error : In(1)
    cycles : In(32)
    image_valid, image_failed : In(1)
    error : In(ERR_BITS)
    image_pos : In(image_pos_bits)
        STATUS fields.
    entry : Out(range(res_depth + 1)), acc_index : Out(range(max(pe, 2)))
    acc_value : In(signed(acc_bits))
        The result read: accumulator ``acc_index`` of entry ``entry``, ``res_latency``
        cycles later (without a chain: the same cycle).
    """

    def __init__(self, cfg, image_pos_bits):
        core = cfg.core
        self.cfg = cfg
        self.acc_bytes = acc_bytes(core.acc_bits)
        self.entry_bytes = core.pe * self.acc_bytes
        self.max_len = max(STATUS_PAYLOAD.size, cfg.res_depth * self.entry_bytes)
        super().__init__({
            "tx": Out(stream.Signature(8)), "active": In(1), "prep": In(1),
            "send_status": In(1), "send_nak": In(1), "send_results": In(1),
            "nak_reason": In(range(max(Nak) + 1)), "cmd": In(8), "seq": In(8),
            "first": In(16), "count": In(16),
            "feed": Out(1), "shift": Out(1), "byte": Out(8), "crc_hold": In(1),
            "frame_crc": In(32), "done": Out(1),
            "run_done": In(1), "run_error": In(1), "cycles": In(32), "image_valid": In(1),
            "image_failed": In(1), "error": In(ERR_BITS), "image_pos": In(image_pos_bits),
            "entry": Out(range(cfg.res_depth + 1)), "acc_index": Out(range(max(core.pe, 2))),
            "acc_value": In(signed(core.acc_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        kind = Signal(Response)
        length = Signal(range(self.max_len + 1))
        reason = Signal(range(max(Nak) + 1))
        phase = Signal(2)               # 0 header, 1 payload, 2 CRC
        index = Signal(len(length))     # byte within the phase
        acc_byte = Signal(range(self.acc_bytes))
        for pulse, k, n in [(self.send_status, Response.STATUS, STATUS_PAYLOAD.size),
                            (self.send_nak, Response.NAK, 2),
                            (self.send_results, Response.RESULTS, self.count * self.entry_bytes)]:
            with m.If(pulse):
                m.d.sync += [kind.eq(k), length.eq(n), phase.eq(0), index.eq(0)]
        with m.If(self.send_nak):
            m.d.sync += reason.eq(self.nak_reason)

        payload = self._payload(m, kind, reason, index[:5], acc_byte)
        head = [RESPONSE_START, Mux(kind == Response.NAK, NAK, self.cmd | RESPONSE_FLAG),
                self.seq, length[:8], length[8:]]
        out = Signal(8)
        with m.Switch(phase):
            with m.Case(0):
                with m.Switch(index[:3]):
                    for k, h in enumerate(head):
                        with m.Case(k):
                            m.d.comb += out.eq(h)
            with m.Case(1):
                m.d.comb += out.eq(payload)
            with m.Default():       # the CRC, low byte first, shifted out of its register
                m.d.comb += out.eq(~self.frame_crc[:8])
        last = Signal()                 # index + 1 == length, registered
        m.d.sync += [self.byte.eq(out), last.eq(index + 1 == length)]
        valid = self._pace(m)
        self._advance(m, phase, index, length, last, acc_byte)
        with m.If(self.active):
            m.d.comb += [self.tx.payload.eq(self.byte), self.tx.valid.eq(valid)]
        return m

    def _payload(self, m, kind, reason, status_index, acc_byte):
        """The payload byte at the current index, registered."""
        cfg = self.cfg
        # STATUS: without an image and without an error it says why START is refused.
        # (registered: they change a response's bytes before the first goes out)
        state = Signal(8, name="status_state")
        m.d.sync += state.eq(Mux(self.run_error, int(State.ERROR),
                                 Mux(self.run_done, int(State.DONE), int(State.IDLE))))
        err_out = Signal(8, name="status_err")
        m.d.sync += err_out.eq(Mux(self.image_valid | self.image_failed | (self.error != 0),
                                   self.error, Mux(self.image_pos == 0, Err.NO_IMAGE,
                                                   Err.IMAGE_INCOMPLETE)))
        assert (FLAG_IMAGE_VALID, FLAG_IMAGE_FAILED) == (1, 2)
        hw_hash = int.from_bytes(bytes.fromhex(cfg.hash), "little")
        status_bits = Cat(state, err_out, self.image_valid, self.image_failed, Const(0, 14),
                          Const(hw_hash, 64), self.cycles, self.image_pos,
                          Const(0, 32 - len(self.image_pos)))
        assert len(status_bits) == 8 * STATUS_PAYLOAD.size
        acc = Signal(8 * self.acc_bytes)
        m.d.comb += acc.eq(self.acc_value)      # sign-extended
        payload, payload_q = Signal(8), Signal(8, name="payload_q")
        m.d.sync += payload_q.eq(payload)
        with m.Switch(kind):
            with m.Case(Response.STATUS):
                select_byte(m, payload, status_bits, status_index)
            with m.Case(Response.NAK):
                m.d.comb += payload.eq(Mux(status_index[0], self.cmd, reason))
            with m.Default():
                select_byte(m, payload, acc, acc_byte)
        return payload_q

    def _pace(self, m):
        """``tx.valid`` for the registered byte: two register stages (the payload's and
        ``byte``) after a change, so high two settled cycles after the last transfer,
        CRC bit or ``prep``."""
        valid = Signal(name="out_ok")
        settled = ~(self.tx.valid & self.tx.ready) & ~self.crc_hold & ~self.prep
        if self.cfg.core.chain:
            # The result read takes res_latency cycles more: as many settled cycles more.
            need = 2 + self.cfg.res_latency
            run = Signal(range(need + 1), name="out_settled")
            m.d.sync += [run.eq(Mux(settled, Mux(run == need, need, run + 1), 0)),
                         valid.eq(settled & (run >= need - 1))]
        else:
            settled_q = Signal(name="out_ok1")
            m.d.sync += [settled_q.eq(settled), valid.eq(settled_q & settled)]
        return valid

    def _advance(self, m, phase, index, length, last, acc_byte):
        """A transfer: the next byte's place, the CRC request, the end of the frame."""
        core = self.cfg.core
        entry, acc_index = self.entry, self.acc_index
        # (a new result address has the serial CRC's cycles to be read: no stall needed)
        with m.If(self.active & self.tx.valid & self.tx.ready):
            m.d.sync += index.eq(index + 1)
            with m.If((phase != 0) | (index != 0)):
                m.d.comb += [self.feed.eq(1), self.shift.eq(phase == 2)]
            with m.If((phase == 0) & (index == 4)):
                m.d.sync += [index.eq(0), phase.eq(Mux(length == 0, 2, 1)),
                             entry.eq(self.first), acc_index.eq(0), acc_byte.eq(0)]
            with m.If(phase == 1):
                with m.If(last):
                    m.d.sync += [index.eq(0), phase.eq(2)]
                with m.If(acc_byte == self.acc_bytes - 1):
                    m.d.sync += [acc_byte.eq(0), acc_index.eq(acc_index + 1)]
                    with m.If(acc_index == core.pe - 1):
                        m.d.sync += [acc_index.eq(0), entry.eq(entry + 1)]
                with m.Else():
                    m.d.sync += acc_byte.eq(acc_byte + 1)
            with m.If((phase == 2) & (index == 3)):
                m.d.comb += self.done.eq(1)


def select_byte(m, out, value, index):
    """``out = value.word_select(index, 8)`` as a case statement (smaller than a shifter)."""
    with m.Switch(index):
        for k in range(len(value) // 8):
            with m.Case(k):
                m.d.comb += out.eq(value[8 * k:8 * k + 8])
