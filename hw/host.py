"""The framed host interface: byte streams in and out, the accelerator inside.

:class:`HostLink` receives request frames (:mod:`tritium.hw.protocol`) on a
byte stream, checks their CRC, executes them and sends a response frame on
another byte stream. A UART PHY (or any byte pipe) connects to ``rx`` / ``tx``.
It is a composition of components: the request receiver, the dispatcher, the
image loader (which checks a model image as it streams in and routes its
sections into the accelerator's memories), the input writer, the response
sender and the serial CRC they share; docs/host.md has the protocol and the
components.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .accel import Accelerator
from .accel_config import AccelConfig
from .config import ConfigError
from .host_crc import SerialCrc, connect_requests
from .host_dispatch import Dispatcher
from .host_image import TABLE_BYTES, ImageLoader, banks_by_index, section_routes, word_bytes_needed
from .host_input import InputWriter
from .host_receiver import PayloadCursor, RequestReceiver
from .host_sender import ResponseSender
from .layouts import NO_RW_CHECK
from .protocol import IDLE_TIMEOUT_S, MAX_PAYLOAD, acc_bytes, input_word_bytes

assert MAX_PAYLOAD == TABLE_BYTES   # the buffer: payload, then the image's table half


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
        core = cfg.core
        entry_bytes = core.pe * acc_bytes(core.acc_bits)
        if cfg.res_depth * entry_bytes > 0xFFFF:
            raise ConfigError(f"the result memory ({cfg.res_depth} x {entry_bytes} bytes) does "
                              "not fit one response frame (65535 bytes)")
        self.accel = Accelerator(cfg, init=init)
        self.cfg = cfg
        self.idle_timeout = int(idle_timeout or max(1, round(clk_freq * IDLE_TIMEOUT_S)))
        self.image_valid_at_reset = bool(image_valid_at_reset)
        self.routes = section_routes(cfg)
        super().__init__({"rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8)),
                          "status": Out(HostLinkStatus())})

    def elaborate(self, platform):
        m = Module()
        cfg, accel = self.cfg, self.accel
        m.submodules.accel = accel
        m.submodules.crc = crc = SerialCrc(registered=cfg.act_reg)
        m.submodules.cursor = cursor = PayloadCursor()
        m.submodules.receiver = receiver = RequestReceiver(self.idle_timeout)
        m.submodules.image = image = ImageLoader(cfg, valid_at_reset=self.image_valid_at_reset)
        m.submodules.dispatcher = dispatcher = Dispatcher(cfg, len(image.pos))
        m.submodules.input = writer = InputWriter(cfg, len(accel.act_addr), len(accel.act_data))
        m.submodules.sender = sender = ResponseSender(cfg, len(image.pos))

        wiring.connect(m, wiring.flipped(self.rx), receiver.rx)
        wiring.connect(m, receiver.frame, dispatcher.frame)
        connect_requests(m, crc, receiver.crc, image.crc, dispatcher.crc)
        m.d.comb += [c.eq(crc.hold) for c in (receiver.crc_hold, image.hold, writer.hold,
                                              dispatcher.hold, sender.crc_hold)]
        m.d.comb += [receiver.frame_crc.eq(crc.frame), image.crc_image.eq(crc.image),
                     image.crc_section.eq(crc.section), sender.frame_crc.eq(crc.frame),
                     crc.rx_byte.eq(receiver.byte),
                     crc.tx_byte.eq(sender.byte)]
        m.d.comb += [cursor.length.eq(receiver.cursor.length),
                     cursor.load.eq(receiver.cursor.load),
                     cursor.load_index.eq(receiver.cursor.load_index),
                     cursor.load_at_end.eq(receiver.cursor.load_at_end),
                     cursor.step.eq(receiver.cursor.step | image.step | writer.step),
                     receiver.cursor_index.eq(cursor.index)]
        m.d.comb += [c.eq(cursor.at_end) for c in (receiver.cursor_at_end, image.at_end,
                                                   writer.at_end)]
        word = self._buffer(m, cursor, receiver, image, writer, crc)
        self._memory_writes(m, image, writer, word)
        self._connect_dispatcher(m, dispatcher, image, writer, sender)
        self._connect_sender(m, sender, dispatcher, image)
        m.d.comb += [
            self.status.busy.eq(~receiver.receiving),
            self.status.done.eq(accel.done),
            self.status.error.eq(accel.error | image.failed),
            self.status.image_ok.eq(image.valid),
        ]
        return m

    def _buffer(self, m, cursor, receiver, image, writer, crc):
        """The link's block RAM (request payloads at 0.., the image's header and section
        table in the upper half, so an entry's fields have fixed addresses) and the word
        assembler behind its read port; returns the assembler's register (a w-byte word
        is its top ``8 * w`` bits)."""
        m.submodules.buffer = buffer = Memory(shape=8, depth=MAX_PAYLOAD + TABLE_BYTES,
                                              init=[], attrs=NO_RW_CHECK)
        read, write = buffer.read_port(), buffer.write_port()
        table = Const(MAX_PAYLOAD // TABLE_BYTES, len(read.addr) - 8)
        m.d.comb += [
            read.addr.eq(Mux(image.table_read, Cat(image.table_addr, table), cursor.index)),
            write.en.eq(receiver.write.en | image.table_write.en),
            write.addr.eq(Mux(image.table_write.en, Cat(image.table_write.addr, table),
                              receiver.write.addr)),
            write.data.eq(Mux(image.table_write.en, image.table_write.data,
                              receiver.write.data)),
            image.byte.eq(read.data), crc.ram_byte.eq(read.data),
        ]
        word = Signal(8 * word_bytes_needed(self.routes))
        with m.If(image.shift | writer.shift):
            m.d.sync += word.eq(Cat(word[8:], read.data))
        m.d.comb += writer.word.eq(word[-8 * input_word_bytes(self.cfg.core.simd):])
        return word

    def _memory_writes(self, m, image, writer, word):
        """A section word's write into its memory (from the loader's registers), an
        INPUT word's into buffer 0."""
        write, accel = image.section_write, self.accel
        for i, route in enumerate(self.routes):
            if route.write:
                if banks_by_index(self.routes):
                    k = (route.depth - 1).bit_length()
                    bank, addr = write.index[k:], write.index[:k]
                else:
                    bank, addr = write.bank, write.addr
                route.write(m, accel, write.select[i], bank, addr, word[-8 * route.word_bytes:])
        m.d.comb += [accel.act_we.eq(writer.act.en), accel.act_addr.eq(writer.act.addr),
                     accel.act_data.eq(writer.act.data)]

    def _connect_dispatcher(self, m, dispatcher, image, writer, sender):
        accel = self.accel
        m.d.comb += [
            image.new_image.eq(dispatcher.new_image), image.next_chunk.eq(dispatcher.next_chunk),
            dispatcher.image_done.eq(image.done), dispatcher.image_valid.eq(image.valid),
            dispatcher.image_failing.eq(image.failing),
            dispatcher.image_failure.eq(image.failure),
            dispatcher.image_failure_code.eq(image.failure_code),
            dispatcher.image_pos.eq(image.pos),
            writer.start.eq(dispatcher.input_start), writer.first.eq(dispatcher.frame.arg),
            dispatcher.input_ok.eq(writer.done_ok),
            dispatcher.input_length.eq(writer.done_length),
            dispatcher.input_range.eq(writer.done_range),
            accel.start.eq(dispatcher.run_start), dispatcher.run_done.eq(accel.done),
            dispatcher.run_error.eq(accel.error), dispatcher.run_error_code.eq(accel.error_code),
            sender.send_status.eq(dispatcher.send_status), sender.send_nak.eq(dispatcher.send_nak),
            sender.send_results.eq(dispatcher.send_results),
            sender.nak_reason.eq(dispatcher.nak_reason), sender.prep.eq(dispatcher.prep),
            sender.active.eq(dispatcher.active), dispatcher.sender_done.eq(sender.done),
            dispatcher.sender_feed.eq(sender.feed), dispatcher.sender_shift.eq(sender.shift),
        ]

    def _connect_sender(self, m, sender, dispatcher, image):
        """The response sender's other inputs: the request, the status, the result read."""
        accel, core, frame = self.accel, self.cfg.core, dispatcher.frame
        wiring.connect(m, sender.tx, wiring.flipped(self.tx))
        m.d.comb += [
            sender.cmd.eq(frame.cmd), sender.seq.eq(frame.seq),
            sender.first.eq(frame.arg[:16]), sender.count.eq(frame.arg[16:]),
            sender.run_done.eq(accel.done), sender.run_error.eq(accel.error),
            sender.cycles.eq(accel.cycles), sender.image_valid.eq(image.valid),
            sender.image_failed.eq(image.failed), sender.error.eq(dispatcher.error),
            sender.image_pos.eq(image.pos), accel.res_addr.eq(sender.entry),
        ]
        if core.chain:
            # The chain gathers the selected accumulator along its slices (hw/chain.py).
            m.d.comb += [accel.res_sel.eq(sender.acc_index), sender.acc_value.eq(accel.res_word)]
        else:
            with m.Switch(sender.acc_index):
                for p in range(core.pe):
                    with m.Case(p):
                        m.d.comb += sender.acc_value.eq(accel.res_data[p])
