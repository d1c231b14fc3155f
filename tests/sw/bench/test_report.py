"""tritium report: HTML + PNG plots from compiled.json / build.json / bench.json."""

import json

import pytest

from tritium.hw.presets import PRESETS
from tritium.sw.bench.anchors import ANCHORS
from tritium.sw.bench.report import collect, comparison_rows, throughput
from tritium.sw.cli.main import main
from tritium.sw.compiler import compile_model
from tritium.sw.compiler.image import write_images
from tritium.sw.model.zoo import random_model


@pytest.fixture(scope="module")
def compiled_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "tfc"
    compiled = compile_model(random_model("tfc", (784,), "bipolar", seed=1), PRESETS["icebreaker"])
    write_images(compiled, out)
    return out, compiled


def test_anchor_normalised_throughput_is_derived():
    finn = next(a for a in ANCHORS if a.network == "sfc")
    assert finn.images_per_s_per_lut_mhz == pytest.approx(12.3e6 / (91_000 * 200))
    assert 0.6 < finn.images_per_s_per_lut_mhz < 0.7      # docs/benchmarks.md: "0.68"


def test_report_of_a_compiled_model_and_a_build(compiled_dir, tmp_path):
    out, compiled = compiled_dir
    build = {"board": "icebreaker", "luts": 4000, "luts_available": 5280, "rams": 26,
             "rams_available": 30, "fmax_mhz": 48.0, "clock_mhz": 42.0, "target_mhz": 40.0,
             "sprams": 4, "sprams_available": 4,
             "timing_met": True, "patched": True, "config_hash": compiled.config.hash}
    (out / "build.json").write_text(json.dumps(build))
    assert main(["report", str(out), "-o", str(tmp_path / "r")]) == 0
    page = (tmp_path / "r" / "index.html").read_text()
    for layer in compiled.io["layers"]:
        assert f"<td>{layer['name']}</td>" in page
    # The network by its name, not its folder's; words, not build.json's keys; SPRAM.
    assert "<h2>Compiled model: TFC</h2>" in page and "Not simulated yet" in page
    assert "<td>timing met</td><td>yes</td>" in page and "timing_met" not in page
    assert "<td>SPRAMs used</td><td>4 / 4</td>" in page
    assert "measured" not in page.split("Comparison with published")[0]
    assert (tmp_path / "r" / "layers_tfc.png").stat().st_size > 1000
    assert (tmp_path / "r" / "resources_tfc.png").stat().st_size > 1000
    # Our row: images/s at the target clock (lower than Fmax) from the measured cycle count.
    t = throughput(json.loads((out / "compiled.json").read_text()), build)
    assert t["images_per_s"] == pytest.approx(42e6 / compiled.cycles_per_image)
    rows = comparison_rows(collect(out))
    assert rows[0][1] == "TFC" and rows[0][0].startswith("tritium") and len(rows) == 1 + len(ANCHORS)
    assert rows[0][-1].startswith("computed")
    # The last simulation of the folder: images, mismatches and accuracy.
    (out / "simulation.json").write_text(json.dumps(
        {"simulator": "verilator", "images": 32, "mismatches": 0, "accuracy": 0.875,
         "dataset": "mnist5k"}))
    assert main(["report", str(out), "-o", str(tmp_path / "r"), "--force"]) == 0
    page = (tmp_path / "r" / "index.html").read_text()
    assert ("Last simulation (verilator): 32 images, 0 mismatches against the golden reference, "
            "accuracy 87.50 % (mnist5k).") in page


def test_report_of_a_model_in_segments(tmp_path):
    """LFC on the ulx3s preset runs in four segments: the report says so, with each run's
    cycles, and its per-layer rows are the whole batch's."""
    compiled = compile_model(random_model("lfc", (784,), "bipolar", seed=1), PRESETS["ulx3s"],
                             batch=4)
    write_images(compiled, tmp_path / "lfc")
    assert main(["report", str(tmp_path / "lfc"), "-o", str(tmp_path / "r")]) == 0
    page = (tmp_path / "r" / "index.html").read_text()
    runs = ", ".join(f"{s['cycles']:,}" for s in compiled.io["segments"])
    assert f"in 4 program runs a batch (segments of {runs} cycles" in page
    assert sorted(p.name for p in (tmp_path / "lfc").glob("segment*.tim")) == \
        ["segment1.tim", "segment2.tim", "segment3.tim"]


def test_report_refuses_folders_without_results(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 1
    assert "nothing to report" in capsys.readouterr().err
    (tmp_path / "compiled.json").write_text("{not json")
    assert main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a readable JSON file" in err


def test_report_of_a_benchmark(tmp_path):
    bench = {"machine": {"date": "2026-11-22", "platform": "Linux", "cpu_count": 2}, "seconds": 1,
             "boards": {"icebreaker": {
                 "lanes": 128, "luts": 4900, "luts_available": 5280, "rams": 27,
                 "rams_available": 30, "lut4_per_lane": 2.3, "fmax_mhz": 45.0, "clock_mhz": 42.0,
                 "timing_met": True, "patch_speedup": 80.0,
                 "throughput": {"tfc": {"fits": True, "images_per_s": 8e4,
                                        "images_per_s_per_lut_mhz": 8e4 / (4900 * 42)},
                                "cnv": {"fits": False, "reason": "too large"}}},
                 "ulx3s": {"lanes": 2048, "built": False, "reason": "the design does not fit",
                           "unfinished": {"placed_luts": 20732, "placed_luts_available": 83640,
                                          "placed_rams": 202, "preroute_fmax_mhz": 60.14,
                                          "router_overused": 12805}}},
             "utilization_detail": {"icebreaker/sfc": {"fits": True, "layers": {"fc0": 0.94}},
                                    "icebreaker/cnv": {"fits": False, "reason": "too large"}}}
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    assert main(["report", str(tmp_path)]) == 0
    page = (tmp_path / "report" / "index.html").read_text()
    assert f"{8e4 / (4900 * 42):.4f}" in page and "does not fit" in page
    assert "ulx3s: not built (the design does not fit)" in page
    assert "pre-route Fmax estimate 60.14 MHz" in page and "12805 overused wires" in page
    assert (tmp_path / "report" / "util_icebreaker_sfc.png").exists()


def test_bench_reports_a_board_that_does_not_build(monkeypatch, tmp_path):
    """A failed hardware build is one entry with its reason; the benchmark goes on."""
    from tritium.boards import build as build_module
    from tritium.hw.errors import TritiumError
    from tritium.sw.bench import all as bench_all

    def refuse(board, out, **kwargs):
        raise TritiumError("the design does not fit the icebreaker's FPGA: ICESTORM_LC 6858/5280")

    monkeypatch.setattr(build_module, "build", refuse)
    entry = bench_all.measure_board("icebreaker", tmp_path, log=lambda m: None)
    assert entry["built"] is False and "ICESTORM_LC 6858/5280" in entry["reason"]
    assert entry["lanes"] == PRESETS["icebreaker"].core.lanes


def test_bench_reports_how_far_an_unfinished_board_got(monkeypatch, tmp_path):
    """A build stopped in routing: the entry carries what its kept nextpnr log says."""
    from tritium.boards import build as build_module
    from tritium.sw.bench import all as bench_all

    failed = tmp_path / "ulx3s-x-seed1-y.failed"
    failed.mkdir()
    (failed / "nextpnr.log").write_text(
        "Info: \t        TRELLIS_COMB:   20732/  83640    24%\n"
        "Info: Max frequency for clock '$glbnet$clk': 60.14 MHz (FAIL at 100.00 MHz)\n")

    def stopped(board, out, **kwargs):
        raise build_module.HardwareBuildFailed("nextpnr did not finish in 65 min", failed)

    monkeypatch.setattr(build_module, "build", stopped)
    entry = bench_all.measure_board("ulx3s", tmp_path, log=lambda m: None)
    assert entry["built"] is False and "65 min" in entry["reason"]
    assert entry["unfinished"] == {"placed_luts": 20732, "placed_luts_available": 83640,
                                   "preroute_fmax_mhz": 60.14}
