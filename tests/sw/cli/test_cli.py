"""The command line: help, one-line errors, the demo and the reference benchmark."""

import json
import os
import stat
import subprocess
import sys

import pytest

from tritium.sw.cli.main import COMMAND_MODULES, main


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in COMMAND_MODULES:
        assert name in out


@pytest.mark.parametrize("argv", [["bogus"], ["bench", "nope"], ["demo", "--dataset", "cifar"],
                                  ["bench", "reference", "--images", "zero"],
                                  # values that make no sense, refused before any work
                                  ["train", "--arch", "tfc", "--epochs", "0", "-o", "x.pt"],
                                  ["train", "--arch", "tfc", "--batch-size", "0", "-o", "x.pt"],
                                  ["demo", "--epochs", "0"], ["demo", "--batch", "0"],
                                  ["sim", "d", "--count", "0"], ["run", "d", "--port", "p",
                                                                 "--count", "0"],
                                  ["compile", "m.npz", "--batch", "0", "-o", "x"],
                                  ["bench", "reference", "--images", "0"],
                                  ["bench", "accel", "--seed", "0"]])
def test_bad_arguments_give_one_line_and_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tritium") and "error:" in err and "\n" not in err


def test_user_errors_are_one_line_not_a_traceback(capsys):
    assert main(["bench", "fit", "--presets", "nope"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tritium: error:") and "\n" not in err


def test_console_script_entry_point():
    result = subprocess.run([sys.executable, "-m", "tritium.sw.cli.main", "bogus"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.rtl                        # trains, and runs the Verilog on Verilator
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
    from tritium.sw.cli.commands.demo import _headline
    summary = {"weights": "binary", "arch": "tfc", "dataset": "mnist5k", "images": 1000,
               "accuracy": 0.895, "accuracy_pytorch": 0.895, "mismatches": 0,
               "cycles_per_image": 500.0, "board": "icebreaker", "lanes": 128,
               "layer_utilization": {"fc0": 0.9}, "bitstream": "b.bin", "images_per_s": 67_600.0,
               "images_per_s_clock_mhz": 33.8, "clock_mhz": 40.5, "fmax_mhz": 33.8,
               "timing_met": False, "luts": 3931, "luts_available": 5280, "rams": 27,
               "rams_available": 30, "model": "/out/compiled/model.tim", "seconds": 60}
    rows = dict(_headline(summary))
    assert rows["images/s"] == "67,600 at 33.8 MHz (Fmax 33.8 MHz, PLL clock 40.5 MHz, timing NOT met)"


# ---------------------------------------------------------------- outputs

@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if training starts: output checks must come first."""
    from tritium.sw.train import train

    def refuse(*args, **kwargs):
        raise AssertionError("trained before the output was checked")
    monkeypatch.setattr(train, "train_net", refuse)


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err
    assert err.startswith("tritium: error:") and err.count("\n") == 1, err
    for word in words:
        assert word in err, err


def test_train_checks_its_output_before_training(tmp_path, capsys, no_training):
    """An existing file (without --force), a folder, a file inside a file, a place no one
    can write: one line, exit 1, nothing trained and the existing file untouched."""
    argv = ["train", "--arch", "tfc", "--epochs", "1", "-q", "-o"]
    (tmp_path / "m.pt").write_text("keep")
    assert main(argv + [str(tmp_path / "m.pt")]) == 1
    _one_line_error(capsys, "exists (--force overwrites it)")
    assert (tmp_path / "m.pt").read_text() == "keep"
    assert main(argv + [str(tmp_path)]) == 1
    _one_line_error(capsys, "is a folder")
    assert main(argv + [str(tmp_path / "m.pt" / "x.pt")]) == 1
    _one_line_error(capsys, "is not a folder")
    assert main(argv + ["/proc/tritium-test/m.pt"]) == 1       # read-only, even for root
    _one_line_error(capsys, "cannot write in /proc")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused_before_training(tmp_path, capsys, no_training):
    (tmp_path / "ro").mkdir(mode=0o555)
    assert main(["train", "--arch", "tfc", "-o", str(tmp_path / "ro" / "m.pt")]) == 1
    _one_line_error(capsys, "cannot write in")


def test_outputs_need_force_to_be_overwritten(tmp_path, capsys):
    """export, compile, generate and report refuse an existing output (one line, exit 1,
    nothing written) and overwrite it with --force."""
    from tritium.boards.bench_patch import small_dense_model
    from tritium.sw.model.ir import save_model
    save_model(small_dense_model(), tmp_path / "m.npz")
    compile_ = ["compile", str(tmp_path / "m.npz"), "-o", str(tmp_path / "c")]
    assert main(compile_) == 0
    capsys.readouterr()
    before = (tmp_path / "c" / "compiled.json").stat().st_mtime_ns
    assert main(compile_) == 1
    _one_line_error(capsys, "exists and is not empty (--force writes into it)")
    assert (tmp_path / "c" / "compiled.json").stat().st_mtime_ns == before
    assert main(compile_ + ["--force"]) == 0
    capsys.readouterr()
    (tmp_path / "file").write_text("x")
    assert main(["compile", str(tmp_path / "m.npz"), "-o", str(tmp_path / "file")]) == 1
    _one_line_error(capsys, "exists and is not a folder")
    assert main(["generate", "--pe", "2", "--simd", "8", "-o", str(tmp_path / "c")]) == 1
    _one_line_error(capsys, "--force")
    assert main(["report", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    assert main(["report", str(tmp_path / "c")]) == 1
    _one_line_error(capsys, "--force")
    assert main(["report", str(tmp_path / "c"), "--force"]) == 0
    capsys.readouterr()
    # --force replaces a report folder, never a folder that holds something else.
    assert main(["report", str(tmp_path / "c"), "-o", str(tmp_path / "c"), "--force"]) == 1
    _one_line_error(capsys, "no report")
    assert (tmp_path / "c" / "model.tim").exists()


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_written_files_and_folders_follow_the_umask(tmp_path, umask):
    from tritium.sw.util.fileio import atomic_write_text, temp_dir
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
        folder = temp_dir(".r.", tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask


# ---------------------------------------------------------------- --json

def test_json_stdout_holds_nothing_else_not_even_a_child_process_output():
    """Under --json, print() and child processes writing to file descriptor 1 (Verilator,
    yosys) go to stderr: stdout is the JSON document alone."""
    script = (
        "import subprocess, sys\n"
        "from tritium.sw.util.console import json_only_stdout, print_json\n"
        "with json_only_stdout():\n"
        "    print('a table')\n"
        "    subprocess.run([sys.executable, '-c', 'print(\"child output\")'])\n"
        "    print_json({'ok': 1})\n"
        "print('after')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == '{\n  "ok": 1\n}\nafter\n'
    assert "a table" in result.stderr and "child output" in result.stderr


def test_a_command_without_a_result_of_its_own_reports_its_exit_status(capsys, monkeypatch):
    from tritium.sw.cli.commands import report
    monkeypatch.setattr(report, "run", lambda args: print("human words") or 0)
    assert main(["report", "x", "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out) == {"exit_code": 0} and "human words" in out.err


def test_an_os_error_on_a_named_file_is_one_line(capsys, monkeypatch):
    from tritium.sw.cli.commands import report

    def denied(args):
        raise PermissionError(13, "Permission denied", "/some/file")
    monkeypatch.setattr(report, "run", denied)
    assert main(["report", "x", "--json"]) == 1
    out = capsys.readouterr()
    assert json.loads(out.out) == {"error": "/some/file: Permission denied"}
    assert out.err == "tritium: error: /some/file: Permission denied\n"
