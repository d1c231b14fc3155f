"""The host link's image loader: a model image, chunk by chunk, checked and routed.

:class:`ImageLoader` takes the IMAGE payload bytes the link received, checks the image
as it streams in (header, section table, every CRC, sizes against this configuration)
and routes its sections' words into the accelerator's memories (:func:`section_routes`).
docs/images.md has the format, docs/host.md the checks.
"""

import struct
from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import WritePort
from amaranth.lib.wiring import In, Out

from .config import ConfigError
from .host_crc import CRC_RESIDUE, CrcRequest
from .host_receiver import greater_than
from .image_format import HEADER as IMAGE_HEADER
from .image_format import IMAGE_VERSION, MAGIC, SECTION, SECTION_TYPES
from .isa import ISA_VERSION
from .protocol import ERR_BITS, MAX_META, MAX_SECTIONS, Err

#: Bytes of the image's start the loader keeps (header and section table).
TABLE_BYTES = 256


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
assert IMAGE_HEADER.size + MAX_SECTIONS * SECTION.size <= TABLE_BYTES
#: Section table entries before the first (the header's size in entries).
_HEADER_ENTRIES = IMAGE_HEADER.size // SECTION.size


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
    """One threshold set: its ``n_thresholds`` i64s, the low ``acc_bits`` of each."""
    m.d.comb += [accel.tload.en.eq(en), accel.tload.bank.eq(bank), accel.tload.addr.eq(addr)]
    data = accel.tload.data
    if len(data) == 1:
        m.d.comb += data.as_value().eq(word)
    else:
        m.d.comb += [data[i].eq(word[64 * i:64 * (i + 1)]) for i in range(len(data))]


def _write_store(m, accel, en, bank, addr, word):
    m.d.comb += [accel.sload.en.eq(en), accel.sload.addr.eq(addr), accel.sload.data.eq(word)]


def section_routes(cfg):
    """The sections :class:`ImageLoader` accepts for ``cfg``, in any order (each once;
    PROGRAM and META required, the memories' sections written where present).

    Adding a section kind is one entry here (and its write function).
    """
    core = cfg.core
    wbytes = -(-core.weight_width // 8)
    tbytes = 8 * core.n_thresholds     # a threshold set: one i64 per threshold
    routes = [
        SectionRoute("PROGRAM", 8, 8 * cfg.prog_depth, False, cfg.prog_depth, _write_program),
        SectionRoute("WEIGHTS", wbytes, core.pe * core.weight_depth * wbytes, True,
                     core.weight_depth, _write_weights, required=False),
        SectionRoute("THRESHOLDS", tbytes, core.pe * core.thr_depth * tbytes, True,
                     core.thr_depth, _write_thresholds, required=False),
        SectionRoute("META", 1, MAX_META, False),
    ]
    if cfg.store_depth:         # the weight store: the words the weights stream from
        if wbytes & (wbytes - 1):
            raise ConfigError(f"HostLink loads a weight store of power-of-two byte words only "
                              f"(this one: {wbytes} bytes)")
        routes.append(SectionRoute("WSTORE", wbytes, cfg.store_depth * wbytes, False,
                                   cfg.store_depth, _write_store, required=False))
    return routes


def word_bytes_needed(routes):
    """Bytes the word assembler holds for ``routes`` (and an INPUT word of up to 8)."""
    return max([8] + [r.word_bytes for r in routes if r.write])


def banks_by_index(routes):
    """Every written route's depth is a power of two: one word counter whose high bits
    are the bank (no comparators)."""
    return all(r.depth & (r.depth - 1) == 0 for r in routes if r.write)


class SectionWrite(wiring.Signature):
    """A section word's write, from registers: ``select`` (one bit per route), the word
    counter ``index`` (with power-of-two depths its high bits are the bank), or the
    ``bank`` and ``addr`` within it. The word is the assembler's last bytes."""

    def __init__(self, routes, pe):
        index = max(r.depth * (pe if r.exact else 1) for r in routes)
        super().__init__({"select": Out(len(routes)), "index": Out(range(index + 1)),
                          "bank": Out(range(max(pe, 2))),
                          "addr": Out(range(max(r.depth for r in routes) + 1))})


class _Registers:
    """The loader's registers, named, shared by its state groups."""

    def __init__(self, loader, cfg, routes):
        npos = len(loader.pos)
        self.field = Signal(32)         # the last four image bytes, little-endian
        self.byte_pos = Signal(npos)    # IMG_PARSE: the offset of its byte (field[24:])
        self.expected = Signal(8)       # IMG_PARSE: the header byte's constant, if any
        self.expected_err = Signal(ERR_BITS)    # and the error if it differs (0: none)
        self.total = Signal(npos + 1, init=-1)
        self.next_offset = Signal(npos + 1)     # where the next section must start
        self.sections = Signal(range(MAX_SECTIONS + 1))
        self.seen = Signal(len(routes))
        self.table_route = Signal(range(len(routes)))   # the table entry's route
        self.section = Signal(range(MAX_SECTIONS + 1))  # the section being received
        self.route = Signal(range(len(routes)))         # its route
        self.section_left = Signal(npos)
        self.in_table, self.in_section = Signal(), Signal()
        # What IMG_CHECK handles at the byte (and SEC_LOAD's turn): pending flags.
        self.section_ends, self.table_ends = Signal(), Signal()
        self.image_ends, self.entry_due = Signal(), Signal()
        self.phase = Signal(4)          # CRC_CMP / SEC_LOAD: the cycle
        self.checking_section = Signal()    # CRC_CMP: the section's CRC (else the image's)
        self.word_ready = Signal()      # a section word waits in the assembler
        self.word_byte = Signal(range(word_bytes_needed(routes) + 1))
        self.bank_addr = Signal(range(max(r.depth for r in routes) + 1))
        self.bank = Signal(range(max(cfg.core.pe, 2)))
        self.word_index = Signal.like(loader.section_write.index)
        self.fail_requests = {}         # error code -> its request flag (:meth:`fail`)
        self.fail_code = Signal(ERR_BITS)   # or a code the checks computed (0: none)
        self.fail_pending = Signal()    # a failure was requested two cycles ago
        self.fail_pending_code = Signal(ERR_BITS)
        self.tests = None               # registered data tests (ImageLoader._tests)
        self.entry_route = None         # the table entry's route index, registered


class ImageLoader(wiring.Component):
    """A model image's bytes, checked and written into the accelerator's memories.

    ``new_image`` starts an image (offset 0), ``next_chunk`` continues it; the loader
    then reads the payload through the cursor (``step`` / ``at_end``, the byte on
    ``byte`` a cycle after the cursor's address was presented) until its end, when
    ``done`` is high for a cycle. A byte takes 13 cycles: its read, its CRC (9 cycles),
    its checks (IMG_PARSE, from registered tests), its word's write; a section's start
    or end takes a few more (CRC_CMP, SEC_LOAD). The header and the section table are
    kept in the buffer's table half (``table_write``; read back by ``table_read``),
    where each entry's fields have fixed addresses.

    The first failure sets ``failed`` and ``failure_code`` (``failure`` high a cycle);
    the rest of the image is counted but not parsed or written. ``valid`` rises once
    the whole image's CRC checks.

    Parameters
    ----------
    cfg : AccelConfig
    valid_at_reset : bool
        Reset value of ``valid`` (a bitstream whose memories hold a model).

    Members
    -------
    new_image, next_chunk, hold : In(1)
    step : Out(1), at_end : In(1), byte : In(8)
        The payload cursor and the buffer's read data.
    table_read : Out(1), table_addr : Out(8)
        The buffer's read address is ``table_addr`` of the table half this cycle.
    table_write : Out(WritePort.Signature(addr_width=8, shape=8))
    shift : Out(1)
        ``byte`` into the link's word assembler.
    section_write : Out(SectionWrite(routes, pe))
    crc : Out(CrcRequest()), crc_image, crc_section : In(32)
    done, valid, failed, failing, failure : Out(1)
    failure_code : Out(ERR_BITS)
    pos : Out(...)
        Image bytes received.
    """

    def __init__(self, cfg, *, valid_at_reset=False):
        self.cfg = cfg
        self.routes = routes = section_routes(cfg)
        img_max = IMAGE_HEADER.size + MAX_SECTIONS * SECTION.size + sum(r.max_size for r in routes)
        super().__init__({
            "new_image": In(1), "next_chunk": In(1), "hold": In(1),
            "step": Out(1), "at_end": In(1), "byte": In(8),
            "table_read": Out(1), "table_addr": Out(8),
            "table_write": Out(WritePort.Signature(addr_width=8, shape=8)), "shift": Out(1),
            "section_write": Out(SectionWrite(routes, cfg.core.pe)),
            "crc": Out(CrcRequest()), "crc_image": In(32), "crc_section": In(32),
            "done": Out(1), "valid": Out(1, init=int(valid_at_reset)), "failed": Out(1),
            "failing": Out(1), "failure": Out(1), "failure_code": Out(ERR_BITS),
            "pos": Out(range(img_max + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        r = _Registers(self, self.cfg, self.routes)
        m.d.comb += self.failing.eq(self.failed | r.fail_pending)
        m.d.sync += self.section_write.select.eq(0)     # a pulse (IMG_SEC)
        self._tests(m, r)
        with m.If(~self.hold), m.FSM(name="image") as fsm:
            self._byte_states(m, r)
            self._end_states(m, r)
        m.d.comb += self.crc.from_ram.eq(fsm.ongoing("IMG_USE") | fsm.ongoing("CRC_CMP"))
        self._fail_encoder(m, r)
        return m

    def fail(self, m, r, code):
        """Refuse the image with ``code``.

        Each code is a request flag. The flags are registered, one encoder
        (:meth:`_fail_encoder`) turns them into the error code, lowest first, and
        registers it with ``fail_pending``: a check's logic ends at its own flip-flop,
        not at an OR of every check. ``failing`` shows a failure two cycles after its
        check; the states leave that time (IMG_PARSE reads a registered copy, at least
        three cycles after the previous byte's checks; CRC_CMP and IMG_CHECK wait a
        cycle). The first failure of an image counts.
        """
        if code not in r.fail_requests:
            r.fail_requests[code] = Signal(name=f"fail_{code.name.lower()}")
        m.d.comb += r.fail_requests[code].eq(1)

    def _fail_encoder(self, m, r):
        code = Signal(ERR_BITS)
        m.d.sync += code.eq(r.fail_code)
        assert Err.NONE == 0 and all(c != 0 for c in r.fail_requests)
        for c in sorted(r.fail_requests, reverse=True):
            req = Signal(name=f"{r.fail_requests[c].name}_q")
            m.d.sync += req.eq(r.fail_requests[c])
            code = Mux(req, c, code)
        m.d.sync += [r.fail_pending.eq(code != 0), r.fail_pending_code.eq(code)]
        m.d.comb += [self.failure.eq(r.fail_pending & ~self.failed),
                     self.failure_code.eq(r.fail_pending_code)]
        with m.If(self.failure):
            m.d.sync += [self.failed.eq(1), self.valid.eq(0)]

    def _byte_states(self, m, r):
        """IDLE and the states that consume payload bytes (IMG_RD, IMG_USE, the CRC's
        9 cycles, IMG_PARSE, IMG_SEC: 13 cycles a byte)."""
        pos = self.pos
        with m.State("IDLE"):
            with m.If(self.new_image):
                m.d.sync += [pos.eq(0), self.failed.eq(0), self.valid.eq(0),
                             r.total.eq(-1), r.seen.eq(0), r.section.eq(0), r.in_table.eq(0),
                             r.in_section.eq(0), r.section_ends.eq(0), r.table_ends.eq(0),
                             r.image_ends.eq(0), r.entry_due.eq(0)]
                m.d.comb += self.crc.init_image.eq(1)
                m.next = "IMG_RD"
            with m.Elif(self.next_chunk):
                m.next = "IMG_RD"

        with m.State("IMG_RD"):                 # the read of the cursor's byte
            with m.If(self.at_end):
                m.d.comb += self.done.eq(1)
                m.next = "IDLE"
            with m.Else():
                m.next = "IMG_USE"

        with m.State("IMG_USE"):                # byte at image offset pos: CRC, words
            m.d.comb += self.step.eq(1)
            m.d.sync += [pos.eq(pos + 1), r.byte_pos.eq(pos)]
            with m.If(~self.failing):
                self._take(m, r)
            m.next = "IMG_PARSE"

        with m.State("IMG_PARSE"):              # the byte, now in field[24:], at byte_pos
            with m.If(~r.tests.failing):
                self._parse(m, r)
            m.next = "IMG_SEC"

        with m.State("IMG_SEC"):                # a section word's write
            with m.If(r.word_ready):
                # The word's write leaves from registers a cycle later (section_write).
                m.d.sync += [r.word_ready.eq(0), r.word_index.eq(r.word_index + 1),
                             self.section_write.select.eq(1 << r.route),
                             self.section_write.index.eq(r.word_index),
                             self.section_write.bank.eq(r.bank),
                             self.section_write.addr.eq(r.bank_addr)]
                if not banks_by_index(self.routes):
                    with m.Switch(r.route):
                        for i, route in enumerate(self.routes):
                            with m.Case(i):
                                with m.If(r.bank_addr == route.depth - 1):
                                    m.d.sync += [r.bank_addr.eq(0), r.bank.eq(r.bank + 1)]
                                with m.Else():
                                    m.d.sync += r.bank_addr.eq(r.bank_addr + 1)
            at_end = ~self.failing & (pos == r.total)
            m.d.sync += r.image_ends.eq(at_end)
            with m.If(r.section_ends | r.table_ends | at_end):
                m.next = "IMG_CHECK"
            with m.Else():
                m.next = "IMG_RD"

    def _end_states(self, m, r):
        """IMG_CHECK (what ends at the byte: a section, the table, the image), IMG_WAIT,
        CRC_CMP (a stored CRC against the register) and SEC_LOAD (the next section's
        entry)."""
        byte = self.byte
        with m.State("IMG_CHECK"):              # what ends at this byte
            m.d.sync += r.phase.eq(0)
            with m.If(self.failing):
                m.d.sync += [r.section_ends.eq(0), r.table_ends.eq(0), r.image_ends.eq(0),
                             r.entry_due.eq(0)]
                m.next = "IMG_RD"
            with m.Elif(r.section_ends):
                m.d.sync += [r.section_ends.eq(0), r.checking_section.eq(1)]
                m.next = "CRC_CMP"
            with m.Elif(r.table_ends):
                m.d.sync += [r.table_ends.eq(0), r.entry_due.eq(1)]
                m.next = "IMG_WAIT"             # back here once a failure would show
                with m.If(r.next_offset != r.total):
                    self.fail(m, r, Err.SIZE)
                required = sum(1 << i for i, route in enumerate(self.routes) if route.required)
                with m.If((r.seen & required) != required):
                    self.fail(m, r, Err.SECTION_TABLE)
            with m.Elif(r.image_ends):
                m.d.sync += [r.image_ends.eq(0), r.checking_section.eq(0)]
                m.next = "CRC_CMP"
            with m.Elif(r.entry_due):
                m.d.sync += r.entry_due.eq(0)
                m.next = "SEC_LOAD"
            with m.Else():
                m.next = "IMG_RD"

        with m.State("IMG_WAIT"):
            m.next = "IMG_CHECK"

        entry = (r.section + _HEADER_ENTRIES)[:4]
        with m.State("CRC_CMP"):
            # The stored CRC (section: entry bytes 12..15; image: header bytes 28..31)
            # through the register: a match leaves the residue. Two cycles a byte: its
            # read, then its feed (the serial CRC takes it from the read port).
            m.d.comb += [self.table_read.eq(1),
                         self.table_addr.eq(Mux(r.checking_section,
                                                Cat(r.phase[1:3], Const(3, 2), entry),
                                                _CRC_F[0] + r.phase[1:3]))]
            m.d.sync += r.phase.eq(r.phase + 1)
            with m.If(r.phase[0] & ~r.phase[3]):
                m.d.comb += [self.crc.feed.eq(1), self.crc.to_image.eq(~r.checking_section),
                             self.crc.to_section.eq(r.checking_section)]
            with m.If(r.phase == 9):            # a check's failure shows now (see fail)
                m.next = "IMG_CHECK"
            with m.If(r.phase == 8):
                with m.If(r.checking_section):
                    m.d.sync += r.section.eq(r.section + 1)
                    with m.If(self.crc_section != CRC_RESIDUE):
                        self.fail(m, r, Err.SECTION_CRC)
                    with m.If(r.section + 1 == r.sections):
                        m.d.sync += r.in_section.eq(0)
                    with m.Else():
                        m.d.sync += r.entry_due.eq(1)
                with m.Elif(self.crc_image != CRC_RESIDUE):
                    self.fail(m, r, Err.IMAGE_CRC)
                with m.Elif(r.in_section | (r.section != r.sections)):
                    self.fail(m, r, Err.SIZE)
                with m.Else():
                    m.d.sync += self.valid.eq(1)

        with m.State("SEC_LOAD"):
            # The entry's route (byte 3, stored by _parse) and size (bytes 8..11).
            m.d.comb += [self.table_read.eq(1),
                         self.table_addr.eq(Cat(Mux(r.phase == 0, 3, r.phase + 7)[:4], entry))]
            m.d.sync += r.phase.eq(r.phase + 1)
            with m.Switch(r.phase):
                with m.Case(1):
                    m.d.sync += r.route.eq(byte)
                with m.Case(2, 3, 4, 5):
                    m.d.sync += r.field.eq(Cat(r.field[8:], byte))
                with m.Case(6):
                    m.d.comb += self.crc.init_section.eq(1)
                    m.d.sync += [r.section_left.eq(r.field), r.in_section.eq(1),
                                 r.word_byte.eq(0), r.bank_addr.eq(0), r.bank.eq(0),
                                 r.word_index.eq(0)]
                with m.Case(7):                 # the size's zero test, registered
                    with m.If(r.tests.field_zero):
                        m.d.sync += r.section_ends.eq(1)
                        m.next = "IMG_CHECK"
                    with m.Else():
                        m.next = "IMG_RD"

    def _take(self, m, r):
        """IMG_USE: a new image byte (``byte``, at offset ``pos``) into the registers.

        It shifts into ``field``, goes through the image (and section) CRC and into
        the word assembler (sections). The checks and decisions on it wait for
        IMG_PARSE, a cycle after the CRC's: there they start from registers, not from
        the block RAM's output.
        """
        pos = self.pos
        m.d.sync += r.field.eq(Cat(r.field[8:], self.byte))
        m.d.comb += [self.crc.feed.eq(1), self.crc.to_image.eq(1),
                     self.crc.image_zero.eq(pos[2:] == _CRC_F[0] // 4),     # CRC as 0
                     self.crc.to_section.eq(r.in_section)]
        # The header's constant bytes: what this offset must hold, and the error if not.
        template = IMAGE_HEADER.pack(MAGIC, IMAGE_VERSION, ISA_VERSION, 0, 0,
                                     bytes.fromhex(self.cfg.hash), 0, 0)
        checks = [(_MAGIC_F, Err.MAGIC), (_VERSION_F, Err.IMAGE_VERSION),
                  (_ISA_F, Err.ISA_VERSION), (_HASH_F, Err.HASH)]
        m.d.sync += [r.expected.eq(0), r.expected_err.eq(0)]
        with m.If(pos < IMAGE_HEADER.size):
            with m.Switch(pos[:5]):
                for (offset, size), code in checks:
                    for p in range(offset, offset + size):
                        with m.Case(p):
                            m.d.sync += [r.expected.eq(template[p]), r.expected_err.eq(code)]
        with m.If(r.in_section):
            m.d.comb += self.shift.eq(1)

    def _route_of(self, m, entry):
        """``(route index, known)`` of a section table entry's type (its low 16 bits; the
        reserved u16 after it is not checked, as the driver's parser does not)."""
        index, known = Signal(range(len(self.routes))), Signal()
        kind_bits = max(SECTION_TYPES.values()).bit_length()    # a kind is small
        with m.Switch(entry[:kind_bits]):
            for i, route in enumerate(self.routes):
                with m.Case(SECTION_TYPES[route.name]):
                    m.d.comb += [index.eq(i), known.eq(entry[kind_bits:16] == 0)]
        return index, known

    def _tests(self, m, r):
        """The data tests IMG_PARSE needs, registered every cycle (``r.tests``).

        They read ``field``, ``byte_pos`` and registers IMG_USE and IMG_PARSE set;
        IMG_PARSE comes the CRC's 9 cycles after IMG_USE, so each is settled by then,
        and IMG_PARSE's checks start from flip-flops instead of 32-bit comparators.
        """
        routes, field, byte_pos = self.routes, r.field, r.byte_pos
        npos = len(self.pos)
        count_bits = MAX_SECTIONS.bit_length()      # narrow comparators: the high bits zero
        count = field[16:16 + count_bits]
        route, known = self._route_of(m, field)
        size = field[:npos]                 # every size limit fits pos
        size_bad = Signal()
        with m.Switch(r.table_route):
            for i, route_i in enumerate(routes):
                with m.Case(i):
                    if route_i.exact:
                        m.d.comb += size_bad.eq(size != route_i.max_size)
                    else:
                        assert route_i.word_bytes & (route_i.word_bytes - 1) == 0
                        m.d.comb += size_bad.eq(greater_than(size, route_i.max_size) |
                                                (size & (route_i.word_bytes - 1) != 0))
        word_end = Signal()
        with m.Switch(r.route):
            for i, route_i in enumerate(routes):
                with m.Case(i):
                    m.d.comb += word_end.eq(r.word_byte == route_i.word_bytes - 1)
        tests = {
            "past_end": byte_pos == r.total,
            "byte_bad": field[24:] != r.expected,
            "sections_bad": ((field[16 + count_bits:] != 0) | (count == 0) |
                             (count > MAX_SECTIONS)),
            "high_bad": field[npos:] != 0,      # a total or a size past any image
            "entry_bad": ~known | r.seen.bit_select(route, 1),
            "offset_bad": field != r.next_offset,
            "size_bad": size_bad,
            "table_end": byte_pos[4:8] == r.sections + _HEADER_ENTRIES - 1,
            # where the byte is: the header fields and table entry bytes IMG_PARSE handles
            "at_sections": (byte_pos < IMAGE_HEADER.size) & (byte_pos[:5] == _NSEC_F[0] + 1),
            "at_total": (byte_pos < IMAGE_HEADER.size) & (byte_pos[:5] == _TOTAL_F[0] + 3),
            "at_head_end": byte_pos == IMAGE_HEADER.size - 1,
            **{f"at_entry{j}": r.in_table & (byte_pos[:4] == j) for j in (3, 7, 11, 15)},
            "failing": self.failing,            # (a failure shows here a cycle later)
            "section_last": r.section_left == 1,
            "field_zero": field == 0,           # SEC_LOAD: an empty section
            "word_end": word_end,
        }
        r.tests = _Tests(tests)
        m.d.sync += [getattr(r.tests, k).eq(value) for k, value in tests.items()]
        r.entry_route = Signal.like(route, name="entry_route")
        m.d.sync += r.entry_route.eq(route)

    def _parse(self, m, r):
        """IMG_PARSE: the checks and decisions on the byte IMG_USE took (header, section
        table or section); the byte is ``field[24:]``, its offset ``byte_pos``, its data
        tests ``r.tests`` (:meth:`_tests`)."""
        routes, tests, field, byte_pos = self.routes, r.tests, r.field, r.byte_pos
        # Header and section table are kept in the table half (CRC_CMP and SEC_LOAD read
        # them); a table entry's byte 3 is stored as its route index.
        with m.If((byte_pos < IMAGE_HEADER.size) | r.in_table):
            m.d.comb += [self.table_write.en.eq(1), self.table_write.addr.eq(byte_pos[:8]),
                         self.table_write.data.eq(Mux(tests.at_entry3, r.entry_route,
                                                      field[24:]))]
        with m.If(tests.past_end):          # a byte past the end (IMG_SEC: the last byte)
            self.fail(m, r, Err.SIZE)

        # Header: constant bytes, then the fields the parser needs.
        with m.If(tests.byte_bad):
            m.d.comb += r.fail_code.eq(r.expected_err)      # 0 where nothing is expected
        with m.If(tests.at_sections):
            n = field[16:16 + MAX_SECTIONS.bit_length()]
            with m.If(tests.sections_bad):
                self.fail(m, r, Err.SECTION_TABLE)
            m.d.sync += [r.sections.eq(n),
                         r.next_offset.eq(IMAGE_HEADER.size + n * SECTION.size)]
        with m.If(tests.at_total):
            m.d.sync += r.total.eq(field)
            with m.If(tests.high_bad):
                self.fail(m, r, Err.SIZE)
        with m.If(tests.at_head_end):
            m.d.sync += r.in_table.eq(1)

        # Section table: check each entry; keep its route index.
        with m.If(tests.at_entry3):
            with m.If(tests.entry_bad):
                self.fail(m, r, Err.SECTION_TABLE)
            m.d.sync += [r.seen.eq(r.seen | (1 << r.entry_route)),
                         r.table_route.eq(r.entry_route)]
        with m.If(tests.at_entry7 & tests.offset_bad):
            self.fail(m, r, Err.SECTION_TABLE)
        with m.If(tests.at_entry11):
            m.d.sync += r.next_offset.eq(r.next_offset + field[:len(self.pos)])
            with m.If(tests.high_bad | tests.size_bad):
                self.fail(m, r, Err.SECTION_SIZE)
        with m.If(tests.at_entry15 & tests.table_end):     # (the table ends below 256)
            m.d.sync += [r.table_ends.eq(1), r.in_table.eq(0)]

        # Section bytes (assembled by IMG_USE): IMG_SEC writes the words.
        with m.If(r.in_section):
            m.d.sync += r.section_left.eq(r.section_left - 1)
            with m.If(tests.section_last):
                m.d.sync += r.section_ends.eq(1)
            with m.If(tests.word_end):
                written = Cat(Const(route.write is not None) for route in routes)
                m.d.sync += [r.word_byte.eq(0), r.word_ready.eq(written.bit_select(r.route, 1))]
            with m.Else():
                m.d.sync += r.word_byte.eq(r.word_byte + 1)


class _Tests:
    """Registered test flags by name: ``_Tests({"name": value})`` has a 1-bit
    register ``name`` per entry (named ``test_<name>``)."""

    def __init__(self, tests):
        for name in tests:
            setattr(self, name, Signal(name=f"test_{name}"))
