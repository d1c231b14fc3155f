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

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..sw.image import HEADER as IMAGE_HEADER
from ..sw.image import IMAGE_VERSION, MAGIC, SECTION, SECTION_TYPES
from .accel import Accelerator
from .accel_config import AccelConfig
from .config import ConfigError
from .isa import ISA_VERSION
from .layouts import NO_RW_CHECK
from .protocol import (FLAG_IMAGE_FAILED, FLAG_IMAGE_VALID, IDLE_TIMEOUT_S, MAX_META, MAX_PAYLOAD,
                       MAX_SECTIONS, NAK, REQUEST_START, RESPONSE_FLAG, RESPONSE_START,
                       STATUS_PAYLOAD, Cmd, Err, Nak, State, acc_bytes, input_word_bytes)

_CRC_INIT = 0xFFFFFFFF
_CRC_POLY = 0xEDB88320      # zlib's CRC-32, bit-reflected


def crc32_step(state, byte):
    """The CRC-32 register (zlib's, before the final inversion) after one more byte."""
    c = state ^ byte
    for _ in range(8):
        c = (c >> 1) ^ Mux(c[0], Const(_CRC_POLY, 32), 0)
    return c[:32]


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
assert SECTION.size == 16 and MAX_SECTIONS * SECTION.size <= MAX_PAYLOAD


@dataclass(frozen=True)
class SectionRoute:
    """Where the bytes of one model-image section go.

    A section is a sequence of memory words of ``word_bytes`` bytes each
    (little-endian; bytes past the first eight of a word are ignored), written
    ``depth`` words per bank, bank after bank, through ``write``.

    Parameters
    ----------
    name : str
        Section name (a key of :data:`tritium.sw.image.SECTION_TYPES`).
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
    """

    name: str
    word_bytes: int
    max_size: int
    exact: bool
    depth: int = 1
    write: object = None


def _write_program(m, accel, en, bank, addr, word):
    m.d.comb += [accel.prog_we.eq(en), accel.prog_addr.eq(addr), accel.prog_data.eq(word)]


def _write_weights(m, accel, en, bank, addr, word):
    m.d.comb += [accel.wload.en.eq(en), accel.wload.bank.eq(bank), accel.wload.addr.eq(addr),
                 accel.wload.data.eq(word)]


def _write_thresholds(m, accel, en, bank, addr, word):
    m.d.comb += [accel.tload.en.eq(en), accel.tload.bank.eq(bank), accel.tload.addr.eq(addr),
                 accel.tload.data.as_value().eq(word)]


def section_routes(cfg):
    """The sections :class:`HostLink` accepts for ``cfg``: all required, any order.

    Adding a section kind is one entry here (and its write function).
    """
    core = cfg.core
    wbytes = -(-core.weight_width // 8)
    return [
        SectionRoute("PROGRAM", 8, 8 * cfg.prog_depth, False, cfg.prog_depth, _write_program),
        SectionRoute("WEIGHTS", wbytes, core.pe * core.weight_depth * wbytes, True,
                     core.weight_depth, _write_weights),
        SectionRoute("THRESHOLDS", 8, core.pe * core.thr_depth * 8, True, core.thr_depth,
                     _write_thresholds),
        SectionRoute("META", 1, MAX_META, False),
    ]


class HostLinkStatus(wiring.Signature):
    """Status outputs of :class:`HostLink`, e.g. for LEDs."""

    def __init__(self):
        super().__init__({"busy": Out(1), "done": Out(1), "error": Out(1), "image_ok": Out(1)})


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
        self.accel = Accelerator(cfg, init=init)
        core = cfg.core
        if core.n_thresholds != 1:
            raise ConfigError("HostLink loads one threshold per set (out_bits = 1)")
        entry_bytes = core.pe * acc_bytes(core.acc_bits)
        if cfg.res_depth * entry_bytes > 0xFFFF:
            raise ConfigError(f"the result memory ({cfg.res_depth} x {entry_bytes} bytes) does "
                              "not fit one response frame (65535 bytes)")
        self.cfg = cfg
        self.idle_timeout = int(idle_timeout or max(1, round(clk_freq * IDLE_TIMEOUT_S)))
        self.image_valid_at_reset = bool(image_valid_at_reset)
        self.routes = section_routes(cfg)
        super().__init__({"rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8)),
                          "status": Out(HostLinkStatus())})

    def elaborate(self, platform):
        cfg, core = self.cfg, self.cfg.core
        routes = self.routes
        m = Module()
        m.submodules.accel = accel = self.accel

        # Request payloads at 0.., the image's section table at MAX_PAYLOAD.. (one block RAM).
        m.submodules.buf = buf = Memory(shape=8, depth=MAX_PAYLOAD + MAX_SECTIONS * SECTION.size,
                                        init=[], attrs=NO_RW_CHECK)
        rd, wr = buf.read_port(), buf.write_port()

        # ------------------------------------------------------------ CRC-32 (one network)
        crc_sel = Signal(2)         # 0 frame, 1 image, 2 section
        crc_byte = Signal(8)
        frm_crc = Signal(32, init=_CRC_INIT)
        img_crc = Signal(32, init=_CRC_INIT)
        sec_crc = Signal(32, init=_CRC_INIT)
        crc_next = Signal(32)
        m.d.comb += crc_next.eq(crc32_step(
            Mux(crc_sel == 0, frm_crc, Mux(crc_sel == 1, img_crc, sec_crc)), crc_byte))

        # ------------------------------------------------------------ request registers
        cmd, seq, length = Signal(8), Signal(8), Signal(16)
        idx = Signal(range(MAX_PAYLOAD + 1))        # payload byte
        sh = Signal(32)                             # little-endian field assembler
        arg = sh                                    # it holds the first four payload bytes
        crc_bad = Signal()
        cnt = Signal(4)
        idle = Signal(range(self.idle_timeout + 1))

        # ------------------------------------------------------------ response registers
        resp_cmd, resp_len = Signal(8), Signal(16)
        resp_kind = Signal(2)                       # 0 STATUS, 1 NAK, 2 RESULTS
        nak_reason = Signal(8)
        phase = Signal(2)                           # 0 header, 1 payload, 2 CRC
        ti = Signal(16)

        # ------------------------------------------------------------ device state
        valid = Signal(init=int(self.image_valid_at_reset))
        failed = Signal()
        err = Signal(4)
        last_seq, last_ok = Signal(8), Signal()     # a retried START is not run twice
        # Image offsets: as wide as the largest image this configuration accepts.
        img_max = IMAGE_HEADER.size + MAX_SECTIONS * SECTION.size + sum(r.max_size for r in routes)
        pos = Signal(range(img_max + 1))            # image bytes received
        total = Signal(len(pos) + 1, init=-1)
        hdr_crc = Signal(32)
        nsec = Signal(range(MAX_SECTIONS + 1))
        run_off = Signal(len(pos) + 1)              # offset where the next section must start
        seen = Signal(len(routes))
        tab_route = Signal(range(len(routes)))
        sec_idx = Signal(range(MAX_SECTIONS + 1))
        sec_route = Signal(range(len(routes)))
        sec_left, sec_want = Signal.like(pos), Signal(32)
        in_sec = Signal()
        sec_end_p, tab_end_p, img_end_p, need_load = Signal(), Signal(), Signal(), Signal()
        ld = Signal(4)
        wr_pending = Signal()
        asm_bytes = max([8] + [r.word_bytes for r in routes if r.write])
        asm = Signal(8 * asm_bytes)
        eb = Signal(range(asm_bytes + 1))           # byte within the word
        ea = Signal(range(max(r.depth for r in routes) + 1))
        bank = Signal(range(max(core.pe, 2)))
        range_bad = Signal()
        aaddr = Signal(range(cfg.act_depth + MAX_PAYLOAD + 1))

        def fail(code):
            with m.If(~failed):
                m.d.sync += [err.eq(code), failed.eq(1), valid.eq(0)]

        def respond(kind, length_, command, reason=0):
            m.d.sync += [resp_kind.eq(kind), resp_len.eq(length_), resp_cmd.eq(command),
                         nak_reason.eq(reason), phase.eq(0), ti.eq(0), frm_crc.eq(_CRC_INIT)]
            m.next = "TX"

        def nak(reason):
            respond(1, 2, NAK, reason)

        def status():
            respond(0, STATUS_PAYLOAD.size, cmd | RESPONSE_FLAG)

        byte = rd.data
        m.d.comb += [rd.addr.eq(idx), crc_byte.eq(self.rx.payload)]
        m.d.comb += [wr.addr.eq(idx), wr.data.eq(self.rx.payload)]
        got = self.rx.valid & self.rx.ready

        with m.FSM(name="link") as fsm:
            # -------------------------------------------------------- receive
            with m.State("SYNC"):
                m.d.comb += self.rx.ready.eq(1)
                m.d.sync += [idle.eq(0), cnt.eq(0), crc_bad.eq(0)]
                with m.If(got & (self.rx.payload == REQUEST_START)):
                    m.d.sync += frm_crc.eq(_CRC_INIT)
                    m.next = "HEAD"

            def receiving(on_timeout_nak):
                m.d.comb += self.rx.ready.eq(1)
                with m.If(got):
                    m.d.sync += idle.eq(0)
                with m.Elif(idle == self.idle_timeout - 1):
                    if on_timeout_nak:
                        nak(Nak.TIMEOUT)
                    else:
                        m.next = "SYNC"
                with m.Else():
                    m.d.sync += idle.eq(idle + 1)

            with m.State("HEAD"):
                receiving(False)
                with m.If(got):
                    m.d.sync += [frm_crc.eq(crc_next), cnt.eq(cnt + 1), idx.eq(0)]
                    new_len = Cat(length[:8], self.rx.payload)
                    with m.Switch(cnt):
                        with m.Case(0):
                            m.d.sync += cmd.eq(self.rx.payload)
                        with m.Case(1):
                            m.d.sync += seq.eq(self.rx.payload)
                        with m.Case(2):
                            m.d.sync += length[:8].eq(self.rx.payload)
                        with m.Case(3):
                            m.d.sync += [length.eq(new_len), cnt.eq(0)]
                            with m.If(new_len > MAX_PAYLOAD):
                                nak(Nak.LENGTH)
                            with m.Elif(new_len == 0):
                                m.next = "CRC"
                            with m.Else():
                                m.next = "PAYLOAD"

            with m.State("PAYLOAD"):
                receiving(True)
                with m.If(got):
                    m.d.comb += wr.en.eq(1)
                    m.d.sync += [frm_crc.eq(crc_next), idx.eq(idx + 1)]
                    with m.If(idx < 4):
                        m.d.sync += arg.word_select(idx[:2], 8).eq(self.rx.payload)
                    with m.If(idx == length - 1):
                        m.next = "CRC"

            with m.State("CRC"):
                receiving(True)
                with m.If(got):
                    wrong = self.rx.payload != (frm_crc ^ _CRC_INIT).word_select(cnt[:2], 8)
                    m.d.sync += [cnt.eq(cnt + 1), crc_bad.eq(crc_bad | wrong)]
                    with m.If(cnt == 3):
                        with m.If(~crc_bad & ~wrong):
                            m.d.sync += idx.eq(4)
                            m.next = "EXEC"
                        with m.Else():
                            nak(Nak.CRC)

            # -------------------------------------------------------- dispatch
            with m.State("EXEC"):
                m.d.sync += [eb.eq(0), range_bad.eq(arg >= cfg.act_depth), aaddr.eq(arg)]
                with m.Switch(cmd):
                    with m.Case(Cmd.STATUS):
                        with m.If(length != 0):
                            nak(Nak.LENGTH)
                        with m.Else():
                            status()
                    with m.Case(Cmd.IMAGE):
                        with m.If(length < 4):
                            nak(Nak.LENGTH)
                        with m.Elif(arg == 0):         # offset 0: a new image
                            m.d.sync += [pos.eq(0), failed.eq(0), valid.eq(0), err.eq(Err.NONE),
                                         total.eq(-1), nsec.eq(0), seen.eq(0),
                                         sec_idx.eq(0), in_sec.eq(0), img_crc.eq(_CRC_INIT),
                                         sec_end_p.eq(0), tab_end_p.eq(0), img_end_p.eq(0),
                                         need_load.eq(0), last_ok.eq(0)]
                            m.next = "IMG_RD"
                        with m.Elif(arg == pos):       # the next chunk
                            m.d.sync += last_ok.eq(0)
                            m.next = "IMG_RD"
                        with m.Elif(arg + (length - 4) <= pos):
                            status()                   # a retried chunk: received already
                        with m.Else():
                            nak(Nak.OFFSET)
                    with m.Case(Cmd.INPUT):
                        with m.If(length < 4):
                            nak(Nak.LENGTH)
                        with m.Else():
                            m.d.sync += last_ok.eq(0)
                            m.next = "IN_RD"
                    with m.Case(Cmd.START):
                        with m.If(length != 0):
                            nak(Nak.LENGTH)
                        with m.Elif(~valid):
                            nak(Nak.STATE)
                        with m.Elif(last_ok & (seq == last_seq)):
                            status()                   # a retry: already run
                        with m.Else():
                            m.d.comb += accel.start.eq(1)
                            m.d.sync += [err.eq(Err.NONE), last_seq.eq(seq), last_ok.eq(1)]
                            m.next = "RUN"
                    with m.Case(Cmd.RESULTS):
                        count = arg[16:]
                        with m.If(length != 4):
                            nak(Nak.LENGTH)
                        with m.Elif(arg[:16] + count > cfg.res_depth):
                            nak(Nak.RANGE)
                        with m.Else():
                            respond(2, count * (core.pe * acc_bytes(core.acc_bits)),
                                    cmd | RESPONSE_FLAG)
                    with m.Default():
                        nak(Nak.COMMAND)

            with m.State("RUN"):
                with m.If(accel.done | accel.error):
                    with m.If(accel.error):
                        m.d.sync += err.eq(accel.error_code)
                    status()

            # -------------------------------------------------------- INPUT
            wb = input_word_bytes(core.simd)
            with m.State("IN_RD"):
                with m.If(wr_pending):
                    m.d.sync += [wr_pending.eq(0), aaddr.eq(aaddr + 1)]
                    with m.If(~range_bad & (aaddr < cfg.act_depth)):
                        m.d.comb += [accel.act_we.eq(1), accel.act_addr.eq(aaddr),
                                     accel.act_data.eq(asm)]
                    with m.Else():
                        m.d.sync += range_bad.eq(1)
                with m.If(idx == length):
                    with m.If(eb != 0):
                        nak(Nak.LENGTH)
                    with m.Elif(range_bad | (wr_pending & (aaddr >= cfg.act_depth))):
                        nak(Nak.RANGE)
                    with m.Else():
                        status()
                with m.Else():
                    m.next = "IN_USE"
            with m.State("IN_USE"):
                m.d.sync += [asm.word_select(eb, 8).eq(byte), idx.eq(idx + 1)]
                with m.If(eb == wb - 1):
                    m.d.sync += [eb.eq(0), wr_pending.eq(1)]
                with m.Else():
                    m.d.sync += eb.eq(eb + 1)
                m.next = "IN_RD"

            # -------------------------------------------------------- IMAGE
            with m.State("IMG_RD"):
                with m.If(idx == length):
                    status()
                with m.Else():
                    m.next = "IMG_USE"

            with m.State("IMG_USE"):
                m.d.sync += [idx.eq(idx + 1), pos.eq(pos + 1)]
                self._image_byte(m, locals())
                m.next = "IMG_SEC"

            with m.State("IMG_SEC"):
                m.d.comb += [crc_sel.eq(2), crc_byte.eq(byte)]
                with m.If(in_sec & ~failed):
                    m.d.sync += sec_crc.eq(crc_next)
                with m.If(wr_pending):
                    m.d.sync += wr_pending.eq(0)
                    with m.Switch(sec_route):
                        for i, r in enumerate(routes):
                            with m.Case(i):
                                with m.If(ea == r.depth - 1):
                                    m.d.sync += [ea.eq(0), bank.eq(bank + 1)]
                                with m.Else():
                                    m.d.sync += ea.eq(ea + 1)
                for i, r in enumerate(routes):
                    if r.write:
                        r.write(m, accel, wr_pending & (sec_route == i), bank, ea, asm)
                with m.If(sec_end_p | tab_end_p | img_end_p):
                    m.next = "IMG_CHECK"
                with m.Else():
                    m.next = "IMG_RD"

            with m.State("IMG_CHECK"):
                with m.If(failed):
                    m.d.sync += [sec_end_p.eq(0), tab_end_p.eq(0), img_end_p.eq(0),
                                 need_load.eq(0)]
                    m.next = "IMG_RD"
                with m.Elif(sec_end_p):
                    m.d.sync += [sec_end_p.eq(0), sec_idx.eq(sec_idx + 1)]
                    with m.If((sec_crc ^ _CRC_INIT) != sec_want):
                        fail(Err.SECTION_CRC)
                    with m.If(sec_idx + 1 < nsec):
                        m.d.sync += need_load.eq(1)
                    with m.Else():
                        m.d.sync += in_sec.eq(0)
                with m.Elif(tab_end_p):
                    m.d.sync += [tab_end_p.eq(0), need_load.eq(1)]
                    with m.If(run_off != total):
                        fail(Err.SIZE)
                    with m.If(seen != (1 << len(routes)) - 1):
                        fail(Err.SECTION_TABLE)
                with m.Elif(img_end_p):
                    m.d.sync += img_end_p.eq(0)
                    with m.If((img_crc ^ _CRC_INIT) != hdr_crc):
                        fail(Err.IMAGE_CRC)
                    with m.Elif(in_sec | (sec_idx != nsec)):
                        fail(Err.SIZE)
                    with m.Else():
                        m.d.sync += valid.eq(1)
                with m.Elif(need_load):
                    m.d.sync += [need_load.eq(0), ld.eq(0)]
                    m.next = "SEC_LOAD"
                with m.Else():
                    m.next = "IMG_RD"

            with m.State("SEC_LOAD"):
                # Read the entry's route (byte 3), size (8..11) and CRC (12..15).
                m.d.comb += rd.addr.eq(MAX_PAYLOAD + sec_idx * SECTION.size +
                                       Mux(ld == 0, 3, ld + 7))
                m.d.sync += ld.eq(ld + 1)
                with m.Switch(ld):
                    with m.Case(1):
                        m.d.sync += sec_route.eq(byte)
                    for k in range(4):
                        with m.Case(2 + k):
                            m.d.sync += sec_left.word_select(k, 8).eq(byte)
                        with m.Case(6 + k):
                            m.d.sync += sec_want.word_select(k, 8).eq(byte)
                    with m.Case(10):
                        m.d.sync += [sec_crc.eq(_CRC_INIT), in_sec.eq(1), eb.eq(0), ea.eq(0),
                                     bank.eq(0)]
                        with m.If(sec_left == 0):
                            m.d.sync += sec_end_p.eq(1)
                            m.next = "IMG_CHECK"
                        with m.Else():
                            m.next = "IMG_RD"

            # -------------------------------------------------------- transmit
            with m.State("TX"):
                self._transmit(m, locals())

        # STATUS payload and the status outputs.
        m.d.comb += [
            self.status.busy.eq(~fsm.ongoing("SYNC") & ~fsm.ongoing("HEAD") &
                                ~fsm.ongoing("PAYLOAD") & ~fsm.ongoing("CRC")),
            self.status.done.eq(accel.done),
            self.status.error.eq(accel.error | failed),
            self.status.image_ok.eq(valid),
        ]
        return m

    # ---------------------------------------------------------------- image parser
    def _image_byte(self, m, v):
        """One new image byte (at offset ``pos``): header, section table or section."""
        routes, byte, pos, fail = self.routes, v["byte"], v["pos"], v["fail"]
        sh, failed, total = v["sh"], v["failed"], v["total"]
        shn = Cat(sh[8:], byte)
        with m.If(~failed):
            m.d.sync += sh.eq(shn)
            m.d.comb += [v["crc_sel"].eq(1),
                         v["crc_byte"].eq(Mux((pos >= _CRC_F[0]) & (pos < _CRC_F[0] + 4), 0, byte))]
            m.d.sync += v["img_crc"].eq(v["crc_next"])
            with m.If(pos >= total):
                fail(Err.SIZE)
            with m.Elif(pos == total - 1):
                m.d.sync += v["img_end_p"].eq(1)

            # Header: constant bytes, then the fields the parser needs.
            template = IMAGE_HEADER.pack(MAGIC, IMAGE_VERSION, ISA_VERSION, 0, 0,
                                         bytes.fromhex(self.cfg.hash), 0, 0)
            checks = [(_MAGIC_F, Err.MAGIC), (_VERSION_F, Err.IMAGE_VERSION),
                      (_ISA_F, Err.ISA_VERSION), (_HASH_F, Err.HASH)]
            nsec, run_off = v["nsec"], v["run_off"]
            tab_start = IMAGE_HEADER.size
            tab_end = Signal(32)
            m.d.comb += tab_end.eq(tab_start + nsec * SECTION.size)
            with m.If(pos < tab_start):
                with m.Switch(pos[:5]):
                    for (offset, size), code in checks:
                        for p in range(offset, offset + size):
                            with m.Case(p):
                                with m.If(byte != template[p]):
                                    fail(code)
                    with m.Case(_NSEC_F[0] + 1):
                        n = shn[16:]
                        with m.If((n == 0) | (n > MAX_SECTIONS)):
                            fail(Err.SECTION_TABLE)
                        m.d.sync += [nsec.eq(n), run_off.eq(tab_start + n * SECTION.size)]
                    with m.Case(_TOTAL_F[0] + 3):
                        m.d.sync += total.eq(shn)
                        with m.If(shn[len(pos):] != 0):
                            fail(Err.SIZE)
                    with m.Case(_CRC_F[0] + 3):
                        m.d.sync += v["hdr_crc"].eq(shn)
                        with m.If(total < tab_end):
                            fail(Err.SIZE)

            # Section table: validate each entry, keep route / size / CRC in the buffer.
            tpos = Signal(8)
            m.d.comb += tpos.eq(pos - tab_start)
            j = tpos[:4]
            in_table = (pos >= tab_start) & (pos < tab_end)
            ridx = Signal(range(len(routes)))
            known = Signal()
            for i, r in enumerate(routes):
                with m.If(shn[:16] == SECTION_TYPES[r.name]):
                    m.d.comb += [ridx.eq(i), known.eq(1)]
            wr, seen, tab_route = v["wr"], v["seen"], v["tab_route"]
            with m.If(in_table):
                m.d.comb += [wr.en.eq(1), wr.addr.eq(MAX_PAYLOAD + tpos),
                             wr.data.eq(Mux(j == 3, ridx, byte))]
                with m.Switch(j):
                    with m.Case(3):
                        with m.If(~known | (seen.bit_select(ridx, 1))):
                            fail(Err.SECTION_TABLE)
                        m.d.sync += [seen.eq(seen | (1 << ridx)), tab_route.eq(ridx)]
                    with m.Case(7):
                        with m.If(shn != run_off):
                            fail(Err.SECTION_TABLE)
                    with m.Case(11):
                        m.d.sync += run_off.eq(run_off + shn[:len(pos)])
                        with m.Switch(tab_route):
                            for i, r in enumerate(routes):
                                with m.Case(i):
                                    if r.exact:
                                        bad = shn != r.max_size
                                    else:
                                        assert r.word_bytes & (r.word_bytes - 1) == 0
                                        bad = (shn > r.max_size) | (shn & (r.word_bytes - 1) != 0)
                                    with m.If(bad):
                                        fail(Err.SECTION_SIZE)
                    with m.Case(15):
                        with m.If(tpos[4:] == nsec - 1):
                            m.d.sync += v["tab_end_p"].eq(1)

            # Section bytes: assemble words; IMG_SEC writes them and updates the section CRC.
            eb, asm, sec_left, sec_route = v["eb"], v["asm"], v["sec_left"], v["sec_route"]
            with m.If(v["in_sec"]):
                m.d.sync += [asm.word_select(eb, 8).eq(byte), sec_left.eq(sec_left - 1)]
                with m.If(sec_left == 1):
                    m.d.sync += v["sec_end_p"].eq(1)
                with m.Switch(sec_route):
                    for i, r in enumerate(routes):
                        with m.Case(i):
                            with m.If(eb == r.word_bytes - 1):
                                m.d.sync += [eb.eq(0), v["wr_pending"].eq(int(r.write is not None))]
                            with m.Else():
                                m.d.sync += eb.eq(eb + 1)

    # ---------------------------------------------------------------- transmitter
    def _transmit(self, m, v):
        core = self.cfg.core
        tx, phase, ti, resp_len = self.tx, v["phase"], v["ti"], v["resp_len"]
        accel, frm_crc = self.accel, v["frm_crc"]
        # Payload sources.
        state = Signal(8)
        m.d.comb += state.eq(Mux(accel.error, int(State.ERROR),
                                 Mux(accel.done, int(State.DONE), int(State.IDLE))))
        flags = Cat(v["valid"], v["failed"], Const(0, 6))
        assert (FLAG_IMAGE_VALID, FLAG_IMAGE_FAILED) == (1, 2)
        hw_hash = int.from_bytes(bytes.fromhex(self.cfg.hash), "little")
        # Without an image and without an error, STATUS says why START is refused.
        valid, failed, err, pos = v["valid"], v["failed"], v["err"], v["pos"]
        err_out = Signal(8)
        m.d.comb += err_out.eq(Mux(valid | failed | (err != 0), err,
                                   Mux(pos == 0, Err.NO_IMAGE, Err.IMAGE_INCOMPLETE)))
        status_bits = Cat(state, err_out, flags, Const(0, 8),
                          Const(hw_hash, 64), accel.cycles, pos, Const(0, 32 - len(pos)))
        assert len(status_bits) == 8 * STATUS_PAYLOAD.size
        nb = acc_bytes(core.acc_bits)
        rb = Signal(range(nb))
        ra = Signal(range(max(core.pe, 2)))
        raddr = Signal(range(self.cfg.res_depth + 1))
        rwait = Signal()
        accv = Signal(8 * nb)
        m.d.comb += [accv.eq(accel.res_data[ra].as_signed()), accel.res_addr.eq(raddr)]
        m.d.sync += rwait.eq(0)
        payload = Signal(8)
        with m.Switch(v["resp_kind"]):
            with m.Case(0):
                m.d.comb += payload.eq(status_bits.word_select(ti[:5], 8))
            with m.Case(1):
                m.d.comb += payload.eq(Mux(ti[0], v["cmd"], v["nak_reason"]))
            with m.Default():
                m.d.comb += payload.eq(accv.word_select(rb, 8))
        head = [RESPONSE_START, v["resp_cmd"], v["seq"], resp_len[:8], resp_len[8:]]
        out = Signal(8)
        with m.Switch(phase):
            with m.Case(0):
                with m.Switch(ti[:3]):
                    for k, h in enumerate(head):
                        with m.Case(k):
                            m.d.comb += out.eq(h)
            with m.Case(1):
                m.d.comb += out.eq(payload)
            with m.Default():
                m.d.comb += out.eq((frm_crc ^ _CRC_INIT).word_select(ti[:2], 8))
        stall = (phase == 1) & (v["resp_kind"] == 2) & rwait
        m.d.comb += [tx.payload.eq(out), tx.valid.eq(~stall), v["crc_byte"].eq(out)]
        sent = tx.valid & tx.ready
        with m.If(sent):
            m.d.sync += ti.eq(ti + 1)
            with m.If(((phase == 0) & (ti != 0)) | (phase == 1)):
                m.d.sync += frm_crc.eq(v["crc_next"])
            with m.If((phase == 0) & (ti == 4)):
                m.d.sync += [ti.eq(0), phase.eq(Mux(resp_len == 0, 2, 1)),
                             raddr.eq(v["arg"][:16]), ra.eq(0), rb.eq(0), rwait.eq(1)]
            with m.If(phase == 1):
                with m.If(ti == resp_len - 1):
                    m.d.sync += [ti.eq(0), phase.eq(2)]
                with m.If(rb == nb - 1):
                    m.d.sync += [rb.eq(0), ra.eq(ra + 1)]
                    with m.If(ra == core.pe - 1):
                        m.d.sync += [ra.eq(0), raddr.eq(raddr + 1), rwait.eq(1)]
                with m.Else():
                    m.d.sync += rb.eq(rb + 1)
            with m.If((phase == 2) & (ti == 3)):
                m.next = "SYNC"
