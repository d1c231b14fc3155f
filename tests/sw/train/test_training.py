"""Training layers, training runs on the embedded data, checkpoints and the CLI.

The real-data tests train small networks for one or two epochs, export them,
and require PyTorch eval and the integer model to agree on every held-out
image, with the last layer's accumulators mapping exactly onto the logits.
"""

import json
import os
import pickle

import numpy as np
import pytest
import torch

from tritium.hw.errors import FormatError, TritiumError
from tritium.sw.cli.main import main
from tritium.sw.model import reference
from tritium.sw.model.ir import load_model
from tritium.sw.train.admm import AdmmConfig, pretrain_float, train_admm
from tritium.sw.train.data import load_dataset
from tritium.sw.train.export import export_net
from tritium.sw.train.inputs import quantize_input, to_torch
from tritium.sw.train.layers import WEIGHT_LEVELS, QuantConv2d, SignAct, bipolar, quantize_weights
from tritium.sw.train.models import build_net, load_checkpoint, save_checkpoint
from tritium.sw.train.train import TrainConfig, make_net, torch_accumulators, torch_logits, train_net, verify

# ------------------------------------------------------------------ layers


def test_sign_of_zero_is_plus_one_and_ste_is_hardtanh():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0], requires_grad=True)
    y = SignAct()(x)
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1]
    y.sum().backward()
    assert x.grad.tolist() == [0, 1, 1, 1, 1, 1, 0]


def test_binary_weights_straight_through_and_xnor_alpha():
    w = torch.tensor([[0.5, -0.25, 0.0, -1.0]], requires_grad=True)
    q, alpha = quantize_weights(w, "binary", alpha=True)
    assert q.tolist() == [[1, -1, 1, -1]]
    assert alpha.tolist() == [pytest.approx(0.4375)]          # mean |W|
    (q * torch.tensor([[1.0, 2.0, 3.0, 4.0]])).sum().backward()
    assert w.grad.tolist() == [[1, 2, 3, 4]]                   # identity STE
    _, ones = quantize_weights(w, "binary", alpha=False)
    assert ones.tolist() == [1.0]


def test_ternary_weights_follow_twn():
    w = torch.tensor([[0.9, -0.1, 0.05, -0.6, 0.3], [0.0, 0.0, 0.0, 0.0, 0.0]])
    q, alpha = quantize_weights(w, "ternary", alpha=True)
    # delta = 0.7 * mean|W| = 0.7 * 0.39 = 0.273: keep 0.9, -0.6, 0.3.
    assert q.tolist() == [[1, 0, 0, -1, 1], [0, 0, 0, 0, 0]]
    assert alpha[0].item() == pytest.approx((0.9 + 0.6 + 0.3) / 3)
    assert alpha[1].item() == 0.0


def test_conv_pads_with_the_bipolar_value():
    conv = QuantConv2d(1, 1, 3, padding=1, alpha=False)
    conv.weight.data.fill_(1.0)
    x = torch.ones(1, 1, 1, 1)
    assert conv.accumulate(x).item() == 1 - 8               # eight pads of -1
    conv.pad_value = 1
    assert conv.accumulate(x).item() == 9
    first = QuantConv2d(1, 1, 3, padding=1, alpha=False, input_bits=8)
    assert first.pad_value == 0                             # code 0 for pixel inputs


def test_float32_conv_on_integers_is_exact():
    # Guards the exactness assumption against CPU conv algorithms.
    rng = np.random.default_rng(0)
    conv = QuantConv2d(64, 64, 3, padding=1, alpha=False)
    x = torch.tensor(rng.choice([-1.0, 1.0], (4, 64, 16, 16)), dtype=torch.float32)
    got = conv.accumulate(x).double()
    want = torch.nn.functional.conv2d(torch.nn.functional.pad(x.double(), (1, 1, 1, 1), value=-1.0),
                                      bipolar(conv.weight.detach()).double())
    assert torch.equal(got, want)
    pixels = QuantConv2d(3, 8, 3, alpha=False, input_bits=8)
    x = torch.tensor(rng.integers(0, 256, (2, 3, 32, 32)), dtype=torch.float32)
    want = torch.nn.functional.conv2d(x.double(), bipolar(pixels.weight.detach()).double())
    assert torch.equal(pixels.accumulate(x).double(), want)


def test_cnv_and_lfc_build_for_their_inputs():
    cnv = build_net("cnv", (32, 32, 3), 10, weights="ternary")
    assert sum(isinstance(m, QuantConv2d) for m in cnv.modules()) == 6
    lfc = build_net("lfc", (28, 28, 1), 10)
    assert lfc.fc0.out_features == 1024
    with pytest.raises(TritiumError, match="too small"):
        build_net("cnv", (28, 28, 1), 10)
    with pytest.raises(TritiumError, match="names 2 layers"):
        build_net("tfc", (28, 28, 1), 10, weights="binary,ternary")


# ------------------------------------------------------------------ real data

REAL_CASES = [
    ("tfc", "digits", "binary", 2),
    ("sfc", "digits", "binary", 2),
    ("sfc", "digits", "ternary", 2),
    ("tfc", "mnist5k", "binary", 1),
    ("sfc", "mnist5k", "ternary", 1),
    ("cnn", "mnist5k", "binary", 1),
    ("cnn", "mnist5k", "ternary", 1),
]


@pytest.mark.parametrize("arch, dataset, weights, epochs", REAL_CASES)
def test_trained_network_exports_exactly(arch, dataset, weights, epochs):
    net = make_net(arch, dataset, weights, seed=3)
    train_net(net, dataset, TrainConfig(epochs=epochs, seed=3), show_progress=False)
    model = export_net(net)
    result = verify(net, model, dataset)
    assert result["agreement"] == 1.0
    assert result["logits_exact"]
    assert result["accuracy"] == result["accuracy_integer"]
    assert result["accuracy"] > 0.6                          # it learned something
    values = quantize_input(net.input_quant, load_dataset(dataset).x_test)
    np.testing.assert_array_equal(torch_accumulators(net, values), reference.run(model, values, batch=256))
    # The folded eval path is the ordinary module-by-module eval up to float rounding.
    with torch.no_grad():
        plain = torch.nn.Sequential.forward(net, to_torch(values)).numpy()
    logits = torch_logits(net, values)
    np.testing.assert_allclose(plain, logits, atol=1e-3)
    assert (plain.argmax(axis=1) == logits.argmax(axis=1)).mean() >= 0.99


@pytest.mark.parametrize("kind", WEIGHT_LEVELS)
@pytest.mark.parametrize("act_bits", [None, 2, 3, 4])
def test_every_kind_and_activation_width_exports_exactly(kind, act_bits):
    net = make_net("tfc", "digits", kind, seed=2, act_bits=act_bits)
    train_net(net, "digits", TrainConfig(epochs=1, seed=2), show_progress=False)
    result = verify(net, export_net(net), "digits")
    assert result["agreement"] == 1.0 and result["logits_exact"] is True
    assert result["accuracy"] > 0.5


@pytest.mark.parametrize("kind, act_bits, method", [("pow2-4", 3, "ste"), ("int3", 2, "admm")])
def test_cnn_with_kbit_activations_exports_exactly(kind, act_bits, method):
    # Convolutions padding the k-bit codes with 0, max-pool over codes, 8-bit pixel input.
    net = make_net("cnn", "digits", kind, seed=4, act_bits=act_bits, method=method)
    config = TrainConfig(epochs=1, seed=4)
    if method == "admm":
        pretrain_float(net, "digits", config, show_progress=False)
        train_admm(net, "digits", AdmmConfig(epochs=1, seed=4), show_progress=False)
    else:
        train_net(net, "digits", config, show_progress=False)
    model = export_net(net)
    assert [str(layer.out_act) for layer in model.layers if hasattr(layer, "thresholds")][:3] == \
        [f"uint{act_bits}"] * 3
    result = verify(net, model, "digits")
    assert result["agreement"] == 1.0 and result["logits_exact"] is True
    assert result["accuracy"] > 0.5


def test_training_is_deterministic_for_a_seed():
    def state(seed):
        net = make_net("tfc", "digits", "binary", seed=seed)
        train_net(net, "digits", TrainConfig(epochs=1, seed=seed), show_progress=False)
        return net.state_dict()

    a, b, c = state(7), state(7), state(8)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    latent = [v for k, v in a.items() if k.endswith(".weight") and k.startswith("fc")]
    assert all(float(v.abs().max()) <= 1.0 for v in latent)  # BinaryConnect clipping


def test_wrong_dataset_shape_is_refused():
    net = make_net("tfc", "digits", "binary")
    with pytest.raises(TritiumError, match=r"takes \(8, 8, 1\) inputs but mnist5k images are \(28, 28, 1\)"):
        train_net(net, "mnist5k", TrainConfig(epochs=1), show_progress=False)


# ------------------------------------------------------------------ checkpoints


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tfc.pt"
    net = make_net("tfc", "digits", "ternary", seed=1)
    train_net(net, "digits", TrainConfig(epochs=1, seed=1), show_progress=False)
    save_checkpoint(net, path, extra={"dataset": "digits"})
    return net, path


def test_checkpoint_round_trip_is_weights_only(trained):
    net, path = trained
    loaded, extra = load_checkpoint(path)
    assert extra["dataset"] == "digits"
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in net.state_dict().items())
    torch.load(path, weights_only=True)  # plain tensors and values only


def one_line_error(path):
    with pytest.raises(FormatError) as e:
        load_checkpoint(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_truncated_and_corrupt_checkpoints(trained, tmp_path):
    _, path = trained
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    assert "truncated or corrupt" in one_line_error(tmp_path / "cut.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00junk" * 100)
    assert "not a tritium checkpoint" in one_line_error(tmp_path / "junk.pt")
    assert "no such file" in one_line_error(tmp_path / "missing.pt")
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    assert "no 'tritium-checkpoint' format tag" in one_line_error(tmp_path / "other.pt")


class _RunsCode:
    """Unpickling this calls a function: what weights-only loading must refuse."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_pickle_carrying_code_is_refused_and_never_runs(tmp_path, writer):
    marker = str(tmp_path / "code-ran")
    path = tmp_path / "evil.pt"
    if writer == "torch":
        torch.save({"format": "tritium-checkpoint", "payload": _RunsCode(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(_RunsCode(marker), protocol=2))
    assert "refused to load: the file carries pickled code" in one_line_error(path)
    assert not os.path.exists(marker)


def test_checkpoint_with_wrong_shapes(trained, tmp_path):
    blob = torch.load(trained[1], weights_only=True)
    blob["state_dict"]["fc1.weight"] = torch.zeros(3, 3)
    torch.save(blob, tmp_path / "shapes.pt")
    assert "fc1.weight has shape (3, 3), the network needs (64, 64)" in one_line_error(tmp_path / "shapes.pt")
    blob["state_dict"].pop("fc1.weight")
    torch.save(blob, tmp_path / "missing.pt")
    assert "missing: fc1.weight" in one_line_error(tmp_path / "missing.pt")


# ------------------------------------------------------------------ CLI


def test_cli_train_and_export(tmp_path, capsys):
    ckpt, out = tmp_path / "m.pt", tmp_path / "m.npz"
    rc = main(["train", "--arch", "tfc", "--dataset", "digits", "--epochs", "1", "--seed", "2",
                   "-o", str(ckpt), "--json", "-q"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert result["agreement"] == 1.0 and result["logits_exact"] is True
    assert {"accuracy", "accuracy_integer", "agreement"} <= set(result)
    rc = main(["export", str(ckpt), "-o", str(out), "--verify", "--json", "-q"])
    assert rc == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["accuracy_integer"] == result["accuracy_integer"]
    model = load_model(out)
    assert model.meta["input_quant"] == {"kind": "binarise", "threshold": 128}
    assert model.meta["dataset"] == "digits"


def test_cli_admm_from_scratch_and_from_a_float_checkpoint(tmp_path, capsys):
    common = ["--arch", "tfc", "--dataset", "digits", "--epochs", "1", "--json", "-q"]
    assert main(["train", *common, "--weights", "pow2-4", "--method", "admm", "--act-bits", "2",
                 "-o", str(tmp_path / "a.pt")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["method"] == "admm" and result["act_bits"] == 2
    assert result["agreement"] == 1.0 and result["logits_exact"] is True
    net, extra = load_checkpoint(tmp_path / "a.pt")
    assert net.config["method"] == "admm" and net.config["act_bits"] == 2
    assert extra["rho"] == 1.0 and extra["pretrain_epochs"] == 1
    assert main(["export", str(tmp_path / "a.pt"), "-o", str(tmp_path / "a.npz"), "--verify", "-q"]) == 0
    model = load_model(tmp_path / "a.npz")
    assert [layer.weight_kind for layer in model.layers] == ["pow2-4"] * 4
    assert [layer.out_act and str(layer.out_act) for layer in model.layers] == ["uint2"] * 3 + [None]
    assert main(["train", *common, "--weights", "float", "-o", str(tmp_path / "f.pt")]) == 0
    capsys.readouterr()
    assert main(["train", *common, "--weights", "int3", "--method", "admm", "--per-layer",
                 "--init", str(tmp_path / "f.pt"), "-o", str(tmp_path / "b.pt")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["agreement"] == 1.0 and result["logits_exact"] is True
    net, extra = load_checkpoint(tmp_path / "b.pt")
    assert extra["init"] == str(tmp_path / "f.pt") and net.config["per_channel"] is False
    scales = [layer.quantized()[1] for layer in (net.fc0, net.fc1)]
    assert all(len(set(s.tolist())) == 1 for s in scales)      # one scale per layer


def test_cli_float_baseline_has_no_integer_model(tmp_path, capsys):
    rc = main(["train", "--arch", "tfc", "--dataset", "digits", "--weights", "float", "--epochs", "1",
                   "-o", str(tmp_path / "f.pt"), "--json", "-q"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy"] > 0.5 and result["agreement"] is None
    rc = main(["export", str(tmp_path / "f.pt"), "-o", str(tmp_path / "f.npz")])
    assert rc == 1
    err = capsys.readouterr().err.strip()
    assert err == ("tritium: error: layer fc0: float weights; the hardware runs quantised weights "
                   "(binary, ternary, pow2-2, pow2-4, int2, int3, int4)")
    assert not (tmp_path / "f.npz").exists()


@pytest.mark.parametrize("argv, words", [
    (["export", "{tmp}/nothing.pt", "-o", "{tmp}/x.npz"], "no such file"),
    (["train", "--arch", "nope", "-o", "{tmp}/x.pt"], "invalid choice"),
    (["train", "--arch", "tfc", "--weights", "quaternary", "-o", "{tmp}/x.pt"], "unknown weight kind"),
    (["train", "--arch", "cnv", "--dataset", "digits", "-o", "{tmp}/x.pt"], "too small"),
    (["train", "--arch", "tfc", "--weights", "pow2-3", "-o", "{tmp}/x.pt"], "unknown weight kind 'pow2-3'"),
    (["train", "--arch", "tfc", "--method", "sgd", "-o", "{tmp}/x.pt"], "invalid choice"),
    (["train", "--arch", "tfc", "--act-bits", "5", "-o", "{tmp}/x.pt"], "invalid choice"),
    (["train", "--arch", "tfc", "--act-bits", "1", "-o", "{tmp}/x.pt"], "invalid choice"),
    (["train", "--arch", "tfc", "--weights", "float", "--act-bits", "2", "-o", "{tmp}/x.pt"],
     "float weights are the ReLU baseline: they take neither ADMM nor k-bit activations"),
    (["train", "--arch", "tfc", "--weights", "float", "--method", "admm", "-o", "{tmp}/x.pt"],
     "float weights are the ReLU baseline: they take neither ADMM nor k-bit activations"),
    (["train", "--arch", "tfc", "--init", "{tmp}/f.pt", "-o", "{tmp}/x.pt"], "--init needs --method admm"),
    (["train", "--arch", "tfc", "--pretrain-epochs", "2", "-o", "{tmp}/x.pt"],
     "--pretrain-epochs needs --method admm"),
    (["train", "--arch", "tfc", "--method", "admm", "--init", "{tmp}/f.pt", "--pretrain-epochs", "2",
      "-o", "{tmp}/x.pt"], "--pretrain-epochs does not apply"),
    (["train", "--arch", "tfc", "--method", "admm", "--rho", "0", "-o", "{tmp}/x.pt"], "--rho and --admm-lr"),
    (["train", "--arch", "tfc", "--method", "admm", "--init", "{tmp}/none.pt", "-o", "{tmp}/x.pt"],
     "no such file"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, argv, words):
    argv = [a.format(tmp=tmp_path) for a in argv]
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse usage errors
        rc = e.code
    assert rc != 0
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err and "Traceback" not in err


def test_cli_export_verify_on_the_wrong_dataset_writes_nothing(trained, tmp_path, capsys):
    _, ckpt = trained
    out = tmp_path / "m.npz"
    rc = main(["export", str(ckpt), "-o", str(out), "--verify", "--dataset", "mnist5k", "-q"])
    assert rc == 1
    err = capsys.readouterr().err.strip()
    assert err == "tritium: error: the model takes (8, 8, 1) inputs but mnist5k images are (28, 28, 1)"
    assert not out.exists()
