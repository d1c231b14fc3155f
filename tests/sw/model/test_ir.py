"""The IR: validation errors name the layer, files round-trip, bad files are refused."""

import io
import json
import pickle
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings

from strategies import model_case
from tritium.hw.errors import FormatError, ModelError
from tritium.sw.model import reference
from tritium.sw.model.ir import ActType, Conv2d, Dense, IntModel, MaxPool2d, load_model, save_model


def small_model():
    conv = Conv2d.from_values("conv0", np.ones((4, 3, 3, 1), np.int8), "binary", padding=1,
                              pad_value=1, thresholds=np.zeros((4, 1), np.int64), out_act="bipolar")
    fc = Dense.from_values("fc1", np.ones((3, 4 * 3 * 3), np.int8), "ternary")
    return IntModel((6, 6, 1), ActType("bipolar"), [conv, MaxPool2d("pool", 2), fc], meta={"k": [1, 2]})


@settings(max_examples=25)
@given(model_case())
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
    arrays["l2.w_sign"] = arrays["l2.w_sign"][:, :0]
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
