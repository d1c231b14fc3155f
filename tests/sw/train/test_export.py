"""Export: PyTorch eval == the exported integer model, bit for bit.

Randomised networks (random shapes, weight kinds, alpha, bias, input
quantisation and BatchNorm statistics with negative and zero gamma) must give
the same activations after every block, the same last-layer accumulators and
logits that the output affine map reproduces exactly. Bad networks must be
refused with one line naming the layer.
"""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from tritium.hw.errors import ModelError, TritiumError
from tritium.sw.model import reference
from tritium.sw.model import topologies as topo
from tritium.sw.model.ir import ActType, Dense, IntModel, MaxPool2d, accumulator_range, load_model, save_model
from tritium.sw.train.export import export_net
from tritium.sw.train.inputs import quantize_input, to_torch
from tritium.sw.train.layers import ACT_BITS, METHODS, WEIGHT_LEVELS, Net, QuantLinear, SignAct
from tritium.sw.train.models import build_net


#: Every weight kind the exporter writes.
EXPORT_KINDS = tuple(WEIGHT_LEVELS)


def randomize_batchnorm(net, rng, tie_mode=False):
    """Random running statistics and affine parameters, with zero and negative gamma."""
    for module in net.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = module.num_features
            gamma = rng.normal(0, 1, c)
            gamma[rng.random(c) < 0.15] = 0.0
            module.weight.data = torch.tensor(gamma, dtype=torch.float32)
            module.running_var = torch.tensor(rng.uniform(0.01, 3, c), dtype=torch.float32)
            if tie_mode:
                # Means on integers and beta = 0: f(acc) == 0 exactly at some accumulators.
                module.running_mean = torch.tensor(rng.integers(-6, 7, c), dtype=torch.float32)
                module.bias.data = torch.zeros(c)
                module.running_var = torch.ones(c) - module.eps
            else:
                module.running_mean = torch.tensor(rng.normal(0, 2, c), dtype=torch.float32)
                module.bias.data = torch.tensor(rng.normal(0, 0.5, c), dtype=torch.float32)


def spread_codes(net, rng):
    """Hidden BatchNorms centred on [0, 1] with small gammas: k-bit codes take many values."""
    norms = [m for m in net.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))][:-1]
    for module in norms:
        c = module.num_features
        module.weight.data *= torch.tensor(rng.uniform(0.05, 0.5, c), dtype=torch.float32)
        module.bias.data = torch.tensor(rng.uniform(0, 1, c), dtype=torch.float32)


@st.composite
def random_net(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    quant = draw(st.sampled_from([{"kind": "binarise", "threshold": 128}, {"kind": "uint", "bits": 8},
                                  {"kind": "uint", "bits": 3}]))
    h = draw(st.integers(3, 9))
    c = draw(st.integers(1, 3))
    specs, size = [], h
    for _ in range(draw(st.integers(0, 2))):
        k = draw(st.integers(1, 3))
        pad = draw(st.integers(0, 1))
        stride = draw(st.integers(1, 2))
        if size + 2 * pad < k:
            break
        specs.append(topo.Conv(draw(st.integers(1, 12)), k, stride, pad))
        size = (size + 2 * pad - k) // stride + 1
        if size >= 2 and draw(st.booleans()):
            specs.append(topo.Pool(2))
            size //= 2
    for _ in range(draw(st.integers(0, 2))):
        specs.append(topo.Dense(draw(st.integers(1, 20))))
    specs.append(topo.Dense(topo.CLASSES))
    n_weight = sum(not isinstance(s, topo.Pool) for s in specs)
    kinds = [draw(st.sampled_from(EXPORT_KINDS)) for _ in range(n_weight)]
    alpha, bias, tie = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    method, per_channel = draw(st.sampled_from(METHODS)), draw(st.booleans())
    act_bits = draw(st.sampled_from([None, *ACT_BITS]))
    n_classes = draw(st.integers(2, 7))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = build_net("random", (h, h, c), n_classes, weights=kinds, alpha=alpha,
                        input_quant=quant, specs=specs, bias=bias, method=method, act_bits=act_bits,
                        per_channel=per_channel)
        for p in net.parameters():
            if p.dim() > 1:
                p.data.uniform_(-1, 1)
            elif bias:
                p.data.normal_(0, 0.5)
    randomize_batchnorm(net, rng, tie_mode=tie)
    if act_bits is not None and not tie:
        spread_codes(net, rng)
    images = rng.integers(0, 256, (draw(st.integers(1, 12)), h, h, c)).astype(np.uint8)
    return net.eval(), images


def torch_vs_integer(net, images):
    model = export_net(net)
    values = quantize_input(net.input_quant, images)
    blocks = net.run_blocks(to_torch(values))
    accs = net.run_blocks(to_torch(values), accumulators=True)
    ref = reference.run(model, values, return_all=True)
    # One reference output per torch block: the last IR layer of each block.
    ends = [i for i, layer in enumerate(model.layers)
            if i + 1 == len(model.layers) or not isinstance(model.layers[i + 1], MaxPool2d)]
    assert len(ends) == len(blocks)
    return model, values, blocks, accs, [ref[i] for i in ends]


def nhwc(t):
    a = t.numpy()
    return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a


@given(random_net())
def test_random_networks_match_bit_for_bit(case):
    net, images = case
    model, values, blocks, accs, ref = torch_vs_integer(net, images)
    for got, want in zip(blocks[:-1], ref[:-1]):  # every hidden block's +-1 or k-bit activations
        np.testing.assert_array_equal(nhwc(got).astype(np.int64), want)
    acc = ref[-1]
    np.testing.assert_array_equal(accs[-1].numpy().astype(np.int64), acc)
    logits = blocks[-1].numpy()
    np.testing.assert_array_equal(reference.output_logits(model, acc), logits)  # exact, not close
    np.testing.assert_array_equal(reference.predict(model, values), logits.argmax(axis=1))


def test_file_round_trip_keeps_predictions(tmp_path):
    rng = np.random.default_rng(5)
    torch.manual_seed(5)
    net = build_net("cnn", (8, 8, 1), 10, weights="ternary")
    randomize_batchnorm(net, rng)
    net.eval()
    model = export_net(net)
    save_model(model, tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    x = quantize_input(net.input_quant, rng.integers(0, 256, (20, 8, 8, 1)).astype(np.uint8))
    assert loaded.meta["output_affine"] == model.meta["output_affine"]
    assert loaded.meta["input_quant"] == {"kind": "uint", "bits": 8}
    np.testing.assert_array_equal(reference.predict(loaded, x), reference.predict(model, x))


def single_layer_net(gamma, mean, beta, var=1.0, weights=((1, -1, 1),), alpha=False):
    """fc (3 bipolar inputs) -> BatchNorm -> sign -> fc (raw)."""
    w = torch.tensor(weights, dtype=torch.float32)
    fc = QuantLinear(3, w.shape[0], alpha=alpha)
    fc.weight.data = w.clone()
    bn = nn.BatchNorm1d(w.shape[0])
    bn.weight.data = torch.tensor(gamma, dtype=torch.float32)
    bn.bias.data = torch.tensor(beta, dtype=torch.float32)
    bn.running_mean = torch.tensor(mean, dtype=torch.float32)
    bn.running_var = torch.full((w.shape[0],), var) - bn.eps
    out = QuantLinear(w.shape[0], 2, alpha=False)
    out.weight.data = torch.ones(2, w.shape[0])
    return Net([("flatten", nn.Flatten()), ("fc0", fc), ("bn0", bn), ("act0", SignAct()), ("fc1", out)], (1, 1, 3),
               {"kind": "binarise", "threshold": 128}).eval()


def test_worked_example_thresholds():
    # docs/training.md: acc in [-3, 3]; gamma 2, mean 0.5, beta -1 ->
    # y = (acc - 0.5) * 2 - 1 >= 0  <=>  acc >= 1  -> T = 1.
    # gamma -2 (same mean, beta): y >= 0 <=> acc <= 0 <=> -acc >= 0: row negated, T = 0.
    # gamma 0: y = beta; beta -1 -> never (T = hi + 1 = 4); beta 0.5 -> always (T = lo = -3).
    net = single_layer_net(gamma=[2.0, -2.0, 0.0, 0.0], mean=[0.5] * 4, beta=[-1.0, -1.0, -1.0, 0.5],
                           weights=[[1, -1, 1]] * 4)
    model = export_net(net)
    fc = model.layers[0]
    assert fc.thresholds[:, 0].tolist() == [1, 0, 4, -3]
    assert model.meta["negated_rows"] == {"fc0": 1}
    np.testing.assert_array_equal(fc.weight_values(), [[1, -1, 1], [-1, 1, -1], [1, -1, 1], [1, -1, 1]])
    lo, hi = accumulator_range(3, ActType("bipolar"), "binary")
    assert (lo, hi) == (-3, 3)
    # Every input pattern: the hidden activations agree.
    x = np.array([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)]).reshape(8, 1, 1, 3)
    torch_hidden = net.run_blocks(to_torch(x))[0].numpy()
    np.testing.assert_array_equal(reference.run(model, x, return_all=True)[0], torch_hidden)


def test_threshold_exactly_on_an_accumulator():
    # y = (acc - 1) * 1 + 0 is exactly 0 at acc = 1: sign(0) = +1, so T = 1, not 2.
    net = single_layer_net(gamma=[1.0], mean=[1.0], beta=[0.0])
    assert export_net(net).layers[0].thresholds[0, 0] == 1
    # Negated: y = (acc - 1) * -1 >= 0 <=> acc <= 1 <=> -acc >= -1.
    net = single_layer_net(gamma=[-1.0], mean=[1.0], beta=[0.0])
    assert export_net(net).layers[0].thresholds[0, 0] == -1


def test_predict_without_affine_is_argmax_of_accumulators():
    w = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, 1]])
    model = IntModel((3,), ActType("bipolar"), [Dense.from_values("fc", w, "binary")])
    x = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, 1]])
    np.testing.assert_array_equal(reference.predict(model, x), [0, 1, 2])
    # An affine map that reverses the order changes the prediction.
    model.meta["output_affine"] = {"dtype": "float32", "scale": [-1.0, -1.0, -1.0], "offset": [0, 0, 0]}
    np.testing.assert_array_equal(reference.predict(model, x), [1, 2, 1])
    model.meta["output_affine"] = {"dtype": "float32", "scale": [1.0], "offset": [0.0]}
    with pytest.raises(ModelError, match="one per output channel"):
        reference.predict(model, x)


# ------------------------------------------------------------------ refusals

def small_net(**kw):
    torch.manual_seed(0)
    return build_net("tfc", (4, 4, 1), 3, **kw).eval()


def with_module(net, after, name, module):
    """A copy of ``net``'s module list with ``module`` inserted after module ``after``."""
    modules = []
    for n, m in net.named_children():
        modules.append((n, m))
        if n == after:
            modules.append((name, module))
    return Net(modules, net.input_shape, net.input_quant).eval()


def one_line(excinfo):
    msg = str(excinfo.value)
    assert "\n" not in msg and msg
    return msg


def test_unsupported_layer_is_refused_by_name():
    net = with_module(small_net(), "bn1", "drop1", nn.Dropout(0.1))
    with pytest.raises(TritiumError) as e:
        export_net(net)
    assert "layer drop1: unsupported layer type Dropout" in one_line(e)


@pytest.mark.parametrize("make, words", [
    (lambda: small_net(weights="binary,float,binary,binary"), "layer fc1: float weights"),
    (lambda: with_module(small_net(), "act2", "relu2", nn.ReLU()), "layer relu2: a second activation"),
    (lambda: Net([(n, nn.ReLU() if n == "act2" else m) for n, m in small_net().named_children()],
                 (4, 4, 1), {"kind": "binarise", "threshold": 128}).eval(),
     "layer fc2: relu activation; the hardware thresholds to a sign"),
])
def test_float_weights_and_relu_are_refused(make, words):
    with pytest.raises(TritiumError) as e:
        export_net(make())
    assert words in one_line(e)


def test_pool_before_sign_is_refused():
    net = Net([("conv0", build_net("cnn", (8, 8, 1), 3)[0]), ("pool0", nn.MaxPool2d(2)),
               ("act0", SignAct())], (8, 8, 1), {"kind": "uint", "bits": 8}).eval()
    with pytest.raises(TritiumError) as e:
        export_net(net)
    assert "layer pool0: max-pool before the activation" in one_line(e)


def test_wrong_shapes_are_refused():
    net = small_net()
    with pytest.raises(TritiumError) as e:
        export_net(net, input_shape=(5, 5, 1))
    assert "layer fc0: expects 16 inputs, gets shape (25,)" in one_line(e)
    with pytest.raises(TritiumError) as e:
        export_net(net, input_quant={"kind": "uint", "bits": 8})
    assert "layer fc0: built for bipolar inputs but receives uint8 values" in one_line(e)


@pytest.mark.parametrize("where", ["fc1.weight", "bn1.running_var", "bn2.weight", "bn3.running_mean"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_parameters_are_refused(where, value):
    net = small_net()
    net.state_dict()[where].view(-1)[0] = value
    with pytest.raises(TritiumError) as e:
        export_net(net)
    assert f"layer {where.split('.')[0].replace('bn', 'fc')}: " in one_line(e)
    assert "non-finite" in str(e.value)


def test_export_leaves_training_mode_alone():
    net = small_net().train()
    export_net(net)
    assert net.training


@pytest.mark.parametrize("arch, shape, weights", [
    ("cnv", (32, 32, 3), "binary,ternary,binary,ternary,binary,ternary,binary,ternary,binary"),
    ("lfc", (28, 28, 1), "ternary"),
])
def test_full_size_topologies_export_exactly(arch, shape, weights):
    rng = np.random.default_rng(11)
    torch.manual_seed(11)
    net = build_net(arch, shape, 10, weights=weights)
    randomize_batchnorm(net, rng)
    images = rng.integers(0, 256, (3,) + shape).astype(np.uint8)
    model, values, blocks, accs, ref = torch_vs_integer(net.eval(), images)
    for got, want in zip(blocks[:-1], ref[:-1]):
        np.testing.assert_array_equal(nhwc(got).astype(np.int64), want)
    np.testing.assert_array_equal(reference.output_logits(model, ref[-1]), blocks[-1].numpy())
