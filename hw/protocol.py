"""The host protocol, defined once: frames, commands, responses, codes and limits.

The gateware (:class:`tritium.hw.host.HostLink`) and the host driver
(:mod:`tritium.sw.run.driver`) both import this module; docs/host.md describes
the protocol and a test keeps its code tables equal to the enums here.

Frames (all integers little-endian)::

    request   0xA5  cmd         seq  len:u16  payload[len]  crc32:u32
    response  0x5A  cmd | 0x80  seq  len:u16  payload[len]  crc32:u32
    NAK       0x5A  0xFF        seq  2        reason cmd    crc32:u32

``crc32`` is zlib's CRC-32 over every byte after the start byte up to the end
of the payload. A response echoes the request's ``seq``. A request payload
holds at most :data:`MAX_PAYLOAD` bytes; a device drops a frame whose next
byte does not come within :data:`IDLE_TIMEOUT_S`.
"""

import enum
import struct
import zlib

#: First byte of a request frame (host -> device).
REQUEST_START = 0xA5
#: First byte of a response frame (device -> host).
RESPONSE_START = 0x5A
#: A response's command byte is the request's command with this bit set.
RESPONSE_FLAG = 0x80
#: The command byte of a NAK response (payload: reason, the refused command).
NAK = 0xFF
#: Start byte, command, sequence number, payload length (u16).
HEADER = struct.Struct("<BBBH")
#: The trailing CRC-32 (u32).
TRAILER = struct.Struct("<I")
#: Most payload bytes in a request (the device buffers one request payload).
MAX_PAYLOAD = 256
#: Seconds without a byte after which a device drops a half-received frame.
IDLE_TIMEOUT_S = 0.05
#: Most sections in a model image the device accepts.
MAX_SECTIONS = 8
#: Most bytes of the META section the device accepts (it only checks its CRC).
MAX_META = 16384


def frame_crc(body):
    """CRC-32 of a frame's bytes after the start byte (zlib's CRC-32)."""
    return zlib.crc32(body) & 0xFFFFFFFF


class Cmd(enum.IntEnum):
    """Request commands; :data:`CMD_TEXT` describes their payloads."""

    STATUS = 0x01
    IMAGE = 0x02
    INPUT = 0x03
    START = 0x04
    RESULTS = 0x05


class Nak(enum.IntEnum):
    """Reasons of a NAK response (:data:`NAK_TEXT`)."""

    CRC = 1
    LENGTH = 2
    COMMAND = 3
    STATE = 4
    OFFSET = 5
    RANGE = 6
    TIMEOUT = 7


class Err(enum.IntEnum):
    """Error codes in STATUS and the accelerator's ``error_code`` (:data:`ERR_TEXT`).

    Codes 1-2 come from a run of the program; 3-4 from a refused START; the
    rest from the checks the device makes on a model image as it streams in.
    """

    NONE = 0
    BAD_OPCODE = 1
    PC_OVERFLOW = 2
    NO_IMAGE = 3
    IMAGE_INCOMPLETE = 4
    MAGIC = 5
    IMAGE_VERSION = 6
    ISA_VERSION = 7
    HASH = 8
    SIZE = 9
    IMAGE_CRC = 10
    SECTION_TABLE = 11
    SECTION_SIZE = 12
    SECTION_CRC = 13


#: One line per error code (the driver's messages and docs/host.md's table).
ERR_TEXT = {
    Err.NONE: "no error",
    Err.BAD_OPCODE: "the program holds an illegal instruction",
    Err.PC_OVERFLOW: "the program counter ran past the program memory",
    Err.NO_IMAGE: "no model image loaded",
    Err.IMAGE_INCOMPLETE: "the model image is incomplete (not every byte arrived)",
    Err.MAGIC: "not a tritium model image (bad magic)",
    Err.IMAGE_VERSION: "unsupported model-image format version",
    Err.ISA_VERSION: "the image was compiled for another ISA version",
    Err.HASH: "the image was compiled for other hardware (configuration hash differs)",
    Err.SIZE: "the image's total size disagrees with its section table, or bytes came past its end",
    Err.IMAGE_CRC: "CRC-32 of the whole image is wrong",
    Err.SECTION_TABLE: "bad section table (count, offset, unknown, repeated or missing section)",
    Err.SECTION_SIZE: "a section's size does not fit this hardware configuration",
    Err.SECTION_CRC: "a section's CRC-32 is wrong",
}

#: One line per command: request payload -> response payload.
CMD_TEXT = {
    Cmd.STATUS: "none -> STATUS payload",
    Cmd.IMAGE: "offset u32, model-image bytes -> STATUS payload (offset 0 starts a new "
               "image; a chunk starting before the bytes received is acknowledged, not applied)",
    Cmd.INPUT: "word address u32, activation-buffer-0 words (ceil(S/8) bytes each) -> STATUS payload",
    Cmd.START: "none -> STATUS payload when the program has finished (a repeated START with "
               "the same seq is answered without running again)",
    Cmd.RESULTS: "first entry u16, count u16 -> count entries of P accumulators "
                 "(ceil(acc_bits/8) bytes each, signed)",
}

#: One line per NAK reason.
NAK_TEXT = {
    Nak.CRC: "bad frame CRC",
    Nak.LENGTH: "bad payload length for the command (or longer than MAX_PAYLOAD)",
    Nak.COMMAND: "unknown command",
    Nak.STATE: "not allowed now: START without a valid model image (STATUS error says why), "
               "or INPUT while a model image is half loaded",
    Nak.OFFSET: "IMAGE chunk starts past the bytes received so far",
    Nak.RANGE: "address past the end of the memory",
    Nak.TIMEOUT: "the frame stopped arriving after its header (idle timeout)",
}

#: Bits of the error code in hardware (the accelerator's ``error_code``).
ERR_BITS = 4
assert max(Err) < 1 << ERR_BITS

#: Module-level names of the codes the accelerator core sets.
ERR_NONE, ERR_BAD_OPCODE, ERR_PC_OVERFLOW = Err.NONE, Err.BAD_OPCODE, Err.PC_OVERFLOW


class State(enum.IntEnum):
    """Outcome of the last run, in STATUS: IDLE (none since reset), DONE (it reached
    END), ERROR (it stopped on an error; STATUS error says which)."""

    IDLE = 0
    DONE = 1
    ERROR = 2


#: STATUS flag bits.
FLAG_IMAGE_VALID = 0x01    #: a complete, checked model image is in the memories
FLAG_IMAGE_FAILED = 0x02   #: the image being loaded failed a check (error says which)

#: Payload of a STATUS response: state, error, flags, reserved, hardware hash
#: (8 bytes, as in the model image), cycles of the last run, image bytes received.
STATUS_PAYLOAD = struct.Struct("<BBBB8sII")
#: Leading argument of IMAGE (byte offset) and INPUT (word address).
OFFSET_ARG = struct.Struct("<I")
#: Argument of RESULTS: first entry, number of entries.
RESULTS_ARG = struct.Struct("<HH")


def acc_bytes(acc_bits):
    """Bytes per accumulator in a RESULTS response (signed, little-endian)."""
    return -(-acc_bits // 8)


def input_word_bytes(simd):
    """Bytes per activation-buffer word in an INPUT payload (little-endian)."""
    return -(-simd // 8)


def markdown_tables():
    """The code tables of docs/host.md, generated from the enums here (a test compares)."""
    def table(head, rows):
        lines = [f"| {head[0]} | {head[1]} | {head[2]} |", "|---:|---|---|"]
        lines += [f"| {code:#04x} | {name} | {text} |" if head[0] == "command" else
                  f"| {code} | {name} | {text} |" for code, name, text in rows]
        return "\n".join(lines)

    return {
        "commands": table(("command", "name", "payloads"),
                          [(int(c), c.name, CMD_TEXT[c]) for c in Cmd]),
        "naks": table(("reason", "name", "meaning"), [(int(n), n.name, NAK_TEXT[n]) for n in Nak]),
        "errors": table(("code", "name", "meaning"), [(int(e), e.name, ERR_TEXT[e]) for e in Err]),
    }
