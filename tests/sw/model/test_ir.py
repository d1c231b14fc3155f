"""The IR: validation errors name the layer, files round-trip, bad files are refused."""

import io
import json
import pickle
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings

from strategies import ALL_WEIGHT_KINDS, model_case, random_weights
from tritium.hw.errors import FormatError, ModelError
from tritium.hw.packing import pack_bits
from tritium.hw.weight_kinds import WEIGHT_KIND_NAMES, weight_kind
from tritium.sw.model import reference
from tritium.sw.model.ir import (IR_VERSION, ActType, Conv2d, Dense, IntModel, MaxPool2d,
                                 accumulator_range, load_model, save_model)
from tritium.sw.model.zoo import random_inputs, random_model


def small_model():
    conv = Conv2d.from_values("conv0", np.ones((4, 3, 3, 1), np.int8), "binary", padding=1,
                              pad_value=1, thresholds=np.zeros((4, 1), np.int64), out_act="bipolar")
    fc = Dense.from_values("fc1", np.ones((3, 4 * 3 * 3), np.int8), "ternary")
    return IntModel((6, 6, 1), ActType("bipolar"), [conv, MaxPool2d("pool", 2), fc], meta={"k": [1, 2]})


@settings(max_examples=25)
@given(model_case(kinds=ALL_WEIGHT_KINDS))
def test_save_load_round_trip_keeps_results(tmp_path_factory, case):
    model, x = case
    path = tmp_path_factory.mktemp("ir") / "m.npz"
    save_model(model, path)
    loaded = load_model(path)
    np.testing.assert_array_equal(reference.run(loaded, x), reference.run(model, x))
    assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]


def test_round_trip_keeps_fields(tmp_path):
    model = small_model()
    save_model(model, tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert loaded.meta == {"k": [1, 2]}
    conv = loaded.layers[0]
    assert (conv.kernel, conv.stride, conv.padding, conv.pad_value) == ((3, 3), (1, 1), (1, 1), 1)
    np.testing.assert_array_equal(loaded.layers[2].weight_values(), model.layers[2].weight_values())
    assert not list(tmp_path.glob("*.tmp")), "no temporary file left behind"


def write_npz(path, **arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "wrong_format", "version",
                                    "no_header", "pickle", "bad_layer"])
def test_bad_files_are_refused_with_one_line(tmp_path, damage):
    path = tmp_path / "m.npz"
    save_model(small_model(), path)
    data = path.read_bytes()
    header = json.loads(np.load(path)["header"].tobytes())
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00not a zip" * 100)
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage in ("wrong_format", "version", "bad_layer"):
        if damage == "wrong_format":
            header["format"] = "something-else"
        elif damage == "version":
            header["version"] = 99
        else:
            header["layers"][0]["type"] = "lstm"
        arrays = dict(np.load(path))
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
        write_npz(path, **arrays)
    elif damage == "no_header":
        write_npz(path, weights=np.zeros(3))
    elif damage == "pickle":
        class Evil:
            def __reduce__(self):
                return (print, ("pwned",))
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("header.npy", pickle.dumps(Evil()))
    with pytest.raises(FormatError) as err:
        load_model(path)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(FormatError, match="no such file"):
        load_model(tmp_path / "nope.npz")


def test_corrupted_weights_are_refused(tmp_path):
    path = tmp_path / "m.npz"
    save_model(small_model(), path)
    arrays = dict(np.load(path))
    arrays["l2.w_sign"] = arrays["l2.w_sign"][..., :0]
    write_npz(path, **arrays)
    with pytest.raises(FormatError, match="fc1"):
        load_model(path)


def dense(name="fc", w=((1, -1, 1),), kind="binary", t=None, out_act=None):
    return Dense.from_values(name, np.array(w), kind, thresholds=t, out_act=out_act)


@pytest.mark.parametrize("build, message", [
    (lambda: IntModel((3,), ActType("bipolar"), [dense(t=[[2, 1]], out_act="uint1")]), "shape"),
    (lambda: IntModel((3,), ActType("bipolar"), [dense(t=[[3, 1, 0]], out_act="uint2")]), "non-decreasing"),
    (lambda: IntModel((3,), ActType("bipolar"), [dense(t=[[5]], out_act="bipolar")]), r"\[-3, 4\]"),
    (lambda: IntModel((3,), ActType("bipolar"), [dense("a"), dense("b")]), "raw"),
    (lambda: IntModel((4,), ActType("bipolar"), [dense()]), "expects 3 inputs"),
    (lambda: IntModel((3,), ActType("bipolar"), [dense("x"), dense("x")]), "unique"),
    (lambda: IntModel((3,), ActType("bipolar"), []), "no layers"),
    (lambda: IntModel((3,), ActType("bipolar"), [MaxPool2d("p")]), "max-pool needs"),
    (lambda: IntModel((2, 2, 1), ActType("bipolar"),
                      [Conv2d.from_values("c", np.ones((1, 3, 3, 1)), "binary")]), "does not fit"),
    (lambda: IntModel((3, 3, 1), ActType("bipolar"),
                      [Conv2d.from_values("c", np.ones((1, 3, 3, 1)), "binary", pad_value=0)]),
     "not a bipolar value"),
])
def test_check_names_the_problem(build, message):
    with pytest.raises(ModelError, match=message):
        build().check()


def test_weight_values_are_checked():
    with pytest.raises(ModelError, match="binary weights"):
        dense(w=[[1, 0, 1]])
    with pytest.raises(ModelError, match="ternary weights"):
        dense(w=[[2, 0, 1]], kind="ternary")


def test_non_canonical_ternary_sign_is_refused():
    layer = dense(w=[[1, 0, -1]], kind="ternary")
    layer.w_sign = layer.w_sign | np.uint64(2)  # a sign bit where the mask is 0
    with pytest.raises(ModelError, match="canonical|mask is 0"):
        IntModel((3,), ActType("bipolar"), [layer]).check()


def test_act_type_parse_and_ranges():
    assert str(ActType.parse("uint8")) == "uint8" and ActType.parse("int4").min == -8
    assert ActType.parse("bipolar").max == 1
    with pytest.raises(ModelError):
        ActType.parse("float32")


def test_layer_info_reports_accumulator_width():
    infos = small_model().check()
    assert infos[0].acc_range == (-9, 9) and infos[0].acc_bits == 5
    assert infos[2].out_act is None and infos[2].out_shape == (3,)
    assert "conv0" in small_model().summary()


@pytest.mark.parametrize("kind", WEIGHT_KIND_NAMES)
def test_every_weight_kind_round_trips_through_a_file(tmp_path, kind):
    model = random_model("cnn", (8, 8, 1), "uint4", weight_kind=kind, seed=2)
    save_model(model, tmp_path / "m.npz")
    stored = np.load(tmp_path / "m.npz")
    assert json.loads(stored["header"].tobytes())["version"] == IR_VERSION == 2
    planes = weight_kind(kind).n_planes
    assert stored["l0.w_sign"].shape[0] == planes
    assert ("l0.w_mask" in stored.files) == weight_kind(kind).masked
    loaded = load_model(tmp_path / "m.npz")
    for a, b in zip(loaded.layers, model.layers):
        if hasattr(a, "weight_kind"):
            assert a.weight_kind == kind
            np.testing.assert_array_equal(a.weight_values(), b.weight_values())
    x = random_inputs(model, 4, seed=1)
    np.testing.assert_array_equal(reference.run(loaded, x), reference.run(model, x))


def write_version1(model, path):
    """An IR file as version 1 wrote it: weights (M, W) with no plane axis."""
    header = {"format": "tritium-ir", "version": 1,
              "input": {"shape": list(model.input_shape), "act": str(model.input_act)},
              "layers": [layer.header() for layer in model.layers], "meta": model.meta}
    arrays = {"header": np.frombuffer(json.dumps(header, sort_keys=True).encode(), np.uint8)}
    for i, layer in enumerate(model.layers):
        if hasattr(layer, "weight_kind"):
            values = layer.weight_values()
            arrays[f"l{i}.w_sign"] = pack_bits(values > 0)
            if layer.weight_kind == "ternary":
                arrays[f"l{i}.w_mask"] = pack_bits(values != 0)
            if layer.thresholds is not None:
                arrays[f"l{i}.thresholds"] = layer.thresholds
    write_npz(path, **arrays)


def test_a_version1_file_still_loads(tmp_path):
    model = small_model()
    write_version1(model, tmp_path / "v1.npz")
    assert np.load(tmp_path / "v1.npz")["l2.w_mask"].ndim == 2
    loaded = load_model(tmp_path / "v1.npz")
    for a, b in zip(loaded.layers, model.layers):
        if hasattr(a, "weight_kind"):
            assert a.w_sign.shape == b.w_sign.shape and a.w_sign.shape[0] == 1
            np.testing.assert_array_equal(a.weight_values(), b.weight_values())
    x = 2 * np.random.default_rng(0).integers(0, 2, (3, 6, 6, 1)) - 1
    np.testing.assert_array_equal(reference.run(loaded, x), reference.run(model, x))


def test_a_version1_file_with_plane_weights_is_refused(tmp_path):
    model = IntModel((3,), ActType("bipolar"), [dense(w=[[2, -1, 0]], kind="pow2-2")])
    write_version1(model, tmp_path / "v1.npz")
    with pytest.raises(FormatError, match="version 1 has no 'pow2-2' weights") as err:
        load_model(tmp_path / "v1.npz")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kind, bad", [("binary", 0), ("ternary", 2), ("pow2-2", -4),
                                       ("pow2-4", 3), ("int2", 0), ("int3", 2), ("int4", 17)])
def test_a_weight_outside_the_kind_names_layer_kind_levels_and_value(kind, bad):
    w = random_weights(np.random.default_rng(0), kind, (3, 5))
    w[1, 2] = bad
    levels = ", ".join(map(str, weight_kind(kind).levels))
    with pytest.raises(ModelError) as err:
        Dense.from_values("fc7", w, kind)
    assert str(err.value) == f"layer fc7: {kind} weights must be one of {levels}; got {bad}"
    with pytest.raises(ModelError, match=f"layer conv3: {kind} weights must be one of"):
        Conv2d.from_values("conv3", w.reshape(3, 1, 5, 1), kind)


def test_an_unknown_weight_kind_names_the_layer():
    with pytest.raises(ModelError, match="layer fc: unknown weight kind 'int8'"):
        Dense.from_values("fc", [[1, -1]], "int8")


def layer_file(tmp_path, kind, w, edit):
    """Save a one-layer model of ``kind``, apply ``edit(arrays, header)``, write it back."""
    path = tmp_path / "m.npz"
    save_model(IntModel((len(w[0]),), ActType("bipolar"), [dense("fc0", w, kind)]), path)
    arrays = dict(np.load(path))
    header = json.loads(arrays["header"].tobytes())
    edit(arrays, header)
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    write_npz(path, **arrays)
    return path


def test_overlapping_pow2_planes_in_a_file_are_refused(tmp_path):
    def overlap(arrays, header):            # weight 1 (+2) gets plane 0's mask too: 2 + 1 = 3
        arrays["l0.w_mask"][0, 0, 0] |= np.uint64(0b10)
        arrays["l0.w_sign"][0, 0, 0] |= np.uint64(0b10)
    path = layer_file(tmp_path, "pow2-4", [[4, 2, -1, 0]], overlap)
    with pytest.raises(FormatError, match=r"layer fc0: pow2-4 weights must be one of -4, -2, -1, "
                                          r"0, 1, 2, 4; row 0 weight 1 is 3") as err:
        load_model(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kind, edit, message", [
    ("pow2-4", lambda a, h: a.update({"l0.w_sign": a["l0.w_sign"][:2], "l0.w_mask": a["l0.w_mask"][:2]}),
     r"pow2-4 weights have 3 plane\(s\), w_sign has shape \(2, 1, 1\)"),
    ("int3", lambda a, h: a.update({"l0.w_sign": a["l0.w_sign"][:1]}),
     r"int3 weights have 3 plane\(s\)"),
    ("ternary", lambda a, h: a.update({"l0.w_mask": np.concatenate([a["l0.w_mask"]] * 2)}),
     r"ternary weights have 1 plane\(s\), w_mask"),
    ("int2", lambda a, h: h["layers"][0].update(weight_kind="int3"), r"int3 weights have 3 plane"),
    ("int2", lambda a, h: a.update({"l0.w_mask": a["l0.w_sign"]}), "w_mask is not allowed for int2"),
    ("pow2-2", lambda a, h: a.pop("l0.w_mask"), "w_mask is required for pow2-2"),
    ("int2", lambda a, h: a.update({"l0.w_sign": a["l0.w_sign"][0]}), "w_sign must be a .planes"),
    ("int2", lambda a, h: h["layers"][0].update(weight_kind="int9"), "unknown weight kind 'int9'"),
])
def test_wrong_planes_in_a_file_are_one_line(tmp_path, kind, edit, message):
    w = random_weights(np.random.default_rng(1), kind, (1, 3))
    path = layer_file(tmp_path, kind, w, edit)
    with pytest.raises(FormatError, match=message) as err:
        load_model(path)
    assert "\n" not in str(err.value) and "fc0" in str(err.value)


@pytest.mark.parametrize("kind, biggest", [("binary", 1), ("ternary", 1), ("pow2-2", 2),
                                           ("pow2-4", 4), ("int2", 3), ("int3", 7), ("int4", 15)])
def test_accumulator_range_uses_the_largest_weight(kind, biggest):
    assert accumulator_range(10, ActType("bipolar"), kind) == (-10 * biggest, 10 * biggest)
    assert accumulator_range(27, ActType("unsigned", 8), kind) == (-27 * 255 * biggest, 27 * 255 * biggest)
    # The extreme accumulator is reached: every weight at the largest magnitude.
    layer = Dense.from_values("fc", np.full((1, 10), biggest), kind)
    assert reference.run_layer(layer, np.ones((1, 10), np.int64), ActType("bipolar"))[0, 0] == 10 * biggest
