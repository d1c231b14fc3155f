"""The command line: help, one-line errors, the demo and the reference benchmark."""

import json
import subprocess
import sys

import pytest

from tritium.sw.cli import COMMAND_MODULES, main


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in COMMAND_MODULES:
        assert name in out


@pytest.mark.parametrize("argv", [["bogus"], ["bench", "nope"], ["demo", "--dataset", "cifar"],
                                  ["bench", "reference", "--images", "zero"]])
def test_bad_arguments_give_one_line_and_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tritium") and "error:" in err and "\n" not in err


def test_user_errors_are_one_line_not_a_traceback(capsys):
    assert main(["bench", "reference", "--images", "0"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tritium: error:") and "\n" not in err


def test_console_script_entry_point():
    result = subprocess.run([sys.executable, "-m", "tritium.sw.cli", "bogus"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_demo_runs_and_writes_its_artefacts(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path.parent)      # a relative --out, as `make demo` uses
    argv = ["demo", "--out", tmp_path.name, "--epochs", "2", "--json", "--quiet"]
    assert main(argv + ["--sim-count", "48", "--no-build"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["mismatches"] == 0 and summary["agreement"] == 1.0 and summary["images"] == 1000
    assert summary["accuracy"] > 0.6 and summary["trained"]
    # The Verilog on Verilator: bit-exact, and the cycles the compiler predicted.
    assert summary["rtl_images"] == 48 and summary["rtl_mismatches"] == 0 and summary["batch"] == 16
    assert summary["rtl_cycles_match"] and summary["rtl_cycles_per_image"] == summary["cycles_per_image"]
    for name in ("model.pt", "model.npz", "summary.json", "compiled/model.tim",
                 "verilog/tritium_accel.v"):
        assert (tmp_path / name).exists()
    # A second run with the same settings reuses the checkpoint.
    assert main(argv + ["--no-rtl"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert not again["trained"] and again["accuracy"] == summary["accuracy"]


def test_bench_reference_json_keys(capsys):
    assert main(["bench", "reference", "--json", "--images", "4", "--repeats", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("sfc_images_per_s", "sfc_torch_images_per_s", "cnv_images_per_s",
                "cnv_torch_images_per_s"):
        assert result[key] > 0


def test_demo_summary_gives_images_per_second_at_the_clock_it_was_computed_for():
    """Timing not met: images/s are at the Fmax, and the row says so next to the PLL clock."""
    from tritium.sw.commands.demo import _headline
    summary = {"weights": "binary", "arch": "tfc", "dataset": "mnist5k", "images": 1000,
               "accuracy": 0.895, "accuracy_pytorch": 0.895, "mismatches": 0,
               "cycles_per_image": 500.0, "board": "icebreaker", "lanes": 128,
               "layer_utilization": {"fc0": 0.9}, "bitstream": "b.bin", "images_per_s": 67_600.0,
               "images_per_s_clock_mhz": 33.8, "clock_mhz": 40.5, "fmax_mhz": 33.8,
               "timing_met": False, "luts": 3931, "luts_available": 5280, "rams": 27,
               "rams_available": 30, "model": "/out/compiled/model.tim", "seconds": 60}
    rows = dict(_headline(summary))
    assert rows["images/s"] == "67,600 at 33.8 MHz (Fmax 33.8 MHz, PLL clock 40.5 MHz, timing NOT met)"
