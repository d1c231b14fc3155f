"""The host driver: talks to a :class:`~tritium.hw.host.HostLink` over a byte pipe.

Two layers:

* sans-IO frame coding (:func:`encode_request`, :func:`encode_response`,
  :class:`FrameDecoder`): bytes in, frames out, no I/O; the protocol's
  constants come from :mod:`tritium.hw.protocol`;
* :class:`Device`: requests over a *transport*, any object with
  ``write(data: bytes)`` and ``read(n, timeout) -> bytes`` (fewer than ``n``
  bytes when the timeout passes). A pyserial ``Serial`` fits through
  :class:`SerialTransport`; tests plug in a simulated device.

:class:`Device` resends a request on a timeout, a NAK for a damaged frame or a
response with a bad CRC, and gives up after ``retries`` tries with one line
(:class:`DeviceError`). All waiting goes through ``transport.read``, so a
simulated transport controls time.
"""

from dataclasses import dataclass
from pathlib import Path

from ...hw.errors import FormatError, TritiumError
from ...hw.protocol import (ERR_TEXT, HEADER, FLAG_IMAGE_FAILED, FLAG_IMAGE_VALID, IDLE_TIMEOUT_S,
                           MAX_PAYLOAD, NAK, NAK_TEXT, OFFSET_ARG, REQUEST_START, RESPONSE_FLAG,
                           RESPONSE_START, RESULTS_ARG, STATUS_PAYLOAD, TRAILER, Cmd, Err, Nak,
                           State, acc_bytes, frame_crc, input_word_bytes)
from .loop import Backend, run_batches

#: Bytes of stale frames or noise a response may come after.
_MAX_STALE = 4 * (HEADER.size + 0xFFFF + TRAILER.size)
#: NAK reasons worth a resend (the frame was damaged on the way).
RETRY_NAKS = frozenset({Nak.CRC, Nak.LENGTH, Nak.TIMEOUT})


class DeviceError(TritiumError):
    """The device refused a request or did not answer; ``code`` is its Err code (or None)."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------- sans-IO frames

def _frame(start, cmd, seq, payload):
    payload = bytes(payload)
    if len(payload) > 0xFFFF:
        raise ValueError("payload longer than 65535 bytes")
    head = HEADER.pack(start, cmd, seq & 0xFF, len(payload))
    body = head[1:] + payload           # the CRC covers everything after the start byte
    return head + payload + TRAILER.pack(frame_crc(body))


def encode_request(cmd, seq, payload=b""):
    """A request frame (host -> device)."""
    return _frame(REQUEST_START, cmd, seq, payload)


def encode_response(cmd, seq, payload=b""):
    """A response frame (device -> host); ``cmd`` is the byte sent (``NAK`` or cmd | 0x80)."""
    return _frame(RESPONSE_START, cmd, seq, payload)


@dataclass(frozen=True)
class Frame:
    """A decoded frame; ``ok`` is False when its CRC was wrong."""

    cmd: int
    seq: int
    payload: bytes
    ok: bool = True

    @property
    def is_nak(self):
        return self.cmd == NAK


class FrameDecoder:
    """Incremental frame decoder: :meth:`feed` bytes, get whole frames.

    Bytes before a start byte are skipped (counted in ``skipped``); a frame
    with a bad CRC comes out with ``ok=False``. :meth:`needed` says how many
    more bytes the frame in progress needs (1 while hunting a start byte).
    """

    def __init__(self, start=RESPONSE_START, max_payload=0xFFFF):
        self.start, self.max_payload = start, max_payload
        self._buf = bytearray()
        self.skipped = 0

    def needed(self):
        if not self._buf:
            return 1
        if len(self._buf) < HEADER.size:
            return HEADER.size - len(self._buf)
        return self._total() - len(self._buf)

    def _total(self):
        return HEADER.size + HEADER.unpack_from(self._buf)[3] + TRAILER.size

    def feed(self, data):
        """Add bytes; returns the list of frames completed by them."""
        frames = []
        for b in bytes(data):
            if not self._buf:
                if b != self.start:
                    self.skipped += 1
                    continue
            self._buf.append(b)
            if len(self._buf) == HEADER.size:
                if HEADER.unpack_from(self._buf)[3] > self.max_payload:
                    self.skipped += len(self._buf)          # not a frame: resynchronise
                    self._buf.clear()
                    continue
            if len(self._buf) >= HEADER.size and len(self._buf) == self._total():
                frames.append(self._decode(bytes(self._buf)))
                self._buf.clear()
        return frames

    @staticmethod
    def _decode(raw):
        _, cmd, seq, length = HEADER.unpack_from(raw)
        end = HEADER.size + length
        (crc,) = TRAILER.unpack_from(raw, end)
        return Frame(cmd, seq, raw[HEADER.size:end], crc == frame_crc(raw[1:end]))


def decode_frames(data, start=RESPONSE_START):
    """All whole frames in ``data`` (sans-IO helper for tests and tools)."""
    return FrameDecoder(start).feed(data)


# ---------------------------------------------------------------- device status

@dataclass(frozen=True)
class Status:
    """A STATUS response."""

    state: int
    error: int
    flags: int
    hw_hash: str
    cycles: int
    image_bytes: int

    @classmethod
    def decode(cls, payload):
        if len(payload) != STATUS_PAYLOAD.size:
            raise DeviceError(f"malformed STATUS response ({len(payload)} bytes)")
        state, error, flags, _, hw_hash, cycles, image_bytes = STATUS_PAYLOAD.unpack(payload)
        return cls(state, error, flags, hw_hash.hex(), cycles, image_bytes)

    @property
    def image_valid(self):
        return bool(self.flags & FLAG_IMAGE_VALID)

    @property
    def image_failed(self):
        return bool(self.flags & FLAG_IMAGE_FAILED)

    @property
    def error_text(self):
        try:
            return f"{Err(self.error).name}: {ERR_TEXT[Err(self.error)]}"
        except ValueError:
            return f"unknown error code {self.error}"


# ---------------------------------------------------------------- the device

class Device:
    """A tritium accelerator behind a :class:`~tritium.hw.host.HostLink`.

    Parameters
    ----------
    transport
        ``write(bytes)`` and ``read(n, timeout) -> bytes``.
    timeout : float
        Seconds to wait for a response.
    run_timeout : float
        Seconds to wait for the response to START (it comes when the run ends).
    retries : int
        Tries of one request before :class:`DeviceError`.
    chunk : int
        Model-image bytes per IMAGE request (at most ``MAX_PAYLOAD - 4``).
    """

    def __init__(self, transport, timeout=1.0, run_timeout=30.0, retries=4,
                 chunk=MAX_PAYLOAD - OFFSET_ARG.size):
        if not 1 <= chunk <= MAX_PAYLOAD - OFFSET_ARG.size:
            raise ValueError(f"chunk must be 1..{MAX_PAYLOAD - OFFSET_ARG.size}")
        self.transport, self.timeout, self.run_timeout = transport, timeout, run_timeout
        self.retries, self.chunk = retries, chunk
        self.seq = 0
        self.resent = 0             # requests sent again (statistics)
        self.loaded = None          # the last model image the device accepted (bytes)
        self._segment_images = (None, [])

    # -- one request --------------------------------------------------------

    def request(self, cmd, payload=b"", timeout=None):
        """Send one request and return the response payload (resending as needed)."""
        cmd = Cmd(cmd)
        self.seq = (self.seq + 1) & 0xFF
        frame = encode_request(cmd, self.seq, payload)
        last = "no response"
        for attempt in range(self.retries):
            if attempt:
                self.resent += 1
                self._drain()
            self.transport.write(frame)
            reply = self._receive(timeout or self.timeout)
            if reply is None:
                last = "no response (timeout)"
                continue
            if not reply.ok:
                last = "response with a bad CRC"
                continue
            if reply.is_nak:
                reason = reply.payload[0] if reply.payload else 0
                text = NAK_TEXT.get(reason, f"reason {reason}")
                if reason in RETRY_NAKS:
                    last = f"NAK: {text}"
                    continue
                raise DeviceError(f"device refused {cmd.name}: {text}")
            if reply.cmd != cmd | RESPONSE_FLAG:
                last = f"unexpected response 0x{reply.cmd:02x}"
                continue
            return reply.payload
        raise DeviceError(f"{cmd.name} failed after {self.retries} tries ({last}); "
                          "is the device connected and running tritium gateware?")

    def _receive(self, timeout):
        """The next response frame with our sequence number, or None on timeout."""
        dec = FrameDecoder()
        received = 0
        while received < _MAX_STALE:
            data = self.transport.read(dec.needed(), timeout)
            if not data:
                return None
            received += len(data)
            for f in dec.feed(data):
                if f.seq == self.seq or not f.ok:
                    return f                # frames of earlier requests are skipped
        return None

    def _drain(self):
        """Let the device drop a half-received frame, and discard stale bytes."""
        while self.transport.read(4096, 2 * IDLE_TIMEOUT_S):
            pass

    # -- commands -----------------------------------------------------------

    def status(self):
        return Status.decode(self.request(Cmd.STATUS))

    def load_image(self, image, check=True, progress=None):
        """Send a model image (path or bytes); returns its Compiled model (None unchecked).

        With ``check`` the image is first checked in software against the
        device's hardware hash (:func:`tritium.sw.compiler.image.parse_image`). The
        device checks it again as it streams in; a refusal raises
        :class:`DeviceError` with the device's error code. ``progress(n)`` is
        called with the bytes sent after each chunk.
        """
        from ..compiler.image import parse_image

        if isinstance(image, (str, Path)):
            path = Path(image)
            try:
                data = path.read_bytes()
            except OSError as e:
                raise FormatError(f"{path}: cannot read ({e.strerror})") from None
        else:
            path, data = "model image", bytes(image)
        compiled = None
        if check:
            compiled = parse_image(data, path, expect_hash=self.status().hw_hash)
        st = None
        for offset in range(0, len(data), self.chunk):
            piece = data[offset:offset + self.chunk]
            st = Status.decode(self.request(Cmd.IMAGE, OFFSET_ARG.pack(offset) + piece))
            if progress:
                progress(len(piece))
            if st.image_failed:
                break
        if st is None or not st.image_valid:
            st = self.status()
        if not st.image_valid:
            self.loaded = None
            raise DeviceError(f"the device refused the model image ({st.error_text})", st.error)
        self.loaded = data
        return compiled

    def write_input(self, words, simd, addr=0):
        """Write activation-buffer-0 words (ints of ``simd`` bits) from ``addr``."""
        wb = input_word_bytes(simd)
        per = (MAX_PAYLOAD - OFFSET_ARG.size) // wb
        for i in range(0, len(words), per):
            raw = b"".join(int(w).to_bytes(wb, "little") for w in words[i:i + per])
            self.request(Cmd.INPUT, OFFSET_ARG.pack(addr + i) + raw)

    def start(self):
        """Run the program; returns the STATUS after the run (DeviceError if it failed)."""
        st = Status.decode(self.request(Cmd.START, timeout=self.run_timeout))
        if st.state == State.ERROR:
            raise DeviceError(f"the run failed ({st.error_text})", st.error)
        return st

    def read_results(self, addr, count, pe, acc_bits):
        """``count`` result entries from ``addr``: lists of ``pe`` signed accumulators."""
        nb = acc_bytes(acc_bits)
        per = max(1, MAX_PAYLOAD // (pe * nb))
        entries = []
        for a in range(addr, addr + count, per):
            n = min(per, addr + count - a)
            raw = self.request(Cmd.RESULTS, RESULTS_ARG.pack(a, n))
            if len(raw) != n * pe * nb:
                raise DeviceError(f"RESULTS answered {len(raw)} bytes, expected {n * pe * nb}")
            entries += [[int.from_bytes(raw[(e * pe + p) * nb:(e * pe + p + 1) * nb], "little",
                                        signed=True) for p in range(pe)] for e in range(n)]
        return entries

    def run_batch(self, compiled, values, progress=None):
        """Input values (N, *input_shape) -> (accumulators, cycles per batch).

        Runs :func:`~tritium.sw.run.loop.run_batches` on :class:`DeviceBackend`: the
        inputs packed exactly as the simulators pack them, the result memory decoded
        alike. A model that runs in segments (docs/accelerator.md, "Segments") has each
        segment's model image loaded before its run (skipped where the device holds it
        already) and its part of the input written; a batch's cycles are the sum of its
        runs'. ``progress(n)``: called with the image bytes sent.
        """
        result = run_batches(compiled, values, DeviceBackend(self, compiled, progress))
        return result.accumulators, result.cycles

    def images_of(self, compiled):
        """The model image of each segment of ``compiled`` (None for a model that runs once:
        the caller loads it), made once per model."""
        from ..compiler.image import image_bytes

        if self._segment_images[0] is not compiled:
            images = [image_bytes(compiled.segment(k)) for k in range(len(compiled.segments))]
            self._segment_images = (compiled, images or [None])
        return self._segment_images[1]

    def infer(self, compiled, values):
        """(accumulators, predicted classes, cycles per run) of input values."""
        result = run_batches(compiled, values, DeviceBackend(self, compiled))
        return result.accumulators, result.classes, result.cycles


class DeviceBackend(Backend):
    """A :class:`Device` as a :class:`~tritium.sw.run.loop.Backend`, for ``compiled``
    (whose model image the device holds; a segmented model's segment images are sent as
    the runs need them, ``progress(n)`` called with the bytes sent)."""

    def __init__(self, device, compiled, progress=None):
        self.device, self.compiled, self.progress = device, compiled, progress
        self.images = device.images_of(compiled)

    def load_segment(self, k):
        if self.images[k] != self.device.loaded:
            self.device.load_image(self.images[k], check=False, progress=self.progress)

    def write_input(self, words):
        self.device.write_input(words, self.compiled.config.simd)

    def start(self):
        return self.device.start().cycles

    def read_results(self, base, count):
        cfg = self.compiled.config
        return self.device.read_results(base, count, cfg.pe, cfg.core.acc_bits)


class SerialTransport:
    """A pyserial port as a transport (``read(n, timeout)``)."""

    def __init__(self, port, baud=115200):
        import serial

        try:
            self.serial = serial.Serial(port, baud, timeout=0.1)
        except (serial.SerialException, OSError, ValueError) as e:
            raise TritiumError(f"cannot open serial port {port} ({_one_line(e)})") from None

    def write(self, data):
        self.serial.write(data)

    def read(self, n, timeout):
        self.serial.timeout = timeout
        return self.serial.read(n)

    def close(self):
        self.serial.close()


def _one_line(e):
    return " ".join(str(e).split()) or type(e).__name__
