"""scripts/accuracy_table.py: the run plan, resuming, the markdown table, and one real
1-epoch sweep of SFC on digits (BWN, ADMM binary from its own float start) through the CLI."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def acc():
    spec = importlib.util.spec_from_file_location("accuracy_table", ROOT / "scripts" / "accuracy_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(accuracy, seconds, export=None):
    return {"train": {"accuracy": accuracy, "train_seconds": seconds}, "export": export}


def _export(accuracy, agreement=1.0, exact=True):
    return {"accuracy_integer": accuracy, "agreement": agreement, "logits_exact": exact}


def test_plan_puts_the_float_run_before_admm_from_init(acc):
    runs = acc.plan(["digits"], ["sfc"], [0, 1], ["admm-init-pow2-4", "bwn"])
    assert runs == [("digits", "sfc", r, s) for s in (0, 1) for r in ("float", "bwn", "admm-init-pow2-4")]
    assert acc.plan(["digits"], ["sfc"], [0], ["admm-binary"]) == [("digits", "sfc", "admm-binary", 0)]


def test_default_admm_rows_train_their_own_float_start(acc, tmp_path):
    assert [r for r in acc.DEFAULT_ROWS if r.startswith("admm")] == [
        "admm-binary", "admm-ternary", "admm-pow2-2", "admm-pow2-4"]
    own, export = acc.commands(tmp_path, "mnist5k", "cnn", "admm-ternary", 2, 5)
    assert "--init" not in own and own[own.index("--pretrain-epochs") + 1] == "5"
    assert own[own.index("--method") + 1] == "admm" and own[own.index("--epochs") + 1] == "5"
    assert export[:2] == ["tritium", "export"] and "--verify" in export and "--json" in own
    assert acc.commands(tmp_path, "digits", "sfc", "float", 0, 20)[1] is None


def test_admm_init_commands_start_from_the_float_checkpoint(acc, tmp_path):
    train, _ = acc.commands(tmp_path, "mnist5k", "cnn", "admm-init-ternary", 2, 20)
    assert train[train.index("--init") + 1] == str(tmp_path / "mnist5k-cnn-float-s2.pt")
    assert "--pretrain-epochs" not in train and train[train.index("--weights") + 1] == "ternary"


def test_table_row_statistics(acc):
    records = [_record(0.90, 2.0, _export(0.90)), _record(0.95, 4.0, _export(0.95)),
               _record(0.94, 3.0, _export(0.94))]
    row = acc.table_row("digits", "sfc", "admm-pow2-4", records)
    assert row == ("| digits | SFC | pow2-4 {0, +-1, +-2, +-4} | ADMM | 93.00 % (90.00-95.00) [n=3] "
                   "| 93.00 % | 1.0 (all 3) | True (all 3) | 3.0 |")


def test_table_shows_a_disagreement_and_a_failed_export(acc):
    bad = [_record(0.9, 1.0, _export(0.9)), _record(0.9, 1.0, _export(0.89, agreement=0.99, exact=False))]
    cells = acc.table_row("digits", "sfc", "twn", bad).split(" | ")
    assert cells[-3:-1] == ["1.0, 0.99", "True, False"]
    failed = [_record(0.9, 1.0, {"error": "error: disagree", "returncode": 1})]
    assert "export failed: error: disagree" in acc.table_row("digits", "sfc", "bwn", failed)
    assert acc.table_row("digits", "sfc", "float", [_record(0.9, 1.0)]).endswith("| - | - | - | 1.0 |")


def test_sweep_resumes_and_the_table_reads_what_it_wrote(acc, tmp_path):
    calls = []

    def call(cmd):
        calls.append(cmd)
        if cmd[1] == "export":
            return 0, json.dumps(_export(0.5)), ""
        return 0, json.dumps({"accuracy": 0.5, "train_seconds": 1.0, "epochs": 1}), ""

    runs = acc.plan(["digits"], ["sfc"], [0], ["float", "bwn"])
    assert acc.sweep(tmp_path, runs, 1, call=call, log=lambda m: None) == 2
    assert [c[1] for c in calls] == ["train", "train", "export"]
    assert acc.sweep(tmp_path, runs, 1, call=call, log=lambda m: None) == 0
    assert len(calls) == 3
    with pytest.raises(ValueError, match="1-epoch run, not 2"):
        acc.sweep(tmp_path, runs, 2, call=call, log=lambda m: None)
    lines = acc.markdown(acc.load_records(tmp_path)).splitlines()
    assert len(lines) == 4 and lines[2].startswith("| digits | SFC | float |")
    assert "| 50.00 % | 1.0 (all 1) | True (all 1) |" in lines[3]
    assert all(line.count("|") == 10 for line in lines)     # no cell holds a "|"
    assert acc.markdown(acc.load_records(tmp_path), ["bwn"]).splitlines()[2].startswith("| digits | SFC | BWN")


def test_a_failed_training_stops_the_sweep_without_a_record(acc, tmp_path):
    with pytest.raises(RuntimeError, match="failed"):
        acc.sweep(tmp_path, acc.plan(["digits"], ["sfc"], [0], ["float"]), 1,
                  call=lambda cmd: (2, "", "error: boom"), log=lambda m: None)
    assert not list(tmp_path.glob("*.json"))


def test_one_epoch_sweep_through_the_cli(acc, tmp_path):
    acc.main(["--out", str(tmp_path), "--epochs", "1", "--datasets", "digits", "--archs", "sfc",
              "--seeds", "0", "--rows", "bwn,admm-binary"])
    records = acc.load_records(tmp_path)
    assert sorted(records) == [("digits", "sfc", r, 0) for r in ("admm-binary", "bwn")]
    admm = records[("digits", "sfc", "admm-binary", 0)]
    assert admm["train"]["method"] == "admm" and admm["train"]["epochs"] == 1
    assert admm["train_command"].endswith("--pretrain-epochs 1")
    for row in ("bwn", "admm-binary"):
        export = records[("digits", "sfc", row, 0)]["export"]
        assert export["agreement"] == 1.0 and export["logits_exact"] is True
        assert (tmp_path / f"digits-sfc-{row}-s0.npz").exists()
