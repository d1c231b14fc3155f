"""Model images: round trip, and every kind of damage is refused with one line."""

import dataclasses
import json
import struct

import numpy as np
import pytest

from tritium.hw.accel_config import AccelConfig
from tritium.hw.config import HwConfig
from tritium.hw.errors import FormatError
from tritium.hw.image_format import HEADER
from tritium.sw.cli.main import main
from tritium.sw.compiler import compile_model
from tritium.sw.compiler.image import image_bytes, parse_image, read_image, write_images
from tritium.sw.model import reference
from tritium.sw.model.ir import save_model
from tritium.sw.model.zoo import random_inputs, random_model
from tritium.sw.run.isasim import simulate

CFG = AccelConfig(core=HwConfig(pe=4, simd=16, weight_kinds=("binary", "ternary"), act_bits=8,
                                weight_depth=1024, thr_depth=64), res_depth=32)


@pytest.fixture(scope="module")
def compiled():
    model = random_model("tfc", (8, 8, 1), "uint8", weight_kind="ternary", seed=4)
    return model, compile_model(model, CFG)


def test_image_round_trip_runs_the_same(tmp_path, compiled):
    model, c = compiled
    paths = write_images(c, tmp_path)
    loaded = read_image(paths["image"], expect_hash=CFG.hash)
    assert loaded.program == c.program and loaded.weight_banks == c.weight_banks
    x = random_inputs(model, 5, seed=1)
    np.testing.assert_array_equal(simulate(loaded, x)[0], reference.run(model, x))
    lines = paths["program"].read_text().splitlines()
    assert len(lines) == len(c.program) and all(len(l) == 16 for l in lines)
    assert int(lines[0], 16) == c.program[0]
    assert paths["weights_p3"].read_text().count("\n") == CFG.core.weight_depth
    assert json.loads(paths["summary"].read_text())["config_hash"] == CFG.hash


def damage(data, how):
    data = bytearray(data)
    if how == "bitflip":
        data[-5] ^= 0x10
    elif how == "truncated":
        return bytes(data[: len(data) - 7])
    elif how == "magic":
        data[0:8] = b"NOTTRIT\0"
    elif how == "version":
        struct.pack_into("<H", data, 8, 99)
    elif how == "empty":
        return b""
    return bytes(data)


@pytest.mark.parametrize("how, message", [("bitflip", "CRC"), ("truncated", "truncated"),
                                         ("magic", "bad magic"), ("version", "version 99"),
                                         ("empty", "truncated")])
def test_damaged_images_are_refused(tmp_path, compiled, how, message):
    path = tmp_path / "model.tim"
    path.write_bytes(damage(image_bytes(compiled[1]), how))
    with pytest.raises(FormatError, match=message) as e:
        read_image(path)
    assert "\n" not in str(e.value)


def test_image_for_other_hardware_is_refused(tmp_path, compiled):
    path = tmp_path / "model.tim"
    path.write_bytes(image_bytes(compiled[1]))
    with pytest.raises(FormatError, match="compiled for hardware"):
        read_image(path, expect_hash="0123456789abcdef")


def test_header_layout():
    assert HEADER.size == 32


def test_streamed_image_carries_the_weight_store(tmp_path):
    model = random_model("tfc", (6, 6, 1), "bipolar", seed=3)
    cfg = AccelConfig(core=HwConfig(pe=2, simd=8, weight_depth=128, thr_depth=128), act_depth=64,
                      res_depth=32, store_depth=2048)
    c = compile_model(model, cfg, batch=4)
    paths = write_images(c, tmp_path)
    loaded = read_image(paths["image"], expect_hash=cfg.hash)
    assert loaded.store_words == c.store_words and len(c.store_words) > cfg.core.weight_depth
    assert paths["wstore"].read_text().count("\n") == len(c.store_words)
    x = random_inputs(model, 4, seed=1)
    np.testing.assert_array_equal(simulate(loaded, x)[0], reference.run(model, x))
    small = AccelConfig(core=cfg.core, act_depth=64, res_depth=32, store_depth=64)
    (tmp_path / "bad.tim").write_bytes(image_bytes(dataclasses.replace(c, config=small)))
    with pytest.raises(FormatError, match="WSTORE section has the wrong size"):
        read_image(tmp_path / "bad.tim")


def test_compile_and_sim_commands(tmp_path, capsys):
    from tritium.sw.model.ir import ActType, Dense, IntModel
    from tritium.sw.train.data import load_dataset

    data = load_dataset("digits")
    rng = np.random.default_rng(0)
    w0 = 2 * rng.integers(0, 2, (32, 64)) - 1
    w1 = 2 * rng.integers(0, 2, (10, 32)) - 1
    model = IntModel((8, 8, 1), ActType("bipolar"), [
        Dense.from_values("fc0", w0, "binary", thresholds=np.zeros((32, 1), np.int64), out_act="bipolar"),
        Dense.from_values("fc1", w1, "binary")],
        meta={"input_quant": {"kind": "binarise", "threshold": 128}})
    save_model(model, tmp_path / "m.npz")
    assert main(["compile", str(tmp_path / "m.npz"), "--hw", "icebreaker", "-o",
                 str(tmp_path / "build"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["cycles_per_image"] > 0 and len(summary["layers"]) == 2
    assert main(["sim", str(tmp_path / "build"), "--model", str(tmp_path / "m.npz"),
                 "--dataset", "digits", "--count", "20", "--json", "-q"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mismatches"] == 0 and result["images"] == 20
    for key in ("accuracy", "cycles_per_image", "utilization"):
        assert key in result
    # A refused model: a one-line error naming the layer.
    assert main(["compile", str(tmp_path / "m.npz"), "--hw", "nope", "-o", str(tmp_path / "x")]) == 1
    assert "preset" in capsys.readouterr().err


def test_segmented_model_folder(tmp_path, capsys):
    """A model that runs in segments: one model image per segment; read_compiled gives them
    back (tritium sim runs them, bit-exact), and refuses a missing segment image or one of
    another compilation with one line."""
    from tritium.sw.compiler.image import read_compiled

    from tritium.sw.model.ir import ActType, Dense, IntModel

    def digits_model(seed):
        rng = np.random.default_rng(seed)
        sizes = [64, 16, 16, 10]
        layers = [Dense.from_values(f"fc{i}", 2 * rng.integers(0, 2, (n, k)) - 1, "binary",
                                    thresholds=rng.integers(-2, 3, (n, 1)) if i < 2 else None,
                                    out_act="bipolar" if i < 2 else None)
                  for i, (k, n) in enumerate(zip(sizes, sizes[1:]))]
        return IntModel((8, 8, 1), ActType("bipolar"), layers,
                        meta={"input_quant": {"kind": "binarise", "threshold": 128}})

    model = digits_model(3)
    cfg = AccelConfig(core=HwConfig(pe=4, simd=16, weight_depth=16), act_depth=8, res_depth=16)
    compiled = compile_model(model, cfg, batch=4)
    # 4 images of 4 input words in two bands; fc0 alone fills the banks, fc1 + fc2 the next
    assert len(compiled.segments) == 3 and compiled.plans[0].bands == ((0, 2), (2, 2))
    write_images(compiled, tmp_path / "b")
    back = read_compiled(tmp_path / "b")
    assert [s.input_words for s in back.segments] == [s.input_words for s in compiled.segments]
    assert [s.program for s in back.segments] == [s.program for s in compiled.segments]
    # The second band keeps the first's banks and thresholds: its image has neither.
    assert [s.weight_banks is None for s in back.segments] == [False, True, False]
    assert [s.threshold_banks is None for s in back.segments] == [False, True, False]
    assert back.segments[2].weight_banks == compiled.segments[2].weight_banks
    first_bytes = (tmp_path / "b" / "model.tim").read_bytes()
    assert len((tmp_path / "b" / "segment1.tim").read_bytes()) < len(first_bytes) // 2
    x = random_inputs(model, 8, seed=1)
    np.testing.assert_array_equal(simulate(back, x)[0], reference.run(model, x))
    save_model(model, tmp_path / "m.npz")
    assert main(["sim", str(tmp_path / "b"), "--model", str(tmp_path / "m.npz"),
                 "--dataset", "digits", "--count", "8", "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["mismatches"] == 0
    other = compile_model(digits_model(4), cfg, batch=4)
    (tmp_path / "b" / "segment2.tim").write_bytes(image_bytes(other.segment(2)))
    with pytest.raises(FormatError, match="segment2.tim: not a segment of"):
        read_compiled(tmp_path / "b")
    (tmp_path / "b" / "segment2.tim").write_bytes((tmp_path / "b" / "segment1.tim").read_bytes())
    with pytest.raises(FormatError, match="segment2.tim: not a segment of"):    # out of place
        read_compiled(tmp_path / "b")
    (tmp_path / "b" / "segment2.tim").unlink()
    with pytest.raises(FormatError, match="segment2.tim: no such file"):
        read_compiled(tmp_path / "b")
    # Only a later segment may keep the memories: a first image without them is refused.
    keeps = dataclasses.replace(compiled.segment(0), weight_banks=None, threshold_banks=None,
                                segment_index=None)
    with pytest.raises(FormatError, match="model.tim: model image lacks section WEIGHTS"):
        parse_image(image_bytes(keeps), "model.tim")
    # With a weight store too small for fc0 beside fc1: fc0 streams in a phase of its own
    # (its image carries the store's words), fc1 + fc2 are resident in the next (no WSTORE).
    streamed = AccelConfig(core=HwConfig(pe=4, simd=16, weight_depth=8), act_depth=16,
                           res_depth=16, store_depth=64)
    compiled = compile_model(model, streamed, batch=4)
    stores = [len(compiled.segment(k).store_words) for k in range(len(compiled.segments))]
    assert stores == [64, 0]
    write_images(compiled, tmp_path / "s")
    back = read_compiled(tmp_path / "s")
    assert [s.store_words for s in back.segments] == [s.store_words for s in compiled.segments]
    np.testing.assert_array_equal(simulate(back, x)[0], reference.run(model, x))
    assert main(["sim", str(tmp_path / "s"), "--model", str(tmp_path / "m.npz"),
                 "--dataset", "digits", "--count", "8", "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["mismatches"] == 0
