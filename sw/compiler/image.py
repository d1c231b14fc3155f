"""Memory images of a compiled model, and the self-describing model image.

:func:`write_images` writes, into one folder (docs/images.md):

* ``program.hex``, ``weights_p{k}.hex``, ``thresholds_p{k}.hex`` (and
  ``wstore.hex`` when weights stream): one file per memory, one word per line
  in ``$readmemh`` hex, for simulators and for patching block RAMs in a
  bitstream;
* ``model.tim``: the model image the driver loads and checks;
* ``compiled.json``: a readable summary (configuration, layers, figures).

The model image (all integers little-endian)::

    header (32 bytes)
      0  magic        8 bytes  b"TRITIUM\\0"
      8  version      u16      IMAGE_VERSION
     10  isa_version  u16      hw.isa.ISA_VERSION
     12  n_sections   u16
     14  reserved     u16      0
     16  hw_hash      8 bytes  the accelerator configuration hash (16 hex digits)
     24  total_size   u32      bytes in the whole image
     28  crc32        u32      CRC-32 of the image with this field set to 0
    section table: n_sections x 16 bytes
      type u16, reserved u16, offset u32, size u32, crc32 u32 (of the section's bytes)
    sections, in table order

Sections: PROGRAM (u64 per instruction), WEIGHTS (per bank, per word,
``ceil(weight_width / 8)`` bytes), THRESHOLDS (per bank, per set, per
threshold, i64), META (UTF-8 JSON: configuration, io description, model meta),
WSTORE (only when the weights stream: the weight store's words from address
0, as WEIGHTS words; at most ``store_depth``). The image of a later segment
(META ``segment`` >= 1) of the same weight phase as the one before it has no
WEIGHTS or THRESHOLDS: the memories keep their words.
:func:`read_image` checks magic, versions, size, every CRC and, when asked,
the hardware hash before it returns anything.
"""

import json
import struct
import zlib
from pathlib import Path

import numpy as np

from . import Compiled
from ...hw import isa
from ...hw.accel_config import accel_config_from_dict
from ...hw.errors import FormatError
from ...hw.image_format import HEADER, IMAGE_VERSION, MAGIC, SECTION, SECTION_TYPES
from ..util.fileio import atomic_write_bytes, atomic_write_text

_NAMES = {v: k for k, v in SECTION_TYPES.items()}


# ---------------------------------------------------------------- writing

def image_bytes(compiled):
    """The model image of ``compiled`` as bytes."""
    cfg = compiled.config
    core = cfg.core
    wbytes = -(-core.weight_width // 8)
    sections = {"PROGRAM": b"".join(struct.pack("<Q", w) for w in compiled.program)}
    # A later segment that keeps its predecessor's banks and thresholds has neither.
    if compiled.weight_banks is not None:
        sections["WEIGHTS"] = b"".join(int(w).to_bytes(wbytes, "little")
                                       for bank in compiled.weight_banks for w in bank)
    if compiled.threshold_banks is not None:
        sections["THRESHOLDS"] = np.asarray(compiled.threshold_banks, "<i8").tobytes()
    sections["META"] = json.dumps(
        {"config": cfg.canonical(), "io": compiled.io, "meta": compiled.meta,
         **({"segment": compiled.segment_index} if compiled.segment_index is not None else {})},
        sort_keys=True).encode()
    if compiled.store_words:
        sections["WSTORE"] = b"".join(int(w).to_bytes(wbytes, "little")
                                      for w in compiled.store_words)
    table_size = SECTION.size * len(sections)
    offset = HEADER.size + table_size
    table, body = b"", b""
    for name, data in sections.items():
        table += SECTION.pack(SECTION_TYPES[name], 0, offset, len(data), zlib.crc32(data))
        body += data
        offset += len(data)
    total = HEADER.size + table_size + len(body)
    header = HEADER.pack(MAGIC, IMAGE_VERSION, isa.ISA_VERSION, len(sections), 0,
                         bytes.fromhex(cfg.hash), total, 0)
    image = bytearray(header + table + body)
    struct.pack_into("<I", image, 28, zlib.crc32(image))
    return bytes(image)


def hex_lines(words, width_bits):
    digits = max(1, -(-width_bits // 4))
    return "".join(f"{int(w) & ((1 << width_bits) - 1):0{digits}x}\n" for w in words)


def threshold_words(compiled):
    """Threshold sets as integers: threshold i at bits i*acc_bits (two's complement)."""
    core = compiled.config.core
    bits = core.acc_bits
    out = []
    for bank in compiled.threshold_banks:
        words = []
        for thresholds in bank:
            word = 0
            for i, t in enumerate(thresholds):
                word |= (int(t) & ((1 << bits) - 1)) << (i * bits)
            words.append(word)
        out.append(words)
    return out


#: The result of the last ``tritium sim`` of a compiled folder (JSON: simulator, images,
#: mismatches, accuracy, dataset), shown by ``tritium report``.
SIMULATION_SUMMARY = "simulation.json"


def segment_image_name(k):
    """The model image of segment ``k`` in a compiled folder: ``model.tim`` holds the first
    (the memories a bitstream is built with), ``segment{k}.tim`` the others."""
    return "model.tim" if k == 0 else f"segment{k}.tim"


def write_images(compiled, out_dir, source=None):
    """Write every memory image and the model image into ``out_dir``; returns the paths.

    ``source``: the integer model file compiled (``{"path", "sha256"}``), recorded in
    ``compiled.json`` as ``model``: 'tritium sim' and 'tritium run' take it as their
    default model and refuse another file.

    The ``.hex`` files and ``model.tim`` hold the first program run's memories; a model
    that runs in segments has one more model image per further segment
    (:func:`segment_image_name`), each complete (program, banks, thresholds, META).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    core = compiled.config.core
    paths = {"program": out / "program.hex", "image": out / "model.tim",
             "summary": out / "compiled.json"}
    for k in range(1, len(compiled.segments)):
        paths[f"segment{k}"] = out / segment_image_name(k)
        atomic_write_bytes(paths[f"segment{k}"], image_bytes(compiled.segment(k)))
    for stale in out.glob("segment*.tim"):         # a compilation with more segments before
        if stale not in paths.values():
            stale.unlink()
    atomic_write_text(paths["program"], hex_lines(compiled.program, isa.INSTR_BITS))
    for k, bank in enumerate(compiled.weight_banks):
        paths[f"weights_p{k}"] = out / f"weights_p{k}.hex"
        atomic_write_text(paths[f"weights_p{k}"], hex_lines(bank, core.weight_width))
    for k, words in enumerate(threshold_words(compiled)):
        paths[f"thresholds_p{k}"] = out / f"thresholds_p{k}.hex"
        atomic_write_text(paths[f"thresholds_p{k}"],
                          hex_lines(words, core.acc_bits * core.n_thresholds))
    if compiled.store_words:
        paths["wstore"] = out / "wstore.hex"
        atomic_write_text(paths["wstore"], hex_lines(compiled.store_words, core.weight_width))
    atomic_write_bytes(paths["image"], image_bytes(compiled.segment(0)))
    summary = {"config": compiled.config.canonical(), "config_hash": compiled.config.hash,
               "describe": compiled.config.describe(), "io": compiled.io,
               "cycles_per_run": compiled.cycles_per_run,
               "cycles_per_image": compiled.cycles_per_image, "meta": compiled.meta,
               "program": [isa.disassemble(w) for w in compiled.program]}
    if source is not None:
        summary["model"] = dict(source)
    atomic_write_text(paths["summary"], json.dumps(summary, indent=2) + "\n")
    return paths


# ---------------------------------------------------------------- reading

def read_compiled(folder, expect_hash=None):
    """The compiled model in ``folder``: ``model.tim`` and, for a model that runs in
    segments, every ``segment{k}.tim`` (each checked as :func:`read_image` does, and
    refused unless it belongs to the same compilation, at its place: configuration, io,
    which names the set of segments, and the segment's index)."""
    from . import Segment

    folder = Path(folder)
    first = read_image(folder / segment_image_name(0), expect_hash)
    described = first.io.get("segments")
    if not described:
        return first
    segments = []
    for k, entry in enumerate(described):
        part = first if k == 0 else read_image(folder / segment_image_name(k), expect_hash)
        if (part.config.hash != first.config.hash or part.io != first.io
                or part.segment_index != k):
            raise FormatError(f"{folder / segment_image_name(k)}: not a segment of "
                              f"{folder / segment_image_name(0)} (compile the model again)")
        words = entry.get("input_words")
        segments.append(Segment(part.program, part.weight_banks, part.threshold_banks,
                                tuple(words) if words is not None else None,
                                part.store_words if k and first.config.store_depth else None))
    first.segments = segments
    return first


def read_image(path, expect_hash=None):
    """Load and check a model image; returns a :class:`~tritium.sw.compiler.Compiled`.

    Raises :class:`FormatError` (one line) for a missing, truncated or corrupt
    file, a wrong magic or version, a CRC mismatch, or (with ``expect_hash``)
    an image built for other hardware.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FormatError(f"{path}: no such file") from None
    except OSError as e:
        raise FormatError(f"{path}: cannot read ({e.strerror})") from None
    return parse_image(data, path, expect_hash)


def parse_image(data, path="model image", expect_hash=None):
    """:func:`read_image` on the bytes of an image (``path`` names it in messages)."""
    if len(data) < HEADER.size:
        raise FormatError(f"{path}: truncated model image ({len(data)} bytes)")
    magic, version, isa_version, n_sections, _, hw_hash, total, crc = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise FormatError(f"{path}: not a tritium model image (bad magic)")
    if version != IMAGE_VERSION:
        raise FormatError(f"{path}: model image version {version} is not supported "
                          f"(this tritium reads version {IMAGE_VERSION})")
    if isa_version != isa.ISA_VERSION:
        raise FormatError(f"{path}: compiled for ISA version {isa_version}, this tritium has "
                          f"{isa.ISA_VERSION}; compile the model again")
    if total != len(data):
        raise FormatError(f"{path}: truncated or padded model image ({len(data)} bytes, "
                          f"header says {total})")
    check = bytearray(data)
    struct.pack_into("<I", check, 28, 0)
    if zlib.crc32(check) != crc:
        raise FormatError(f"{path}: CRC mismatch: the model image is corrupt")
    if expect_hash is not None and hw_hash.hex() != expect_hash:
        raise FormatError(f"{path}: compiled for hardware {hw_hash.hex()}, this hardware is "
                          f"{expect_hash}; compile the model for it")
    sections = {}
    for i in range(n_sections):
        kind, _, offset, size, section_crc = SECTION.unpack_from(data, HEADER.size + i * SECTION.size)
        body = data[offset:offset + size]
        if len(body) != size or zlib.crc32(body) != section_crc:
            raise FormatError(f"{path}: section {_NAMES.get(kind, kind)} is corrupt")
        sections[_NAMES.get(kind, kind)] = body
    missing = [n for n in ("PROGRAM", "META") if n not in sections]
    if missing:
        raise FormatError(f"{path}: model image lacks section {missing[0]}")
    try:
        meta = json.loads(sections["META"].decode())
        cfg = accel_config_from_dict(meta["config"])
    except (ValueError, KeyError, TypeError) as e:
        raise FormatError(f"{path}: unreadable META section ({e})") from None
    # Only a later segment may keep the banks and thresholds of the run before it.
    kept = [n for n in ("WEIGHTS", "THRESHOLDS") if n not in sections]
    if kept and not (isinstance(meta.get("segment"), int) and meta["segment"] >= 1):
        raise FormatError(f"{path}: model image lacks section {kept[0]}")
    if cfg.hash != hw_hash.hex():
        raise FormatError(f"{path}: header hash {hw_hash.hex()} does not match its configuration")
    core = cfg.core
    program = [w for (w,) in struct.iter_unpack("<Q", sections["PROGRAM"])]
    wbytes = -(-core.weight_width // 8)
    banks = thresholds = None
    if "WEIGHTS" in sections:
        raw = sections["WEIGHTS"]
        if len(raw) != core.pe * core.weight_depth * wbytes:
            raise FormatError(f"{path}: WEIGHTS section has the wrong size for this configuration")
        words = _words(raw, wbytes)
        banks = [words[p * core.weight_depth:(p + 1) * core.weight_depth] for p in range(core.pe)]
    raw = sections.get("WSTORE", b"")
    if len(raw) % wbytes or len(raw) > cfg.store_depth * wbytes:
        raise FormatError(f"{path}: WSTORE section has the wrong size for this configuration")
    if "THRESHOLDS" in sections:
        thr = np.frombuffer(sections["THRESHOLDS"], "<i8")
        if thr.size != core.pe * core.thr_depth * core.n_thresholds:
            raise FormatError(f"{path}: THRESHOLDS section has the wrong size for this "
                              "configuration")
        thresholds = thr.reshape(core.pe, core.thr_depth, core.n_thresholds).tolist()
    return Compiled(config=cfg, program=program, weight_banks=banks, threshold_banks=thresholds,
                    io=meta["io"], meta=meta.get("meta", {}), store_words=_words(raw, wbytes),
                    segment_index=meta.get("segment"))


def _words(raw, wbytes):
    return [int.from_bytes(raw[i:i + wbytes], "little") for i in range(0, len(raw), wbytes)]
