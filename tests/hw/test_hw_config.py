"""Hardware configuration: validation, canonical hash, and the generate command."""

import json

import pytest

from tritium.hw.accel_config import AccelConfig
from tritium.hw.config import (CHAIN_COMPARE_STAGES, ConfigError, HwConfig, config_from_dict,
                               config_hash)
from tritium.sw.cli.main import main


def test_hash_is_stable_and_canonical():
    a = HwConfig(pe=4, simd=24, weight_kinds=("ternary", "binary"), act_bits=8)
    b = HwConfig(pe=4, simd=24, weight_kinds="binary,ternary", act_bits=8)
    assert a.hash == b.hash == config_hash(a.canonical())
    assert config_from_dict(json.loads(a.canonical_json())).hash == a.hash
    assert HwConfig(pe=4, simd=24, weight_kinds=("binary", "ternary"), act_bits=7).hash != a.hash
    assert len(a.hash) == 16 and int(a.hash, 16) >= 0


def test_hash_is_pinned():
    """Compiled images record the hash: changing the canonical form or the hash
    function must be deliberate (bump CONFIG_VERSION and update this value)."""
    cfg = HwConfig(pe=8, simd=32, weight_kinds=("binary",), act_bits=1, out_bits=1,
                   weight_depth=256, thr_depth=64, pipeline=2)
    assert cfg.canonical_json() == (
        '{"acc_bits":16,"act_bits":1,"addr_reg":false,"config_version":3,"max_fan_in":8192,'
        '"out_bits":1,"pe":8,'
        '"pipeline":2,"simd":32,"thr_depth":64,"weight_depth":256,"weight_kinds":["binary"],'
        '"weight_reg":false}')
    assert cfg.hash == "4982ab8ca69f19ba"


@pytest.mark.parametrize("kwargs, words", [
    (dict(pe=0), "pe=0"),
    (dict(simd=1), "simd=1"),
    (dict(weight_kinds=("binary", "quaternary")), "quaternary"),
    (dict(weight_kinds=()), "at least one"),
    (dict(act_bits=17), "act_bits"),
    (dict(pipeline=99), "pipeline"),
    (dict(acc_bits=4), "acc_bits=4"),
    (dict(max_fan_in=0), "max_fan_in=0"),
    (dict(weight_depth=4, simd=8, max_fan_in=33), "max_fan_in=33"),
    (dict(max_fan_in="64"), "integer"),
    (dict(pe=2.5), "integer"),
    (dict(chain=True), "chain needs weight_reg and addr_reg"),
    (dict(chain=True, weight_reg=True), "chain needs weight_reg and addr_reg"),
    (dict(chain=1, weight_reg=True, addr_reg=True), "chain must be true or false"),
])
def test_bad_configs_are_refused_with_one_line(kwargs, words):
    with pytest.raises(ConfigError) as e:
        HwConfig(**kwargs)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_chain_is_in_the_canonical_form_only_when_set():
    """``chain`` came after the pinned hash: a configuration without it keeps its
    canonical form (and so its hash, which images record); one with it round-trips."""
    plain = HwConfig(pe=4, simd=16, weight_reg=True, addr_reg=True)
    chained = HwConfig(pe=4, simd=16, weight_reg=True, addr_reg=True, chain=True)
    assert "chain" not in plain.canonical() and chained.canonical()["chain"] is True
    assert chained.hash != plain.hash
    assert config_from_dict(json.loads(chained.canonical_json())) == chained
    assert chained.latency == plain.latency + chained.pe + CHAIN_COMPARE_STAGES


def test_the_stand_alone_core_refuses_a_chain():
    from tritium.hw.core import Core
    with pytest.raises(ConfigError, match="only inside the accelerator"):
        Core(HwConfig(pe=2, simd=8, weight_reg=True, addr_reg=True, chain=True))


def test_config_from_dict_refuses_unknown_fields():
    with pytest.raises(ConfigError):
        config_from_dict({**HwConfig().canonical(), "frobnicate": 1})


def test_generate_writes_verilog_config_and_estimate(tmp_path, capsys):
    out = tmp_path / "core"
    rc = main(["generate", "--pe", "3", "--simd", "12", "--weights", "binary,ternary",
               "--act-bits", "8", "-o", str(out), "--json"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    cfg = AccelConfig(core=HwConfig(pe=3, simd=12, weight_kinds=("binary", "ternary"), act_bits=8))
    assert result["lanes"] == 36 and result["config_hash"] == cfg.hash
    text = (out / "tritium_accel.v").read_text()
    assert "module tritium_accel" in text and cfg.hash in text
    assert "SB_" not in text and "DP16KD" not in text  # no vendor primitives
    described = json.loads((out / "tritium_accel.json").read_text())
    assert described["config_hash"] == cfg.hash and described["config"] == cfg.canonical()
    assert json.loads((out / "resources.json").read_text())["lanes"] == 36
    assert not list(out.glob(".*.tmp"))


@pytest.mark.parametrize("argv", [
    ["--pe", "0"], ["--simd", "8", "--weights", "foo"], ["--act-bits", "99"],
])
def test_generate_bad_input_is_one_line_error(tmp_path, capsys, argv):
    rc = main(["generate", *argv, "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc != 0 and err.startswith("tritium: error:") and err.count("\n") == 1
    assert not (tmp_path / "x").exists()
