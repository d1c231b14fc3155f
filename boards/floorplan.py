"""A block-RAM floorplan for the chained PE array on an ECP5: a pass over yosys' JSON netlist.

The chain (:class:`tritium.hw.chain.PEChain`) keeps every net between neighbouring
slices, but "neighbouring" is up to the placer. Left alone, nextpnr's placer spreads each
slice's block RAMs (four weight-bank DP16KDs and one threshold DP16KD on the ULX3S)
across the device, and the slice's logic with them, so its own lane-op, popcount and
accumulator nets (fan-out 1-2) take 10-13 ns of routing and whether the design routes
at all depends on the seed (docs/timing.md).

This pass pins the block RAMs instead (nextpnr's ``BEL`` cell attribute, a user
constraint): the slices' RAMs fill the device's block-RAM rows as a snake, slice after
slice in chain order, each slice's RAMs on consecutive sites (weight bank words in
order, then the thresholds), left to right along the first row, right to left along the
second, and so on. The first sites of every row (the left edge) stay free for the
rest of the design (activation buffers, program memory, UART buffer), which the placer
puts where it likes; the chain's head (slice 0) and tail (the last slice) both end up
beside that area. The logic of each slice follows its RAMs (the placer pulls cells
towards what they connect to), so a row takes slices in proportion to the logic rows
around it (:func:`row_counts`): on the LFE5U-85F the last two block-RAM rows are 12 tile
rows apart, the first has 22 rows above it, and equal rows leave the slices of the
crowded rows detours around congestion (docs/timing.md).

The site grid is nextpnr-ecp5's: read off a placement of 208 DP16KDs on an LFE5U-85F
(nextpnr 0.11), every site named ``X<col>/Y<row>/EBR<k>`` with ``k`` the site's
position in its group of four. A device not in :data:`EBR_SITES` gets no floorplan.
"""

import json
import re
from pathlib import Path

from ..hw.errors import TritiumError
from ..sw.util.fileio import atomic_write_text

#: DP16KD site grid per ECP5 device: (rows, columns, tile rows of the device). Every row
#: has a site in every column; a site's ``EBR<k>`` index is its column's position in the
#: row modulo 4.
EBR_SITES = {
    "LFE5U-85F": ((22, 46, 70, 82),
                  (4, 6, 8, 10, 13, 15, 17, 19, 22, 24, 26, 28, 31, 33, 35, 37, 40, 42, 44,
                   46, 49, 51, 53, 55, 58, 60, 62, 64, 69, 71, 73, 75, 78, 80, 82, 84, 87,
                   89, 91, 93, 96, 98, 100, 102, 105, 107, 109, 111, 114, 116, 118, 120),
                  95),
}

#: A chain slice's block RAM in the flattened netlist: ``<path>.chain.bank<p>.<i>.<j>``
#: (weight bank of slice p) or ``<path>.chain.thresholds<p>.<i>.<j>`` (its thresholds),
#: the names yosys' memory mapping gives the Amaranth memories ``bank<p>`` and
#: ``thresholds<p>`` of :class:`~tritium.hw.chain.PEChain`.
SLICE_RAM = re.compile(r"(?:^|\.)chain\.(bank|thresholds)(\d+)\.(\d+)\.(\d+)$")


def site_name(columns, x_index, row):
    """nextpnr's name of the DP16KD site in column ``columns[x_index]`` of ``row``."""
    return f"X{columns[x_index]}/Y{row}/EBR{x_index % 4}"


def row_counts(rows, height, slices, capacity):
    """Slices per block-RAM row: in proportion to each row's logic (the tile rows from
    half-way to the row before it, or the device's edge, to half-way to the next), at most
    ``capacity`` a row (largest remainders first, ties to the earlier row); then two rows
    that meet where the snake turns at the left edge (rows 1 and 2, 3 and 4, ...) differ
    by at most one slice, so that turn stays short (rows are right-aligned)."""
    bounds = [0] + [(a + b) / 2 for a, b in zip(rows, rows[1:])] + [height]
    room = [hi - lo for lo, hi in zip(bounds, bounds[1:])]
    counts, left, open_rows = [0] * len(rows), slices, set(range(len(rows)))
    while left and open_rows:
        total = sum(room[r] for r in open_rows)
        share = {r: left * room[r] / total for r in open_rows}
        give = {r: min(capacity - counts[r], int(share[r])) for r in open_rows}
        if not any(give.values()):          # hand out the remainders one by one
            for r in sorted(open_rows, key=lambda r: (-(share[r] - int(share[r])), r))[:left]:
                give[r] = 1
        for r, n in give.items():
            counts[r] += n
            left -= n
        open_rows = {r for r in open_rows if counts[r] < capacity}
    for r in range(1, len(rows) - 1, 2):
        while abs(counts[r] - counts[r + 1]) > 1:
            big, small = (r, r + 1) if counts[r] > counts[r + 1] else (r + 1, r)
            counts[big] -= 1
            counts[small] += 1
    return counts


def chain_sites(device, slices, per_slice):
    """The sites of ``slices`` slices of ``per_slice`` block RAMs each, in chain order
    (see the module docstring), as one list; the first ``per_slice`` entries are slice 0's.

    The rows take slices as :func:`row_counts` says; the sites left over at the left edge
    of every row are free for the rest of the design. Raises :class:`TritiumError` when
    the slices do not fit the rows."""
    rows, columns, height = EBR_SITES[device]
    capacity = len(columns) // per_slice
    if slices > capacity * len(rows):
        raise TritiumError(f"block-RAM floorplan: {slices} slices of {per_slice} block RAMs "
                           f"do not fit {len(rows)} rows of {len(columns)} sites on {device}")
    sites = []
    for r, (row, count) in enumerate(zip(rows, row_counts(rows, height, slices, capacity))):
        first = len(columns) - count * per_slice
        order = range(first, len(columns)) if r % 2 == 0 else range(len(columns) - 1, first - 1, -1)
        sites.extend(site_name(columns, i, row) for i in order)
    return sites


def slice_rams(module):
    """Slice index -> the names of its DP16KD cells in site order (weight bank words by
    index, then thresholds)."""
    found = {}
    for name, cell in module.get("cells", {}).items():
        match = SLICE_RAM.search(name)
        if cell["type"] != "DP16KD" or match is None:
            continue
        kind, p, i, j = match.groups()
        found.setdefault(int(p), []).append(((kind != "bank", int(i), int(j)), name))
    return {p: [name for _, name in sorted(cells)] for p, cells in found.items()}


def place_chain_rams(netlist, device, slices):
    """Pin the chain's block RAMs (``BEL`` attributes, in place). Returns the number of
    block RAMs placed; 0 when the netlist has no chain or ``device`` has no site grid.
    Raises :class:`TritiumError` when the slices' block RAMs are not what a chain of
    ``slices`` slices has (the same number in every slice 0 .. slices - 1)."""
    if device not in EBR_SITES:
        return 0
    for module in netlist["modules"].values():
        rams = slice_rams(module)
        if not rams:
            continue
        counts = {len(names) for names in rams.values()}
        found = sorted(rams)
        if found != list(range(slices)) or len(counts) != 1:
            shown = str(found) if len(found) <= 8 else f"{found[:4]}... ({len(found)} in all)"
            raise TritiumError(
                f"block-RAM floorplan: expected slices 0..{slices - 1} with the same number "
                f"of block RAMs each, found slices {shown} with {sorted(counts)}")
        per_slice = counts.pop()
        sites = chain_sites(device, slices, per_slice)
        cells = module["cells"]
        for p in range(slices):
            for name, site in zip(rams[p], sites[p * per_slice:(p + 1) * per_slice]):
                cells[name]["attributes"]["BEL"] = site
        return slices * per_slice
    return 0


def place_chain_rams_in_file(path, device, slices):
    """:func:`place_chain_rams` on a yosys JSON file, rewritten in place (through a
    temporary file). Returns the number of block RAMs placed."""
    path = Path(path)
    netlist = json.loads(path.read_text())
    placed = place_chain_rams(netlist, device, slices)
    if placed:
        atomic_write_text(path, json.dumps(netlist))
    return placed
