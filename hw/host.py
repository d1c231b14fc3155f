"""The framed host interface: byte streams in and out, the accelerator inside.

:class:`HostLink` receives request frames (:mod:`tritium.hw.protocol`) on a
byte stream, checks their CRC, executes them and sends a response frame on
another byte stream. A UART PHY (or any byte pipe) connects to ``rx`` / ``tx``.
It checks a model image as it streams in (header, section table, every CRC,
sizes against this configuration) and routes its sections into the
accelerator's memories; docs/host.md has the protocol and the state machine.
"""

import struct
from dataclasses import dataclass
from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .accel import Accelerator
from .accel_config import AccelConfig
from .config import ConfigError
from .host_crc import CRC_RESIDUE, SerialCrc
from .host_sender import Response, ResponseSender
from .image_format import HEADER as IMAGE_HEADER
from .image_format import IMAGE_VERSION, MAGIC, SECTION, SECTION_TYPES
from .isa import ISA_VERSION
from .layouts import NO_RW_CHECK
from .protocol import (ERR_BITS, IDLE_TIMEOUT_S, MAX_META, MAX_PAYLOAD, MAX_SECTIONS, Cmd, Err, Nak,
                       REQUEST_START, acc_bytes, input_word_bytes)

#: Buffer address of image offset 0 (the header and section table are kept there).
_IMAGE_BASE = MAX_PAYLOAD


def _header_fields():
    """(offset, size) of each field of the model-image header, from its struct."""
    fmt, out, offset = IMAGE_HEADER.format.lstrip("<"), [], 0
    for count, code in _struct_items(fmt):
        size = struct.calcsize("<" + (f"{count}{code}" if code == "s" else code))
        for _ in range(1 if code == "s" else count):
            out.append((offset, size))
            offset += size
    return out


def _struct_items(fmt):
    count = ""
    for ch in fmt:
        if ch.isdigit():
            count += ch
        else:
            yield int(count or 1), ch
            count = ""


# Header fields in order: magic, version, isa_version, n_sections, reserved, hw_hash, total, crc.
(_MAGIC_F, _VERSION_F, _ISA_F, _NSEC_F, _, _HASH_F, _TOTAL_F, _CRC_F) = _header_fields()
assert SECTION.size == 16 and _CRC_F[0] % 4 == 0 and IMAGE_HEADER.size % SECTION.size == 0
assert IMAGE_HEADER.size + MAX_SECTIONS * SECTION.size <= 256 and MAX_PAYLOAD % 256 == 0


@dataclass(frozen=True)
class SectionRoute:
    """Where the bytes of one model-image section go.

    A section is a sequence of memory words of ``word_bytes`` bytes each
    (little-endian; a memory keeps the low bits it holds), written
    ``depth`` words per bank, bank after bank, through ``write``.

    Parameters
    ----------
    name : str
        Section name (a key of :data:`tritium.hw.image_format.SECTION_TYPES`).
    word_bytes : int
        Bytes per memory word in the section.
    max_size : int
        Most bytes this configuration holds.
    exact : bool
        The size must be ``max_size`` (else at most ``max_size`` and a
        multiple of ``word_bytes``, which must then be a power of two).
    depth : int
        Words per bank.
    write : callable or None
        ``write(m, accel, en, bank, addr, word)`` drives the memory's write
        port; None for a section that is only checked (META).
    required : bool
        Every image has this section (PROGRAM, META). WEIGHTS and THRESHOLDS are absent
        from a later segment's image that keeps the memories as the run before it left
        them, WSTORE from images whose weights do not stream (or whose store is kept).
    """

    name: str
    word_bytes: int
    max_size: int
    exact: bool
    depth: int = 1
    write: object = None
    required: bool = True


def _write_program(m, accel, en, bank, addr, word):
    m.d.comb += [accel.prog_we.eq(en), accel.prog_addr.eq(addr), accel.prog_data.eq(word)]


def _write_weights(m, accel, en, bank, addr, word):
    m.d.comb += [accel.wload.en.eq(en), accel.wload.bank.eq(bank), accel.wload.addr.eq(addr),
                 accel.wload.data.eq(word)]


def _write_thresholds(m, accel, en, bank, addr, word):
    m.d.comb += [accel.tload.en.eq(en), accel.tload.bank.eq(bank), accel.tload.addr.eq(addr),
                 accel.tload.data.as_value().eq(word)]


def _write_store(m, accel, en, bank, addr, word):
    m.d.comb += [accel.sload.en.eq(en), accel.sload.addr.eq(addr), accel.sload.data.eq(word)]


def section_routes(cfg):
    """The sections :class:`HostLink` accepts for ``cfg``, in any order (each once;
    PROGRAM and META required, the memories' sections written where present).

    Adding a section kind is one entry here (and its write function).
    """
    core = cfg.core
    wbytes = -(-core.weight_width // 8)
    routes = [
        SectionRoute("PROGRAM", 8, 8 * cfg.prog_depth, False, cfg.prog_depth, _write_program),
        SectionRoute("WEIGHTS", wbytes, core.pe * core.weight_depth * wbytes, True,
                     core.weight_depth, _write_weights, required=False),
        SectionRoute("THRESHOLDS", 8, core.pe * core.thr_depth * 8, True, core.thr_depth,
                     _write_thresholds, required=False),
        SectionRoute("META", 1, MAX_META, False),
    ]
    if cfg.store_depth:         # the weight store: the words the weights stream from
        if wbytes & (wbytes - 1):
            raise ConfigError(f"HostLink loads a weight store of power-of-two byte words only "
                              f"(this one: {wbytes} bytes)")
        routes.append(SectionRoute("WSTORE", wbytes, cfg.store_depth * wbytes, False,
                                   cfg.store_depth, _write_store, required=False))
    return routes


class HostLinkStatus(wiring.Signature):
    """Status outputs of :class:`HostLink`, e.g. for LEDs."""

    def __init__(self):
        super().__init__({"busy": Out(1), "done": Out(1), "error": Out(1), "image_ok": Out(1)})


class _Responses:
    """Where a state goes to start a response: a state per kind (TX_STATUS, TX_NAK,
    TX_RESULTS) sets the response registers, so no OR over every state that responds
    reaches them. A NAK with a fixed reason goes to a state of its own (TX_NAK_CRC, ...),
    which writes the reason: its register takes it from one state flip-flop, not from an
    OR of every test that NAKs (an OR 7 LUT levels deep on the iCE40; docs/timing.md).
    EXEC's NAK (``d.reason``, a register that holds through the next cycle) goes to TX_NAK.
    """

    _STATES = {Response.STATUS: "TX_STATUS", Response.NAK: "TX_NAK",
               Response.RESULTS: "TX_RESULTS"}

    def __init__(self, m):
        self.m = m
        self.nak_states = {}    # state name -> the reason it writes (a constant or d.reason)

    def respond(self, kind, reason=0):
        name = self._STATES[kind]
        if kind == Response.NAK:
            if isinstance(reason, Nak):
                name = f"TX_NAK_{reason.name}"
            self.nak_states[name] = reason
        self.m.next = name

    def nak(self, reason):
        self.respond(Response.NAK, reason)

    def status(self):
        self.respond(Response.STATUS)


class HostLink(wiring.Component):
    """The accelerator behind a framed byte-stream host interface.

    Parameters
    ----------
    cfg : AccelConfig
    clk_freq : float
        Clock frequency in Hz; sets the idle timeout in cycles.
    idle_timeout : int or None
        Cycles without a byte after which a half-received frame is dropped
        (default: :data:`~tritium.hw.protocol.IDLE_TIMEOUT_S` at ``clk_freq``).
    image_valid_at_reset : bool
        Reset value of the image-valid flag. True for a bitstream whose block
        RAMs already hold a model (patched in at build time): START works
        without an IMAGE download. Default False.
    init : MemoryInit or None
        Initial contents of the accelerator's model memories (see
        :class:`~tritium.hw.accel.Accelerator`; a bitstream that holds a model).

    Members
    -------
    rx : In(stream.Signature(8))
        Request bytes. ``ready`` is high while a frame is being received
        and low while a request executes or a response goes out.
    tx : Out(stream.Signature(8))
        Response bytes.
    status : Out(HostLinkStatus)
        ``busy`` (a request executing), ``done`` (the last run reached END),
        ``error`` (the last run failed or the image being loaded failed a
        check), ``image_ok`` (a checked model image is loaded).
    """

    def __init__(self, cfg, *, clk_freq=12e6, idle_timeout=None, image_valid_at_reset=False,
                 init=None):
        if not isinstance(cfg, AccelConfig):
            raise TypeError("HostLink needs an AccelConfig")
        core = cfg.core
        entry_bytes = core.pe * acc_bytes(core.acc_bits)
        if cfg.res_depth * entry_bytes > 0xFFFF:
            raise ConfigError(f"the result memory ({cfg.res_depth} x {entry_bytes} bytes) does "
                              "not fit one response frame (65535 bytes)")
        self.accel = Accelerator(cfg, init=init)   # refuses out_bits != 1: one threshold per set
        assert core.n_thresholds == 1
        self.cfg = cfg
        self.idle_timeout = int(idle_timeout or max(1, round(clk_freq * IDLE_TIMEOUT_S)))
        self.image_valid_at_reset = bool(image_valid_at_reset)
        self.routes = section_routes(cfg)
        super().__init__({"rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8)),
                          "status": Out(HostLinkStatus())})

    def elaborate(self, platform):
        m = Module()
        v = self._registers(m)
        self._request_tests(m, v)
        responses = _Responses(m)
        self._datapath(m, v)
        with m.If(~v.crc.hold), m.FSM(name="link") as fsm:
            self._receive_states(m, v, responses)
            self._dispatch_states(m, v, responses)
            self._input_states(m, v, responses)
            self._image_byte_states(m, v, responses.status)
            self._image_end_states(m, v)
            self._transmit_states(m, v, responses)
        self._fail_encoder(m, v)
        self._memory_writes(m, v)
        self._connect_sender(m, v, v.sender)
        self._state_outputs(m, v, fsm, responses)
        return m

    def _registers(self, m):
        """The link's submodules and registers, in ``v`` (shared with the state groups)."""
        cfg, core, routes = self.cfg, self.cfg.core, self.routes
        m.submodules.accel = accel = self.accel
        v = SimpleNamespace(accel=accel)

        # One block RAM: request payloads at 0.., image bytes 0..255 (header and section
        # table) at _IMAGE_BASE + offset, so an entry's fields have fixed addresses.
        m.submodules.buf = buf = Memory(shape=8, depth=2 * _IMAGE_BASE, init=[], attrs=NO_RW_CHECK)
        v.rd, v.wr = rd, _ = buf.read_port(), buf.write_port()
        v.byte = rd.data

        # CRC-32, bit-serial: a byte goes through the frame, image and section registers
        # (those enabled) one bit a cycle; the link's state machine waits meanwhile. With
        # act_reg (the ECP5 configuration) its byte leaves the state machine through
        # registers; on the iCE40 those registers cost more logic cells than they save.
        m.submodules.crc = v.crc = crc = SerialCrc(registered=cfg.act_reg)
        # The received byte: the UART's byte is taken into rx_byte whenever it is free, and
        # rx_full (a flip-flop, not the UART's valid through the state logic) tells the
        # receiving states a byte waits; they consume it (_receive_states).
        v.rx_byte, v.rx_full = Signal(8, name="rx_byte"), Signal(name="rx_full")
        m.d.comb += [crc.rx_byte.eq(v.rx_byte), crc.ram_byte.eq(rd.data)]

        def feed(**flags):
            """Start a byte through the CRC registers named in ``flags``."""
            m.d.comb += [crc.feed.eq(1)] + [getattr(crc, k).eq(f) for k, f in flags.items()]
        v.feed = feed

        # Request.
        v.cmd, v.seq = Signal(8, name="cmd"), Signal(8, name="seq")
        v.length = Signal(range(MAX_PAYLOAD + 1))
        v.idx = Signal(range(MAX_PAYLOAD + 1))      # payload byte
        v.sh = Signal(32)                           # little-endian image fields (header, table)
        v.arg = Signal(32)                          # a request's first 4 payload bytes
        v.cnt = Signal(3)
        # Idle timer: from 2**n - (timeout - 1) up; its top bit is the timeout (no comparator).
        idle_bits = (self.idle_timeout - 1).bit_length()
        v.idle = Signal(idle_bits + 1)
        v.idle_start = (1 << idle_bits) - (self.idle_timeout - 1)

        # Device and image state.
        v.valid = Signal(init=int(self.image_valid_at_reset))
        v.failed, v.err = Signal(name="failed"), Signal(ERR_BITS, name="err")
        v.last_seq, v.last_ok = Signal(8), Signal(name="last_ok")   # a repeated START runs once
        img_max = IMAGE_HEADER.size + MAX_SECTIONS * SECTION.size + sum(r.max_size for r in routes)
        v.pos = Signal(range(img_max + 1))          # image bytes received
        m.submodules.sender = v.sender = ResponseSender(cfg, len(v.pos))
        v.bpos = Signal.like(v.pos)                 # IMG_PARSE: the offset of its byte
        v.expected = Signal(8)                      # IMG_PARSE: the byte's constant, if any
        v.expected_err = Signal(ERR_BITS)           # and the error if it differs (0: none)
        v.total = Signal(len(v.pos) + 1, init=-1)
        v.run_off = Signal(len(v.pos) + 1)          # where the next section must start
        v.nsec = Signal(range(MAX_SECTIONS + 1))
        v.seen = Signal(len(routes))
        v.tab_route = Signal(range(len(routes)))
        v.sec_idx = Signal(range(MAX_SECTIONS + 1))
        v.sec_route = Signal(range(len(routes)))
        v.sec_left = Signal.like(v.pos)
        v.in_tab, v.in_sec = Signal(), Signal()
        v.sec_end_p, v.tab_end_p, v.img_end_p, v.need_load = Signal(), Signal(), Signal(), Signal()
        v.ld = Signal(4)
        v.cmp_sec = Signal()
        v.wr_pending = Signal()
        asm_bytes = max([8] + [r.word_bytes for r in routes if r.write])
        v.asm, v.asm_we = Signal(8 * asm_bytes), Signal()
        v.eb = Signal(range(asm_bytes + 1))         # byte within the word
        v.ea = Signal(range(max(r.depth for r in routes) + 1))
        v.bank = Signal(range(max(core.pe, 2)))
        v.wa = Signal(range(max(r.depth * (core.pe if r.exact else 1) for r in routes) + 1))
        v.wr_sel = Signal(len(routes))              # a word's write, a cycle after IMG_SEC
        v.wr_wa, v.wr_bank, v.wr_ea = Signal.like(v.wa), Signal.like(v.bank), Signal.like(v.ea)
        v.range_bad = Signal()
        v.aaddr = Signal(range(cfg.act_depth + MAX_PAYLOAD + 1))
        v.fail = self._fail(m, v)

        # idx == length, kept in a register beside idx (its comparator is not on the FSM's
        # paths): every change of idx or length past the header sets it too.
        v.idx_end = Signal()
        v.len_bad = Signal()                # the request's length is over MAX_PAYLOAD
        return v

    def _request_tests(self, m, v):
        """``v.step_idx`` and the request's tests and EXEC's decision (``v.d``), registered."""
        cfg, pos, arg, idx, length, idx_end = self.cfg, v.pos, v.arg, v.idx, v.length, v.idx_end
        # idx + 1 == length, registered every cycle: idx never steps in two cycles running
        # (a received byte, IN_RD / IN_USE, IMG_USE then the CRC's cycles), so a step finds
        # it settled and its comparator is not on the step's path either.
        end_next = Signal()
        m.d.sync += end_next.eq(idx + 1 == length)

        def step_idx():
            m.d.sync += [idx.eq(idx + 1), idx_end.eq(end_next)]
        v.step_idx = step_idx
        # The request's tests for EXEC, registered every cycle (and EXEC's decision from them,
        # _exec_decision): EXEC follows CRC_CHK, in which the request registers already hold
        # what EXEC sees, so EXEC starts from flip-flops instead of comparators.
        off_ok, off = arg[len(pos):] == 0, arg[:len(pos)]     # narrow comparators
        count = arg[16:]
        rb = len(Const(cfg.res_depth))      # first, count < 2**rb: a narrow adder
        tests = {
            "len_ne0": length != 0, "len_lt4": length < 4, "len_ne4": length != 4,
            "new_image": off_ok & (off == 0), "next_chunk": off_ok & (off == pos),
            "resent_chunk": off_ok & (off < pos),
            "half_loaded": (pos != 0) & ~v.valid & ~v.failing,
            "resent_start": v.last_ok & (v.seq == v.last_seq),
            "results_range": ((arg[rb:16] != 0) | (count[rb:] != 0) |
                              (arg[:rb] + count[:rb] > cfg.res_depth)),
        }
        tests.update({f"cmd_{c.name.lower()}": v.cmd == c for c in Cmd})
        t = SimpleNamespace(**{name: Signal(name=f"t_{name}") for name in tests})
        m.d.sync += [getattr(t, name).eq(value) for name, value in tests.items()]
        v.d = self._exec_decision(m, t, v)

    def _datapath(self, m, v):
        """What runs beside the state machine: the UART's byte into ``rx_byte``, the
        buffer's default addresses, the word assembler, the pulses the states raise."""
        cfg, accel, byte = self.cfg, v.accel, v.byte
        rx, rx_byte, rx_full = self.rx, v.rx_byte, v.rx_full
        m.d.comb += rx.ready.eq(~rx_full)
        with m.If(rx.valid & ~rx_full):
            m.d.sync += [rx_byte.eq(rx.payload), rx_full.eq(1)]
        got = Signal()              # a receiving state consumes rx_byte
        v.got = got
        m.d.comb += [v.rd.addr.eq(v.idx), v.wr.addr.eq(v.idx),
                     v.wr.data.eq(rx_byte)]
        with m.If(v.asm_we):        # words assemble at the top: a w-byte word is asm[-8w:]
            m.d.sync += v.asm.eq(Cat(v.asm[8:], byte))

        m.d.sync += v.wr_sel.eq(0)      # a pulse (IMG_SEC)
        self._parse_checks(m, v)
        start = Signal()            # the accelerator's start, a pulse (RUN_GO)
        v.start = start
        m.d.sync += start.eq(0)
        m.d.comb += accel.start.eq(start)
        # An INPUT word's write into buffer 0; with act_reg from registers (it lands a cycle
        # later): the address range test and the state decode end there, not at the
        # accelerator's write registers, which also take the RUN's writes.
        act_we, act_addr = Signal(), Signal.like(accel.act_addr)
        act_data = Signal.like(accel.act_data)
        v.act_we, v.act_addr, v.act_data = act_we, act_addr, act_data
        if cfg.act_reg:
            m.d.sync += act_we.eq(0)
        m.d.comb += [accel.act_we.eq(act_we), accel.act_addr.eq(act_addr),
                     accel.act_data.eq(act_data)]

    def _receive_states(self, m, v, responses):
        """SYNC, HEAD, HEAD_CHK, PAYLOAD, CRC, CRC_CHK: a request frame into the registers
        (header), the buffer (payload) and the frame CRC."""
        crc, feed, nak = v.crc, v.feed, responses.nak
        rx_byte, rx_full, got, idle, idle_start = v.rx_byte, v.rx_full, v.got, v.idle, v.idle_start
        idx, idx_end, length, arg = v.idx, v.idx_end, v.length, v.arg

        def consume():
            m.d.comb += got.eq(rx_full)
            with m.If(rx_full):
                m.d.sync += rx_full.eq(0)

        with m.State("SYNC"):
            consume()
            m.d.sync += [idle.eq(idle_start), v.cnt.eq(0)]
            m.d.comb += crc.init_frame.eq(1)
            with m.If(got & (rx_byte == REQUEST_START)):
                m.next = "HEAD"

        def receiving(on_timeout_nak):
            consume()
            with m.If(got):
                m.d.sync += idle.eq(idle_start)
                feed(to_frame=1)
            with m.Elif(idle[-1]):
                if on_timeout_nak:
                    nak(Nak.TIMEOUT)
                else:
                    m.next = "SYNC"
            with m.Else():
                m.d.sync += idle.eq(idle + 1)

        with m.State("HEAD"):
            receiving(False)
            with m.If(got):
                m.d.sync += [v.cnt.eq(v.cnt + 1), idx.eq(0)]
                new_len = Cat(length[:8], rx_byte)
                with m.Switch(v.cnt):
                    with m.Case(0):
                        m.d.sync += v.cmd.eq(rx_byte)
                    with m.Case(1):
                        m.d.sync += v.seq.eq(rx_byte)
                    with m.Case(2):
                        m.d.sync += length[:8].eq(rx_byte)
                    with m.Case(3):
                        m.d.sync += [length.eq(new_len), v.cnt.eq(0), idx_end.eq(new_len == 0),
                                     v.len_bad.eq(_gt(new_len, MAX_PAYLOAD))]
                        m.next = "HEAD_CHK"

        with m.State("HEAD_CHK"):           # the length tests, registered (not the UART's byte)
            with m.If(v.len_bad):
                nak(Nak.LENGTH)
            with m.Elif(idx_end):
                m.next = "CRC"
            with m.Else():
                m.next = "PAYLOAD"

        with m.State("PAYLOAD"):
            with m.If(idx_end):
                m.next = "CRC"
            with m.Else():
                receiving(True)
            with m.If(got):
                m.d.comb += v.wr.en.eq(1)
                v.step_idx()
                with m.If(idx < 4):
                    m.d.sync += arg.eq(Cat(arg[8:], rx_byte))

        with m.State("CRC"):
            # The CRC bytes go through the register too: a good frame leaves the residue.
            receiving(True)
            with m.If(got):
                m.d.sync += v.cnt.eq(v.cnt + 1)
                with m.If(v.cnt == 3):
                    m.d.sync += [idx.eq(4), idx_end.eq(length == 4)]
                    m.next = "CRC_CHK"

        with m.State("CRC_CHK"):
            with m.If(crc.frame == CRC_RESIDUE):
                m.next = "EXEC"
            with m.Else():
                nak(Nak.CRC)

    def _dispatch_states(self, m, v, responses):
        """EXEC (the request's decision, ``v.d``) and RUN_GO, RUN_START, RUN (a START)."""
        cfg, accel, crc, d, arg, pos = self.cfg, v.accel, v.crc, v.d, v.arg, v.pos
        last_seq, last_ok, nak, status = v.last_seq, v.last_ok, responses.nak, responses.status
        with m.State("EXEC"):
            m.d.sync += [v.range_bad.eq(_gt(arg, cfg.act_depth - 1)), v.aaddr.eq(arg)]
            with m.If(d.nak):
                nak(d.reason)
            with m.Elif(d.status):
                status()
            with m.Elif(d.new_image):   # offset 0: a new image
                m.d.sync += [pos.eq(0), v.failed.eq(0), v.valid.eq(0),
                             v.err.eq(Err.NONE), v.total.eq(-1), v.seen.eq(0),
                             v.sec_idx.eq(0), v.in_tab.eq(0), v.in_sec.eq(0),
                             v.sec_end_p.eq(0),
                             v.tab_end_p.eq(0), v.img_end_p.eq(0),
                             v.need_load.eq(0), last_ok.eq(0)]
                m.d.comb += crc.init_image.eq(1)
                m.next = "IMG_RD"
            with m.Elif(d.next_chunk):  # the next chunk of the image
                m.d.sync += last_ok.eq(0)
                m.next = "IMG_RD"
            with m.Elif(d.input):
                # INPUT words start at the payload's 5th byte; an image word cut
                # by a chunk boundary keeps its place (eb) across frames.
                m.d.sync += [last_ok.eq(0), v.eb.eq(0)]
                m.next = "IN_RD"
            with m.Elif(d.start):
                m.d.sync += [v.err.eq(Err.NONE), last_seq.eq(v.seq), last_ok.eq(1)]
                m.next = "RUN_GO"
            with m.Else():
                responses.respond(Response.RESULTS)

        with m.State("RUN_GO"):         # the accelerator's start, from a register
            m.d.sync += v.start.eq(1)
            m.next = "RUN_START"
        with m.State("RUN_START"):      # start is high: done / error clear at this edge
            m.next = "RUN"

        with m.State("RUN"):
            with m.If(accel.done | accel.error):
                with m.If(accel.error):
                    m.d.sync += v.err.eq(accel.error_code)
                status()


    def _input_states(self, m, v, responses):
        """IN_RD, IN_USE: an INPUT request's words into the accelerator's buffer 0."""
        cfg, core, nak, status = self.cfg, self.cfg.core, responses.nak, responses.status
        aaddr, range_bad, idx_end = v.aaddr, v.range_bad, v.idx_end
        act_we, act_addr, act_data = v.act_we, v.act_addr, v.act_data
        with m.State("IN_RD"):
            with m.If(v.wr_pending):
                m.d.sync += [v.wr_pending.eq(0), aaddr.eq(aaddr + 1)]
                with m.If(~range_bad & ~_gt(aaddr, cfg.act_depth - 1)):
                    write = [act_we.eq(1), act_addr.eq(aaddr),
                             act_data.eq(v.asm[-8 * input_word_bytes(core.simd):])]
                    if cfg.act_reg:
                        m.d.sync += write
                    else:
                        m.d.comb += write
                with m.Else():
                    m.d.sync += range_bad.eq(1)
            with m.If(idx_end):
                with m.If(v.eb != 0):
                    nak(Nak.LENGTH)
                with m.Elif(range_bad | (v.wr_pending & _gt(aaddr, cfg.act_depth - 1))):
                    nak(Nak.RANGE)
                with m.Else():
                    status()
            with m.Else():
                m.next = "IN_USE"
        with m.State("IN_USE"):
            m.d.comb += v.asm_we.eq(1)
            v.step_idx()
            with m.If(v.eb == input_word_bytes(core.simd) - 1):
                m.d.sync += [v.eb.eq(0), v.wr_pending.eq(1)]
            with m.Else():
                m.d.sync += v.eb.eq(v.eb + 1)
            m.next = "IN_RD"

    def _transmit_states(self, m, v, responses):
        """A state per response start (the NAK reasons :class:`_Responses` collected),
        TX_PREP and TX: the response sender's bytes out, through the frame CRC."""
        sender, crc, feed, nak_states = v.sender, v.crc, v.feed, responses.nak_states
        pulses = {Response.STATUS: sender.send_status, Response.NAK: sender.send_nak,
                  Response.RESULTS: sender.send_results}
        starts = [(Response.STATUS, "TX_STATUS"), (Response.RESULTS, "TX_RESULTS")]
        starts += [(Response.NAK, name) for name in nak_states]
        for kind, name in starts:
            with m.State(name):
                m.d.comb += [pulses[kind].eq(1), crc.init_frame.eq(1)]
                if kind == Response.NAK:
                    m.d.comb += sender.nak_reason.eq(nak_states[name])
                m.next = "TX_PREP"
        with m.State("TX_PREP"):        # the first byte's registers fill
            m.next = "TX"
        with m.State("TX"):
            m.d.comb += sender.active.eq(1)
            with m.If(sender.feed):
                feed(to_frame=1, shift=sender.shift)
            with m.If(sender.done):
                m.next = "SYNC"

    def _state_outputs(self, m, v, fsm, responses):
        """The signals decoded from the state: the sender's prep, the CRC's source, status."""
        accel, crc, sender = v.accel, v.crc, v.sender
        m.d.comb += sender.prep.eq(Cat(fsm.ongoing(n) for n in ["TX_STATUS", "TX_RESULTS",
                                                                *responses.nak_states,
                                                                "TX_PREP"]).any())
        m.d.comb += [crc.from_ram.eq(fsm.ongoing("IMG_USE") | fsm.ongoing("CRC_CMP")),
                     crc.from_tx.eq(fsm.ongoing("TX"))]
        m.d.comb += [
            self.status.busy.eq(~fsm.ongoing("SYNC") & ~fsm.ongoing("HEAD") &
                                ~fsm.ongoing("PAYLOAD") & ~fsm.ongoing("CRC")),
            self.status.done.eq(accel.done),
            self.status.error.eq(accel.error | v.failed),
            self.status.image_ok.eq(v.valid),
        ]

    @staticmethod
    def _exec_decision(m, t, v):
        """What EXEC does with the request, decided a cycle ahead from the registered tests.

        EXEC follows CRC_CHK, which waits out the last CRC byte's 8 serial cycles: the
        request registers, the tests ``t`` and these decisions are all settled by then,
        so EXEC's branches start from flip-flops, not from a chain of priority tests into
        the response registers (docs/timing.md). Exactly
        one of ``nak`` (with ``reason``), ``status``, ``new_image``, ``next_chunk``,
        ``input``, ``start`` or none of them (RESULTS) holds.
        """
        names = ["nak", "status", "new_image", "next_chunk", "input", "start"]
        want = SimpleNamespace(**{n: Signal(name=f"want_{n}") for n in names})
        want.reason = Signal(range(max(Nak) + 1), name="want_reason")

        def nak(reason):
            m.d.comb += [want.nak.eq(1), want.reason.eq(reason)]

        with m.If(t.cmd_status):
            with m.If(t.len_ne0):
                nak(Nak.LENGTH)
            with m.Else():
                m.d.comb += want.status.eq(1)
        with m.Elif(t.cmd_image):
            with m.If(t.len_lt4):
                nak(Nak.LENGTH)
            with m.Elif(t.new_image):
                m.d.comb += want.new_image.eq(1)
            with m.Elif(t.next_chunk):
                m.d.comb += want.next_chunk.eq(1)
            with m.Elif(t.resent_chunk):
                m.d.comb += want.status.eq(1)       # a resent chunk: received already
            with m.Else():
                nak(Nak.OFFSET)
        with m.Elif(t.cmd_input):
            with m.If(t.len_lt4):
                nak(Nak.LENGTH)
            with m.Elif(t.half_loaded):
                nak(Nak.STATE)      # an image is half loaded: its word assembler is busy
            with m.Else():
                m.d.comb += want.input.eq(1)
        with m.Elif(t.cmd_start):
            with m.If(t.len_ne0):
                nak(Nak.LENGTH)
            with m.Elif(~v.valid):
                nak(Nak.STATE)
            with m.Elif(t.resent_start):
                m.d.comb += want.status.eq(1)       # a resent START: run already
            with m.Else():
                m.d.comb += want.start.eq(1)
        with m.Elif(t.cmd_results):
            with m.If(t.len_ne4):
                nak(Nak.LENGTH)
            with m.Elif(t.results_range):
                nak(Nak.RANGE)
        with m.Else():
            nak(Nak.COMMAND)
        d = SimpleNamespace(**{n: Signal.like(getattr(want, n), name=f"d_{n}")
                               for n in [*names, "reason"]})
        m.d.sync += [getattr(d, n).eq(getattr(want, n)) for n in [*names, "reason"]]
        return d

    @staticmethod
    def _fail(m, v):
        """``fail(code)``: refuse the image being loaded with ``code``.

        Each code is a request flag. The flags are registered, one encoder after
        the FSM (call :meth:`_fail_encoder`) turns them into the error code, lowest
        first, and registers it with ``fail_pending``: a check's logic ends at its
        own flip-flop, not at an OR of every check (on the iCE40 that OR was on the
        board's longest paths). The FSM reads ``v.failing`` (failed, or
        ``fail_pending``), which shows a failure two cycles after its check; the
        image states leave that time (IMG_PARSE reads a registered copy, at least
        three cycles after the previous byte's checks; CRC_CMP and IMG_CHECK wait
        a cycle). The first failure of an image counts.
        """
        v.fail_req = {}
        v.fail_code = Signal(ERR_BITS)      # or a code computed by the checks (0: none)
        v.fail_pending = Signal()           # a failure was requested two cycles ago
        v.fail_pending_code = Signal(ERR_BITS)
        v.failing = v.failed | v.fail_pending

        def fail(code):
            if code not in v.fail_req:
                v.fail_req[code] = Signal(name=f"fail_{code.name.lower()}")
            m.d.comb += v.fail_req[code].eq(1)
        return fail

    @staticmethod
    def _fail_encoder(m, v):
        code = Signal(ERR_BITS)
        m.d.sync += code.eq(v.fail_code)
        assert Err.NONE == 0 and all(c != 0 for c in v.fail_req)
        for c in sorted(v.fail_req, reverse=True):
            req = Signal(name=f"{v.fail_req[c].name}_q")
            m.d.sync += req.eq(v.fail_req[c])
            code = Mux(req, c, code)
        m.d.sync += [v.fail_pending.eq(code != 0), v.fail_pending_code.eq(code)]
        with m.If(v.fail_pending & ~v.failed):
            m.d.sync += [v.err.eq(v.fail_pending_code), v.failed.eq(1), v.valid.eq(0)]

    # ---------------------------------------------------------------- image parser
    def _image_byte_states(self, m, v, status):
        """States that consume IMAGE payload bytes (IMG_RD, IMG_USE, the CRC's 9 cycles,
        IMG_PARSE, IMG_SEC: 13 cycles a byte; a few more per section)."""
        routes, pos = self.routes, v.pos

        with m.State("IMG_RD"):                 # the read of payload byte idx
            with m.If(v.idx_end):
                status()
            with m.Else():
                m.next = "IMG_USE"

        with m.State("IMG_USE"):                # byte at image offset pos: CRC, buffer, words
            v.step_idx()
            m.d.sync += [pos.eq(pos + 1), v.bpos.eq(pos)]
            with m.If(~v.failing):
                self._take(m, v)
            m.next = "IMG_PARSE"

        with m.State("IMG_PARSE"):              # the byte, now in sh[24:], at offset bpos
            with m.If(~v.chk.failing):
                self._parse(m, v)
            m.next = "IMG_SEC"

        with m.State("IMG_SEC"):                # section CRC, memory write
            # Power-of-two depths: one word counter, its high bits the bank (no comparators).
            pow2 = all(r.depth & (r.depth - 1) == 0 for r in routes if r.write)
            with m.If(v.wr_pending):
                # The word's write leaves from registers a cycle later (_memory_writes).
                m.d.sync += [v.wr_pending.eq(0), v.wa.eq(v.wa + 1), v.wr_sel.eq(1 << v.sec_route),
                             v.wr_wa.eq(v.wa), v.wr_bank.eq(v.bank), v.wr_ea.eq(v.ea)]
                if not pow2:
                    with m.Switch(v.sec_route):
                        for i, r in enumerate(routes):
                            with m.Case(i):
                                with m.If(v.ea == r.depth - 1):
                                    m.d.sync += [v.ea.eq(0), v.bank.eq(v.bank + 1)]
                                with m.Else():
                                    m.d.sync += v.ea.eq(v.ea + 1)
            at_end = ~v.failing & (pos == v.total)
            m.d.sync += v.img_end_p.eq(at_end)
            with m.If(v.sec_end_p | v.tab_end_p | at_end):
                m.next = "IMG_CHECK"
            with m.Else():
                m.next = "IMG_RD"

    def _image_end_states(self, m, v):
        """IMG_CHECK (what ends at the byte: a section, the table, the image), IMG_WAIT,
        CRC_CMP (a stored CRC against the register) and SEC_LOAD (the next section's
        entry)."""
        routes, byte, fail, rd = self.routes, v.byte, v.fail, v.rd

        with m.State("IMG_CHECK"):              # what ends at this byte
            m.d.sync += v.ld.eq(0)
            with m.If(v.failing):
                m.d.sync += [v.sec_end_p.eq(0), v.tab_end_p.eq(0), v.img_end_p.eq(0),
                             v.need_load.eq(0)]
                m.next = "IMG_RD"
            with m.Elif(v.sec_end_p):
                m.d.sync += [v.sec_end_p.eq(0), v.cmp_sec.eq(1)]
                m.next = "CRC_CMP"
            with m.Elif(v.tab_end_p):
                m.d.sync += [v.tab_end_p.eq(0), v.need_load.eq(1)]
                m.next = "IMG_WAIT"             # back here once a failure would show
                with m.If(v.run_off != v.total):
                    fail(Err.SIZE)
                required = sum(1 << i for i, r in enumerate(routes) if r.required)
                with m.If((v.seen & required) != required):
                    fail(Err.SECTION_TABLE)
            with m.Elif(v.img_end_p):
                m.d.sync += [v.img_end_p.eq(0), v.cmp_sec.eq(0)]
                m.next = "CRC_CMP"
            with m.Elif(v.need_load):
                m.d.sync += v.need_load.eq(0)
                m.next = "SEC_LOAD"
            with m.Else():
                m.next = "IMG_RD"

        with m.State("IMG_WAIT"):
            m.next = "IMG_CHECK"

        entry = (v.sec_idx + IMAGE_HEADER.size // SECTION.size)[:4]

        with m.State("CRC_CMP"):
            # Feed the stored CRC (section: entry bytes 12..15; image: header bytes 28..31)
            # through the register: a match leaves the residue.
            # Two steps a byte: its read, then its feed (the serial CRC leaves the read port).
            m.d.comb += rd.addr.eq(_IMAGE_BASE + Mux(v.cmp_sec, Cat(v.ld[1:3], Const(3, 2), entry),
                                                     _CRC_F[0] + v.ld[1:3]))
            m.d.sync += v.ld.eq(v.ld + 1)
            with m.If(v.ld[0] & ~v.ld[3]):
                v.feed(to_image=~v.cmp_sec, to_section=v.cmp_sec)
            with m.If(v.ld == 9):           # a check's failure shows now (see _fail)
                m.next = "IMG_CHECK"
            with m.If(v.ld == 8):
                with m.If(v.cmp_sec):
                    m.d.sync += v.sec_idx.eq(v.sec_idx + 1)
                    with m.If(v.crc.section != CRC_RESIDUE):
                        fail(Err.SECTION_CRC)
                    with m.If(v.sec_idx + 1 == v.nsec):
                        m.d.sync += v.in_sec.eq(0)
                    with m.Else():
                        m.d.sync += v.need_load.eq(1)
                with m.Elif(v.crc.image != CRC_RESIDUE):
                    fail(Err.IMAGE_CRC)
                with m.Elif(v.in_sec | (v.sec_idx != v.nsec)):
                    fail(Err.SIZE)
                with m.Else():
                    m.d.sync += v.valid.eq(1)

        with m.State("SEC_LOAD"):
            # The entry's route (byte 3, stored by _parse) and size (bytes 8..11).
            m.d.comb += rd.addr.eq(_IMAGE_BASE + Cat(Mux(v.ld == 0, 3, v.ld + 7)[:4], entry))
            m.d.sync += v.ld.eq(v.ld + 1)
            with m.Switch(v.ld):
                with m.Case(1):
                    m.d.sync += v.sec_route.eq(byte)
                with m.Case(2, 3, 4, 5):
                    m.d.sync += v.sh.eq(Cat(v.sh[8:], byte))
                with m.Case(6):
                    m.d.comb += v.crc.init_section.eq(1)
                    m.d.sync += [v.sec_left.eq(v.sh), v.in_sec.eq(1),
                                 v.eb.eq(0), v.ea.eq(0), v.bank.eq(0), v.wa.eq(0)]
                with m.Case(7):                 # the size's zero test, registered
                    with m.If(v.chk.sh_zero):
                        m.d.sync += v.sec_end_p.eq(1)
                        m.next = "IMG_CHECK"
                    with m.Else():
                        m.next = "IMG_RD"

    def _memory_writes(self, m, v):
        """A section word's write into its memory, from registers IMG_SEC set a cycle
        before (the word stays in ``asm`` until the next byte): the state machine's
        logic does not reach the memories' ports (the store's SPRAM address mux)."""
        routes = self.routes
        pow2 = all(r.depth & (r.depth - 1) == 0 for r in routes if r.write)
        for i, r in enumerate(routes):
            if r.write:
                k = (r.depth - 1).bit_length()
                bank, addr = (v.wr_wa[k:], v.wr_wa[:k]) if pow2 else (v.wr_bank, v.wr_ea)
                r.write(m, v.accel, v.wr_sel[i], bank, addr, v.asm[-8 * r.word_bytes:])

    def _take(self, m, v):
        """IMG_USE: a new image byte (``v.byte``, at offset ``pos``) into the registers.

        It shifts into ``sh``, goes through the image (and section) CRC and into the
        word assembler (sections). The checks and decisions on it, and its copy in
        the buffer, wait for IMG_PARSE, a cycle after the CRC's: there they start
        from registers, not from the block RAM's output.
        """
        byte, pos = v.byte, v.pos
        m.d.sync += v.sh.eq(Cat(v.sh[8:], byte))
        v.feed(to_image=1, image_zero=pos[2:] == _CRC_F[0] // 4, to_section=v.in_sec)  # CRC as 0
        # The header's constant bytes: what this offset must hold, and the error if not.
        template = IMAGE_HEADER.pack(MAGIC, IMAGE_VERSION, ISA_VERSION, 0, 0,
                                     bytes.fromhex(self.cfg.hash), 0, 0)
        checks = [(_MAGIC_F, Err.MAGIC), (_VERSION_F, Err.IMAGE_VERSION),
                  (_ISA_F, Err.ISA_VERSION), (_HASH_F, Err.HASH)]
        m.d.sync += [v.expected.eq(0), v.expected_err.eq(0)]
        with m.If(pos < IMAGE_HEADER.size):
            with m.Switch(pos[:5]):
                for (offset, size), code in checks:
                    for p in range(offset, offset + size):
                        with m.Case(p):
                            m.d.sync += [v.expected.eq(template[p]), v.expected_err.eq(code)]
        with m.If(v.in_sec):
            m.d.comb += v.asm_we.eq(1)

    def _route_of(self, m, entry):
        """``(route index, known)`` of a section table entry's type (its low 16 bits; the
        reserved u16 after it is not checked, as the driver's parser does not)."""
        ridx, known = Signal(range(len(self.routes))), Signal()
        kb = max(SECTION_TYPES.values()).bit_length()     # a kind is small: its high bits 0
        with m.Switch(entry[:kb]):
            for i, r in enumerate(self.routes):
                with m.Case(SECTION_TYPES[r.name]):
                    m.d.comb += [ridx.eq(i), known.eq(entry[kb:16] == 0)]
        return ridx, known

    def _parse_checks(self, m, v):
        """The data tests IMG_PARSE needs, registered every cycle (``v.chk``).

        They read ``sh``, ``bpos`` and registers IMG_USE and IMG_PARSE set; IMG_PARSE
        comes the CRC's 9 cycles after IMG_USE, so each is settled by then, and
        IMG_PARSE's checks start from flip-flops instead of 32-bit comparators.
        """
        routes, sh, bpos = self.routes, v.sh, v.bpos
        npos = len(v.pos)
        nb = MAX_SECTIONS.bit_length()      # narrow comparators: the high bits zero
        n = sh[16:16 + nb]
        ridx, known = self._route_of(m, sh)
        size = sh[:npos]                    # every size limit fits pos
        size_bad = Signal()
        with m.Switch(v.tab_route):
            for i, r in enumerate(routes):
                with m.Case(i):
                    if r.exact:
                        m.d.comb += size_bad.eq(size != r.max_size)
                    else:
                        assert r.word_bytes & (r.word_bytes - 1) == 0
                        m.d.comb += size_bad.eq(_gt(size, r.max_size) |
                                                (size & (r.word_bytes - 1) != 0))
        word_end = Signal()
        with m.Switch(v.sec_route):
            for i, r in enumerate(routes):
                with m.Case(i):
                    m.d.comb += word_end.eq(v.eb == r.word_bytes - 1)
        tests = {
            "past_end": bpos == v.total,
            "byte_bad": sh[24:] != v.expected,
            "nsec_bad": (sh[16 + nb:] != 0) | (n == 0) | (n > MAX_SECTIONS),
            "high_bad": sh[npos:] != 0,         # a total or a size past any image
            "entry_bad": ~known | v.seen.bit_select(ridx, 1),
            "offset_bad": sh != v.run_off,
            "size_bad": size_bad,
            "table_end": bpos[4:8] == v.nsec + IMAGE_HEADER.size // SECTION.size - 1,
            # where the byte is: the header fields and table entry bytes IMG_PARSE handles
            "at_nsec": (bpos < IMAGE_HEADER.size) & (bpos[:5] == _NSEC_F[0] + 1),
            "at_total": (bpos < IMAGE_HEADER.size) & (bpos[:5] == _TOTAL_F[0] + 3),
            "at_head_end": bpos == IMAGE_HEADER.size - 1,
            **{f"at_entry{j}": v.in_tab & (bpos[:4] == j) for j in (3, 7, 11, 15)},
            "failing": v.failing,               # (a failure shows here a cycle later)
            "sec_last": v.sec_left == 1,
            "sh_zero": sh == 0,                 # SEC_LOAD: an empty section
            "word_end": word_end,
        }
        v.chk = SimpleNamespace(**{k: Signal(name=f"chk_{k}") for k in tests})
        m.d.sync += [getattr(v.chk, k).eq(value) for k, value in tests.items()]
        v.chk_ridx = Signal.like(ridx, name="chk_ridx")
        m.d.sync += v.chk_ridx.eq(ridx)

    def _parse(self, m, v):
        """IMG_PARSE: the checks and decisions on the byte IMG_USE took (header, section
        table or section); the byte is ``sh[24:]``, its offset ``bpos``, its data tests
        ``v.chk`` (:meth:`_parse_checks`)."""
        routes, fail, chk, wr = self.routes, v.fail, v.chk, v.wr
        sh, bpos = v.sh, v.bpos
        # Header and section table are kept in the buffer (CRC_CMP and SEC_LOAD read them);
        # a table entry's byte 3 is stored as its route index.
        with m.If((bpos < IMAGE_HEADER.size) | v.in_tab):
            m.d.comb += [wr.en.eq(1), wr.addr.eq(_IMAGE_BASE + bpos[:8]),
                         wr.data.eq(Mux(chk.at_entry3, v.chk_ridx, sh[24:]))]
        with m.If(chk.past_end):         # a byte past the end (IMG_SEC: the last byte)
            fail(Err.SIZE)

        # Header: constant bytes, then the fields the parser needs.
        with m.If(chk.byte_bad):
            m.d.comb += v.fail_code.eq(v.expected_err)     # 0 where nothing is expected
        with m.If(chk.at_nsec):
            n = sh[16:16 + MAX_SECTIONS.bit_length()]
            with m.If(chk.nsec_bad):
                fail(Err.SECTION_TABLE)
            m.d.sync += [v.nsec.eq(n), v.run_off.eq(IMAGE_HEADER.size + n * SECTION.size)]
        with m.If(chk.at_total):
            m.d.sync += v.total.eq(sh)
            with m.If(chk.high_bad):
                fail(Err.SIZE)
        with m.If(chk.at_head_end):
            m.d.sync += v.in_tab.eq(1)

        # Section table: check each entry; keep its route index.
        with m.If(chk.at_entry3):
            with m.If(chk.entry_bad):
                fail(Err.SECTION_TABLE)
            m.d.sync += [v.seen.eq(v.seen | (1 << v.chk_ridx)), v.tab_route.eq(v.chk_ridx)]
        with m.If(chk.at_entry7 & chk.offset_bad):
            fail(Err.SECTION_TABLE)
        with m.If(chk.at_entry11):
            m.d.sync += v.run_off.eq(v.run_off + sh[:len(v.pos)])
            with m.If(chk.high_bad | chk.size_bad):
                fail(Err.SECTION_SIZE)
        with m.If(chk.at_entry15 & chk.table_end):     # (the table ends below offset 256)
            m.d.sync += [v.tab_end_p.eq(1), v.in_tab.eq(0)]

        # Section bytes (assembled by IMG_USE): IMG_SEC writes the words.
        with m.If(v.in_sec):
            m.d.sync += v.sec_left.eq(v.sec_left - 1)
            with m.If(chk.sec_last):
                m.d.sync += v.sec_end_p.eq(1)
            with m.If(chk.word_end):
                m.d.sync += [v.eb.eq(0), v.wr_pending.eq(
                    Cat(Const(r.write is not None) for r in routes).bit_select(v.sec_route, 1))]
            with m.Else():
                m.d.sync += v.eb.eq(v.eb + 1)

    def _connect_sender(self, m, v, sender):
        """The response sender's inputs: the request, the status, the result read, the CRC."""
        accel, core, crc = self.accel, self.cfg.core, v.crc
        m.d.comb += [
            sender.cmd.eq(v.cmd), sender.seq.eq(v.seq),
            sender.first.eq(v.arg[:16]), sender.count.eq(v.arg[16:]),
            sender.crc_hold.eq(crc.hold), sender.frame_crc.eq(crc.frame),
            crc.tx_byte.eq(sender.byte), self.tx.payload.eq(sender.tx.payload),
            self.tx.valid.eq(sender.tx.valid), sender.tx.ready.eq(self.tx.ready),
            sender.run_done.eq(accel.done), sender.run_error.eq(accel.error),
            sender.cycles.eq(accel.cycles), sender.image_valid.eq(v.valid),
            sender.image_failed.eq(v.failed), sender.error.eq(v.err),
            sender.image_pos.eq(v.pos), accel.res_addr.eq(sender.entry),
        ]
        if core.chain:
            # The chain gathers the selected accumulator along its slices (hw/chain.py).
            m.d.comb += [accel.res_sel.eq(sender.acc_index), sender.acc_value.eq(accel.res_word)]
        else:
            with m.Switch(sender.acc_index):
                for p in range(core.pe):
                    with m.Case(p):
                        m.d.comb += sender.acc_value.eq(accel.res_data[p])


def _gt(x, c):
    """``x > c`` for a constant ``c``: for ``c + 1`` or ``c`` a power of two a few
    OR gates over ``x``'s high bits instead of a subtractor."""
    if c + 1 & c == 0:                      # c = 2**k - 1: x has a bit at k or above
        return x[c.bit_length():] != 0
    if c & (c - 1) == 0:                    # c = 2**k: above k, or bit k and any below
        k = c.bit_length() - 1
        return (x[k + 1:] != 0) | (x[k] & (x[:k] != 0))
    return x > c
