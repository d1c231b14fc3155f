"""Block-RAM contents of placed designs: read, locate the model memories, patch, verify.

A *bit slice* is one bit column of a memory over ``CHUNK`` consecutive
words (256 on iCE40, 512 on ECP5): the unit in which ``icebram`` and
``ecpbram`` find and replace memory contents. yosys splits a wide logical
memory over several block RAMs (on iCE40 16 bits per RAM in 256 x 16 mode;
on ECP5 9, 18 or 36 bits per DP16KD depending on the depth), and each RAM
mode orders bits differently; both tools therefore search every RAM for
every slice under each possible mode. This module does the same in numpy
so that tritium can

* locate every slice of every model memory in a hardware-only build whose
  memories hold unique pseudo-random placeholders (:func:`locate`): each
  must sit in exactly one place, or the memory did not go into block RAM;
* build the from/to hex files the tools take (:func:`slice_hex_pair`): the
  slices side by side, one column each, ``CHUNK`` lines (:func:`patch_groups`);
* verify a patched bitstream (:func:`expected_rams`): every block RAM must
  equal the hardware-only build's RAM with exactly the model's slices put in
  at the located places.

Text formats: an iCE40 ``.asc`` holds ``.ram_data X Y`` followed by 16 lines
of 64 hex digits (line k, most significant digit first, is bits
``256k .. 256k+255`` of the RAM's 4096 bits); the RAM's read mode (bit
order) is in ``.ramt_tile X Y+1``, lines 3 and 4, column 7. An ECP5 textual
configuration holds ``.bram_init N`` followed by 2048 words of 9 bits (3 hex
digits each).
"""

import re
from dataclasses import dataclass

import numpy as np

from ..hw.errors import TritiumError

CHUNK = {"ice40": 256, "ecp5": 512}
_ICE40_SUBIDX = {0: [0], 1: [0, 1], 2: [0, 2, 1, 3], 3: [0, 4, 2, 6, 1, 5, 3, 7]}


# ---------------------------------------------------------------- reading

def read_rams(text, family):
    """``{ram id: bool array of its bits}`` and ``{ram id: mode}`` of a placed design's text."""
    return _read_ice40(text) if family == "ice40" else _read_ecp5(text)


def _read_ice40(text):
    lines = text.splitlines()
    rams, modes, config_at = {}, {}, {}
    for i, line in enumerate(lines):
        if line.startswith(".ram_data "):
            x, y = map(int, line.split()[1:3])
            value = 0
            for k in range(16):
                value |= int(lines[i + 1 + k], 16) << (256 * k)
            bits = np.frombuffer(value.to_bytes(512, "little"), np.uint8)
            rams[(x, y)] = np.unpackbits(bits, bitorder="little").astype(bool)
        elif line.startswith(".ramt_tile "):
            x, y = map(int, line.split()[1:3])
            config_at[(x, y - 1)] = i
    for pos in rams:
        i = config_at.get(pos)
        modes[pos] = 0 if i is None else ((lines[i + 3][7] == "1") << 1) | (lines[i + 4][7] == "1")
    return rams, modes


def _read_ecp5(text):
    rams = {}
    for match in re.finditer(r"^\.bram_init (\d+)\n((?:[0-9a-fA-F]{3}[ \n])+)", text, re.M):
        words = np.array([int(w, 16) for w in match[2].split()], np.uint16)
        bits = (words[:, None] >> np.arange(9, dtype=np.uint16)) & 1
        rams[int(match[1])] = bits.astype(bool).reshape(-1)       # word w bit b at 9w + b
    return rams, {k: None for k in rams}


# ---------------------------------------------------------------- slices

def _slice_index(family, mode=None):
    """Index arrays (one row per slice of a RAM, CHUNK columns) into a RAM's bit vector,
    for one RAM mode; ECP5: every mode at once (``mode`` is unknown there)."""
    if family == "ice40":
        sub = _ICE40_SUBIDX[mode]
        p = len(sub)
        rows = []
        for blk in range(0, 4096, 4096 // p):
            for base in range(0, 16, p):
                rows.append([blk + base + o * 16 + sub[i] for o in range(256 // p) for i in range(p)])
        return np.array(rows)
    rows = []
    for w, nw, b in ((1, 8, 32), (2, 8, 32), (4, 8, 32), (9, 9, 36), (18, 9, 36), (36, 9, 36)):
        for j in range(b):
            bn = np.arange(512) * w + (j % w) + (j // w) * 512 * w
            rows.append((bn // nw) * 9 + bn % nw)
    return np.array(rows)


def ram_slices(rams, modes, family):
    """``[(ram id, row, index array, bits)]`` of every bit slice of every RAM."""
    out = []
    for ram, bits in rams.items():
        index = _slice_index(family, modes[ram])
        for row, idx in enumerate(index):
            out.append((ram, row, idx, bits[idx]))
    return out


def memory_slices(words, width, family):
    """Bit slices of a memory image (words padded to whole chunks): a bool array
    ``[width * chunks, CHUNK]``, slice ``bit * chunks + chunk``."""
    chunk = CHUNK[family]
    depth = -(-max(len(words), 1) // chunk) * chunk
    nbytes = -(-width // 8)
    raw = b"".join(int(w).to_bytes(nbytes, "little") for w in words)
    raw += bytes(nbytes * (depth - len(words)))
    bits = np.unpackbits(np.frombuffer(raw, np.uint8).reshape(depth, nbytes), axis=1,
                         bitorder="little")[:, :width].astype(bool)
    return np.ascontiguousarray(bits.T).reshape(width * (depth // chunk), chunk)


@dataclass(frozen=True)
class Location:
    """Where one slice of a model memory sits: RAM id and the bit indices in it."""

    memory: str
    slice: int
    ram: object
    index: tuple


def locate(rams, modes, family, placeholders):
    """Find every placeholder slice in the RAMs; ``placeholders``: ``{name: (words, width)}``.

    Returns a list of :class:`Location`. Raises :class:`TritiumError` if a
    slice is missing (the memory is not in block RAM) or found twice.
    """
    table = {}
    for ram, row, idx, bits in ram_slices(rams, modes, family):
        table.setdefault(np.packbits(bits).tobytes(), []).append((ram, idx))
    found = []
    for name, (words, width) in placeholders.items():
        for k, sl in enumerate(memory_slices(words, width, family)):
            hits = table.get(np.packbits(sl).tobytes(), [])
            # ECP5 modes overlap (a 9-bit slice of one mode is one of another): same bits, one hit.
            places = {(ram, tuple(idx)) for ram, idx in hits}
            if not places:
                raise TritiumError(f"memory {name}, bit slice {k}: not found in any block RAM "
                                   f"(the memory was not mapped to block RAM)")
            if len({ram for ram, _ in places}) > 1 or len({frozenset(i) for _, i in places}) > 1:
                raise TritiumError(f"memory {name}, bit slice {k}: found in {len(places)} places")
            ram, idx = next(iter(places))
            found.append(Location(name, k, ram, idx))
    return found


def expected_rams(base_rams, locations, family, images):
    """The RAM bits a patched design must hold: the base RAMs with each located
    slice replaced by the model's; ``images``: ``{name: (words, width)}``."""
    out = {ram: bits.copy() for ram, bits in base_rams.items()}
    slices = {name: memory_slices(words, width, family) for name, (words, width) in images.items()}
    for loc in locations:
        out[loc.ram][list(loc.index)] = slices[loc.memory][loc.slice]
    return out


def compare_rams(got, expected):
    """Names of RAMs that differ (or are missing / extra): empty when they agree."""
    bad = [str(r) for r in expected if r not in got or not np.array_equal(got[r], expected[r])]
    bad += [str(r) for r in got if r not in expected and got[r].any()]
    return bad


def slice_columns(placeholders, family):
    """Every ``(name, slice)`` of the model memories, in a fixed order."""
    return [(n, k) for n, (w, width) in placeholders.items()
            for k in range(len(memory_slices(w, width, family)))]


def patch_groups(columns):
    """Split slice columns into hex-file groups whose sizes are multiples of 4.

    A hex digit holds 4 columns, and ``icebram`` insists that every column
    of its from file is found as often as every other, so no column can be
    padded with a made-up one. With ``r = len % 4`` left over, a first group
    takes the ``r`` last columns plus ``4 - r`` *identity* columns (from and to
    both the placeholder, found and left as they are), and the second group
    all other columns, the identity ones included. Returns ``[(columns,
    identity set)]`` in the order to apply.
    """
    r = len(columns) % 4
    if not r:
        return [(columns, set())]
    if len(columns) < 4:
        raise TritiumError(f"{len(columns)} bit slices: too few to patch in whole hex digits")
    main, rest = columns[:-r], columns[-r:]
    filler = main[:4 - r]
    return [(rest + filler, set(filler)), (main, set())]


def slice_hex_pair(placeholders, images, family, columns, identity=()):
    """from/to ``$readmemh`` texts with each of ``columns`` (``(name, slice)``, a
    multiple of 4) as one bit column, CHUNK lines; ``identity`` columns map to
    themselves."""
    chunk = CHUNK[family]
    src = {n: memory_slices(w, width, family) for n, (w, width) in placeholders.items()}
    dst = {n: memory_slices(w, width, family) for n, (w, width) in images.items()}
    assert len(columns) % 4 == 0

    def text(pick):
        cols = np.array([pick(n, k) for n, k in columns])          # [ncols, chunk]
        # Column c is bit c of each word: most significant digit first.
        nib = cols[::-1].reshape(-1, 4, chunk)
        digits = (nib[:, 0] * 8 + nib[:, 1] * 4 + nib[:, 2] * 2 + nib[:, 3]).T   # [chunk, ndig]
        hexchars = np.array(list("0123456789abcdef"))[digits]
        return "".join("".join(row) + "\n" for row in hexchars)

    return (text(lambda n, k: src[n][k]),
            text(lambda n, k: src[n][k] if (n, k) in identity else dst[n][k]))
