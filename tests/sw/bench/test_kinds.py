"""The weight-kind cost table (tritium bench kinds): its figures without the tools."""

import numpy as np
import pytest

from tritium.hw.accel_config import AccelConfig
from tritium.hw.config import HwConfig
from tritium.hw.errors import TritiumError
from tritium.hw.presets import PRESETS
from tritium.sw.bench import kinds as K
from tritium.sw.cli.main import main
from tritium.sw.compiler import compile_model
from tritium.sw.model.ir import ActType, Dense, IntModel
from tritium.sw.model.zoo import _weights

BIPOLAR = ActType("bipolar")


def _config(kinds):
    return AccelConfig(core=HwConfig(pe=2, simd=8, weight_kinds=kinds, weight_depth=64,
                                     thr_depth=8),
                       act_depth=16, prog_depth=16, res_depth=8)


def _model(kind):
    """20 -> 6 -> 3: fc0 is 3 tiles of 3 words per plane, fc1 2 tiles of 1 word."""
    rng = np.random.default_rng(0)
    return IntModel((20,), BIPOLAR, [
        Dense.from_values("fc0", _weights(rng, kind, (6, 20)), kind,
                          thresholds=rng.integers(-3, 4, (6, 1)), out_act=BIPOLAR),
        Dense.from_values("fc1", _weights(rng, kind, (3, 6)), kind)])


@pytest.mark.parametrize("kinds, kind, bits", [
    # (3 tiles x 3 words + 2 tiles x 1 word) x planes, x 2 banks, x word width
    (("binary",), "binary", (9 + 2) * 1 * 2 * 8),
    (("binary", "int2"), "int2", (9 + 2) * 2 * 2 * 8),          # bipolar planes: no mask word
    (("binary", "pow2-2"), "pow2-2", (9 + 2) * 2 * 2 * 16),     # sign and mask words
    (("binary", "pow2-4"), "binary", (9 + 2) * 1 * 2 * 16),     # a binary layer on a masked core
])
def test_weight_bits_count_every_plane_as_stored(kinds, kind, bits):
    figures = K.model_figures(_config(kinds), _model(kind), batch=2)
    assert figures["fits"] and figures["weight_bits"] == bits


def test_cycles_are_the_isa_simulators_and_grow_with_the_planes():
    cfg = _config(("binary", "int3"))
    per_kind = {}
    for kind in ("binary", "int3"):
        figures = K.model_figures(cfg, _model(kind), batch=2)
        assert figures["cycles_per_image"] == compile_model(_model(kind), cfg, batch=2).cycles_per_image
        per_kind[kind] = figures["cycles_per_image"]
    assert per_kind["int3"] > per_kind["binary"]       # three planes per accumulation


def test_a_model_that_does_not_fit_is_reported():
    cfg = AccelConfig(core=HwConfig(pe=2, simd=8, weight_kinds=("binary", "int4"),
                                    weight_depth=8, thr_depth=8),
                      act_depth=16, prog_depth=16, res_depth=8)
    figures = K.model_figures(cfg, _model("int4"), batch=1)
    assert not figures["fits"] and figures["reason"]


def test_kind_config_adds_the_kind_to_the_preset():
    assert K.kind_config("ulx3s", "ternary") is PRESETS["ulx3s"]
    cfg = K.kind_config("icebreaker", "int4")
    preset = PRESETS["icebreaker"]
    assert cfg.core.weight_kinds == ("binary", "int4")
    assert cfg.core.acc_bits == cfg.core.min_acc_bits() > preset.core.acc_bits
    assert (cfg.store_depth, cfg.core.pe, cfg.core.max_fan_in) == \
        (preset.store_depth, preset.core.pe, preset.core.max_fan_in)


def test_synthesis_is_measured_once_and_then_read_from_the_cache(tmp_path, monkeypatch):
    from tritium.sw.bench import synth
    calls = []
    monkeypatch.setattr(synth, "accel_fit", lambda preset, cfg, work, log: calls.append(cfg.hash)
                        or {"lut4": 100, "preset": preset})
    cache = K.ResultCache("f00d", tmp_path)
    cfg = K.kind_config("icebreaker", "int2")
    for _ in range(2):
        assert K.synth_figures("icebreaker", cfg, cache, None, log=lambda m: None)["lut4"] == 100
    assert calls == [cfg.hash]
    # another fingerprint (the gateware changed): measured again
    K.synth_figures("icebreaker", cfg, K.ResultCache("beef", tmp_path), None, log=lambda m: None)
    assert len(calls) == 2


def test_a_failed_hardware_build_is_reported_and_tried_again(monkeypatch):
    from tritium.boards import build
    calls = []

    def fail(*args):
        calls.append(args)
        raise TritiumError("nextpnr: ICESTORM_LC 6000/5280 120%")
    monkeypatch.setattr(build, "cached_hardware", fail)
    cfg = K.kind_config("icebreaker", "int4")
    for _ in range(2):
        r = K.board_figures("icebreaker", cfg, 1, log=lambda m: None, fingerprint="f00d")
        assert not r["built"] and "120%" in r["reason"]
    assert len(calls) == 2 and calls[0][1] is cfg and calls[0][5] == "f00d"


def test_only_what_synthesis_fits_is_placed(tmp_path, monkeypatch):
    from tritium.boards import build
    from tritium.sw.bench import synth
    monkeypatch.setattr(K, "KIND_NETWORKS", ("tfc",))
    monkeypatch.setattr(synth, "accel_fit", lambda preset, cfg, work, log: {
        "lut4": 1000, "device_lut4": 5280, "bram": 20 if cfg.core.weight_width == 64 else 40,
        "device_bram": 30, "spram": 4, "device_spram": 4, "device": "iCE40UP5K",
        "fits": cfg.core.weight_width == 64})
    placed = []
    monkeypatch.setattr(build, "cached_hardware", lambda board, cfg, *a: placed.append(cfg) or (
        None, {"luts": 4000, "luts_available": 5280, "rams": 27, "rams_available": 30,
               "fmax_mhz": 41.0, "clock_mhz": 40.5, "timing_met": True, "build_seconds": 70}, True))
    result = K.measure_kinds(("icebreaker",), ("int2", "ternary"), log=lambda m: None,
                             cache_root=tmp_path)
    int2, ternary = result["rows"]
    assert [c.core.weight_kinds for c in placed] == [("binary", "int2")]
    assert int2["board"]["built"] and int2["board"]["luts"] == 4000
    assert not ternary["board"]["built"] and "40 block RAMs of 30" in ternary["board"]["reason"]
    assert int2["networks"]["tfc"]["cycles_per_image"] > 0 and not int2["default"]


def test_table_rows_show_what_does_not_fit():
    synth = {"lut4": 6000, "device_lut4": 5280, "bram": 20, "device_bram": 30, "spram": 4,
             "device_spram": 4, "device": "iCE40UP5K", "fits": False}
    row = {"preset": "icebreaker", "kind": "int4", "weight_kinds": ["binary", "int4"],
           "default": False, "acc_bits": 16, "synth": synth,
           "board": {"built": False, "reason": K._over(synth)},
           "networks": {"tfc": {"fits": False, "reason": "x"},
                        "sfc": {"fits": True, "batch": 16, "streamed": True,
                                "cycles_per_image": 1234.5, "weight_bits": 4096}}}
    (cells,) = K.table_rows({"rows": [row]})
    assert len(cells) == len(K.HEADERS)
    assert cells[4] == "does not fit" and cells[6] == "1,234.5 (batch 16, streamed)"
    assert cells[8] == "6,000 / 5,280 (114 %)" and cells[10] == "NO: needs 6,000 LUT4 of 5,280 (yosys; not placed)"
    assert "block RAMs" not in cells[10]
    assert K.markdown({"rows": [row]}).count("\n") == 2


def test_bench_kinds_refuses_an_unknown_kind(capsys):
    assert main(["bench", "kinds", "--kinds", "binary,int9"]) != 0
    assert "--kinds takes" in capsys.readouterr().err
