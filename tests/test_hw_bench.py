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
