"""The tour of 'tritium --help' typed as it stands, and what sim and run take: the model and
data set a folder was compiled from, the user's own images, --json on every command."""

import contextlib
import io
import json
import os
import re
import shlex

import numpy as np
import pytest

from tritium.sw.cli.main import COMMAND_MODULES, DESCRIPTION, main

#: Options added to a tour step to keep it fast (few epochs, few images); the steps
#: themselves are typed as the help shows them.
FAST = {"demo": ["--epochs", "1", "--no-rtl", "--json"], "train": ["--epochs", "1", "-q"],
        "sim": ["--count", "8", "-q"], "bench reference": ["--images", "4", "--repeats", "1"]}
#: Steps that need a board on a serial port, or minutes of place and route / synthesis.
NOT_HERE = {"run", "build", "program", "bench synth"}


def tour_steps():
    """Every command line of the tour (two spaces end the command, a description follows;
    continuation lines are descriptions)."""
    return [shlex.split(re.split(r"\s{2,}", line.strip())[0])[1:]
            for line in DESCRIPTION.splitlines() if line.startswith("  tritium ")]


def _key(argv):
    return " ".join(argv[:2]) if argv[0] == "bench" else argv[0]


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    """The tour run in a fresh folder: (folder, [(argv, exit status, stdout)])."""
    folder = tmp_path_factory.mktemp("tour")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        done = []
        for argv in tour_steps():
            if _key(argv) not in NOT_HERE:
                with contextlib.redirect_stdout(io.StringIO()) as out:
                    code = main(argv + FAST.get(_key(argv), []))
                done.append((argv, code, out.getvalue()))
    finally:
        os.chdir(cwd)
    return folder, done


def test_the_tour_in_the_help_works_as_typed(tour, capsys):
    folder, done = tour
    steps = [_key(argv) for argv, _, _ in done]
    # Every step a machine without a board can run, the custom-hardware ones included.
    assert {"demo", "train", "export", "compile", "sim", "report", "generate",
            "bench reference"} <= set(steps)
    assert [(argv, code) for argv, code, _ in done if code != 0] == []
    # demo --json (not quiet): its stdout is the summary alone, no layer table before it.
    demo = next(out for argv, _, out in done if argv[0] == "demo")
    assert json.loads(demo)["mismatches"] == 0
    # sim keeps its verdict beside the compiled model, and the report shows it.
    page = (folder / "build" / "m" / "report" / "index.html").read_text()
    assert "Last simulation (isa): 8 images, 0 mismatches against the golden reference" in page
    assert {s[0] for s in tour_steps()} == set(COMMAND_MODULES)      # the tour shows them all


def test_sim_takes_the_model_and_data_set_the_folder_was_compiled_from(tour, capsys):
    """No --model, no --dataset: the model compiled.json names, the data set of its
    metadata (digits, from train's default); the verdict is on stdout."""
    folder, _ = tour
    assert main(["sim", str(folder / "build" / "m"), "--count", "20", "-q"]) == 0
    out = capsys.readouterr().out
    assert "20 images: 0 mismatches against the golden reference, accuracy" in out
    kept = json.loads((folder / "build" / "m" / "simulation.json").read_text())
    assert kept["images"] == 20 and kept["dataset"] == "digits" and kept["mismatches"] == 0
    record = json.loads((folder / "build" / "m" / "compiled.json").read_text())["model"]
    assert record["path"] == str(folder / "m.npz") and len(record["sha256"]) == 64


def test_sim_refuses_a_model_the_folder_was_not_compiled_from(tour, tmp_path, capsys):
    from tritium.sw.model.ir import load_model, save_model
    folder, _ = tour
    other = load_model(folder / "m.npz")
    other.meta["note"] = "another model"
    save_model(other, tmp_path / "other.npz")
    assert main(["sim", str(folder / "build" / "m"), "--model", str(tmp_path / "other.npz"),
                 "--json"]) == 1
    error = json.loads(capsys.readouterr().out)["error"]
    assert "is not the model" in error and str(folder / "m.npz") in error
    # A folder compiled before compiled.json recorded its model takes the file it is given.
    import shutil
    old = tmp_path / "old"
    shutil.copytree(folder / "build" / "m", old)
    summary = json.loads((old / "compiled.json").read_text())
    del summary["model"]
    (old / "compiled.json").write_text(json.dumps(summary))
    assert main(["sim", str(old), "--model", str(folder / "m.npz"), "--count", "4", "-q"]) == 0
    assert main(["sim", str(old)]) == 1
    assert "names no model file: pass --model" in capsys.readouterr().err


def _digits(n):
    from tritium.sw.train.data import load_dataset
    d = load_dataset("digits")
    return d.x_test[:n], d.y_test[:n]


def test_sim_runs_the_users_own_images(tour, tmp_path, capsys):
    """--images: a folder of PNG files, a .npy without labels (mismatches, no accuracy),
    a .npz with labels (accuracy); the last batch padded, only the images asked for count."""
    from PIL import Image
    folder, _ = tour
    x, y = _digits(5)
    (tmp_path / "png").mkdir()
    for i, image in enumerate(x):
        Image.fromarray(image[:, :, 0]).save(tmp_path / "png" / f"{i:02d}.png")
    np.save(tmp_path / "x.npy", x[:, :, :, 0])
    np.savez(tmp_path / "xy.npz", images=x, labels=y)
    results = {}
    for name in ("png", "x.npy", "xy.npz"):
        assert main(["sim", str(folder / "build" / "m"), "--images", str(tmp_path / name),
                     "--json", "-q"]) == 0
        results[name] = json.loads(capsys.readouterr().out)
        assert results[name]["images"] == 5 and results[name]["mismatches"] == 0
    assert results["png"]["predictions"] == results["x.npy"]["predictions"] \
        == results["xy.npz"]["predictions"]
    assert results["png"]["accuracy"] is None and results["x.npy"]["accuracy"] is None
    assert results["xy.npz"]["accuracy"] == np.mean(np.array(results["png"]["predictions"]) == y)
    assert main(["sim", str(folder / "build" / "m"), "--images", str(tmp_path / "png"), "-q"]) == 0
    assert "no labels, no accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("images, message", [
    (np.zeros((3, 28, 28), np.uint8), "the images are (3, 28, 28), the model takes (N, 8, 8, 1)"),
    (np.zeros((3, 8, 8, 1), np.float32), "must be uint8 pixels"),
])
def test_images_of_the_wrong_shape_or_type_are_refused(tour, tmp_path, capsys, images, message):
    folder, _ = tour
    np.save(tmp_path / "bad.npy", images)
    assert main(["sim", str(folder / "build" / "m"), "--images", str(tmp_path / "bad.npy")]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_png_of_the_wrong_size_names_both_sizes(tour, tmp_path, capsys):
    from PIL import Image
    folder, _ = tour
    (tmp_path / "png").mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "png" / "a.png")
    assert main(["sim", str(folder / "build" / "m"), "--images", str(tmp_path / "png")]) == 1
    assert "the image is 28 x 28 x 1, the model takes 8 x 8 x 1" in capsys.readouterr().err


def test_every_command_prints_only_json_with_json(tour, tmp_path, capsys):
    """Each subcommand with --json, on a fast path or an error path: stdout is one JSON
    document ({"error": ...} with a non-zero exit), the error also one line on stderr."""
    folder, _ = tour
    (tmp_path / "file").write_text("x")
    argvs = {
        "demo": ["demo", "--out", str(tmp_path / "file")],
        "train": ["train", "--arch", "tfc", "-o", str(tmp_path / "file")],
        "export": ["export", str(folder / "m.pt"), "-o", str(tmp_path / "e.npz"), "-q"],
        "generate": ["generate", "--pe", "0", "-o", str(tmp_path / "g")],
        "compile": ["compile", str(folder / "m.npz"), "-o", str(tmp_path / "c")],
        "sim": ["sim", str(folder / "build" / "m"), "--count", "4", "-q"],
        "run": ["run", "--port", str(tmp_path / "no-such-port"), str(folder / "build" / "m")],
        "bench": ["bench", "fit", "--presets", "nope"],
        "build": ["build", "--board", "nope", "-o", str(tmp_path / "b")],
        "program": ["program", "--board", "icebreaker", str(tmp_path / "none.bin")],
        "report": ["report", str(folder / "build" / "m"), "-o", str(tmp_path / "r")],
    }
    assert set(argvs) == set(COMMAND_MODULES)
    for name, argv in argvs.items():
        code = main(argv + ["--json"])
        captured = capsys.readouterr()
        result = json.loads(captured.out)
        assert isinstance(result, dict), name
        if code == 0:
            assert "error" not in result, name
        else:
            assert set(result) == {"error"}, name
            assert captured.err.strip().splitlines()[-1] == f"tritium: error: {result['error']}"
    # A usage error too: {"error"} on stdout, exit 2.
    with pytest.raises(SystemExit) as e:
        main(["sim", str(folder), "--count", "zero", "--json"])
    assert e.value.code == 2 and "invalid int value" in json.loads(capsys.readouterr().out)["error"]


class _Board:
    """A board that runs programs in the ISA-level simulator (the serial link and the
    host interface are tests/hw/test_host.py's)."""

    resent = 0

    def __init__(self, transport, timeout):
        pass

    def load_image(self, path, progress=None):
        pass

    def run_batch(self, compiled, values, progress=None):
        from tritium.sw.run.isasim import simulate
        acc, cycles, _ = simulate(compiled, values)
        return acc, cycles


def test_run_takes_the_compiled_model_and_the_users_images(tour, tmp_path, monkeypatch, capsys):
    """'tritium run': no --model (compiled.json's), the user's images, the verdict on
    stdout; another model file is refused before any image crosses the link."""
    from tritium.sw.model.ir import load_model, save_model
    from tritium.sw.run import driver

    folder, _ = tour
    opened = []
    monkeypatch.setattr(driver, "SerialTransport", lambda port, baud: opened.append(port) or
                        type("Port", (), {"close": lambda self: None})())
    monkeypatch.setattr(driver, "Device", _Board)
    x, _ = _digits(3)
    np.save(tmp_path / "x.npy", x)
    build = str(folder / "build" / "m")
    assert main(["run", "--port", "p", build, "--images", str(tmp_path / "x.npy"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "3 images: 0 mismatches against the golden reference, no labels, no accuracy" in out
    assert main(["run", "--port", "p", build, "--count", "5", "--json", "-q"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 5 and result["mismatches"] == 0 and result["accuracy"] is not None
    other = load_model(folder / "m.npz")
    other.meta["note"] = "another model"
    save_model(other, tmp_path / "other.npz")
    assert main(["run", "--port", "p", build, "--model", str(tmp_path / "other.npz")]) == 1
    assert "is not the model" in capsys.readouterr().err and opened == ["p", "p"]
