"""Weight quantisers (projection onto levels, DoReFa), k-bit activations, ADMM.

The quantisers are checked against independent formulas; the projection's
alternating steps never increase ``||V - alpha Q||``; ADMM shrinks the
constraint gap ``||W - G||``; k-bit thresholds are checked on a worked example.
Export of every weight kind and activation width against PyTorch is in
``test_export.py`` (random networks) and ``test_training.py`` (digits).
"""

import numpy as np
import pytest
import torch
from torch import nn

from tritium.hw.errors import TritiumError
from tritium.sw.model import reference
from tritium.sw.model import topologies as topo
from tritium.sw.train.admm import (RHO_STEP_LIMIT, AdmmConfig, AdmmState, pretrain_float, project, set_relaxed,
                                   train_admm)
from tritium.sw.train.export import export_net
from tritium.sw.train.inputs import to_torch
from tritium.sw.train.layers import (METHODS, WEIGHT_LEVELS, Net, QuantAct, QuantLinear, dorefa_weights,
                                     nearest_level, project_to_levels, quantize_weights)
from tritium.sw.train.models import build_net, load_checkpoint, save_checkpoint
from tritium.sw.train.train import TrainConfig, evaluate, make_net, verify

KINDS = tuple(WEIGHT_LEVELS)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Small tensors: one thread (as training uses) avoids waiting on a busy second core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def latent(seed, shape=(6, 3, 3, 3), scale=0.3):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


# ------------------------------------------------------------------ levels and scales


def test_levels_of_every_kind():
    assert WEIGHT_LEVELS["pow2-2"] == (-2, -1, 0, 1, 2)
    assert WEIGHT_LEVELS["pow2-4"] == (-4, -2, -1, 0, 1, 2, 4)
    assert WEIGHT_LEVELS["int2"] == (-3, -1, 1, 3)
    assert WEIGHT_LEVELS["int4"] == tuple(range(-15, 16, 2))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("per_channel", [True, False])
def test_quantised_weights_are_integer_levels_with_a_positive_scale(kind, method, per_channel):
    w = latent(1)
    q, scale = quantize_weights(w, kind, alpha=True, method=method, per_channel=per_channel)
    assert q.shape == w.shape and scale.shape == (6,)
    assert set(q.unique().tolist()) <= set(WEIGHT_LEVELS[kind])
    assert bool((scale > 0).all())
    if not per_channel and (method == "admm" or kind not in ("binary", "ternary")):
        assert len(set(scale.tolist())) == 1                  # one scale for the layer
    if kind.startswith("int") and method == "ste":
        assert scale.tolist() == pytest.approx([1 / ((1 << int(kind[3:])) - 1)] * 6)
    elif method == "admm" or kind.startswith("pow2"):
        rows = (lambda t: t.reshape(6, -1)) if per_channel else (lambda t: t.reshape(1, -1))
        v, qr = rows(w).double(), rows(q.detach()).double()
        want = ((v * qr).sum(1) / (qr * qr).sum(1)).expand(6)   # alpha = V^T Q / Q^T Q
        assert scale.double().tolist() == pytest.approx(want.tolist(), rel=1e-5)


def test_nearest_level_and_ties():
    x = torch.tensor([-9.0, -3.1, -1.5, -0.5, -0.49, 0.0, 0.7, 1.5, 2.9, 3.0, 9.0])
    assert nearest_level(x, WEIGHT_LEVELS["pow2-4"]).tolist() == [-4, -4, -2, -1, 0, 0, 1, 1, 2, 2, 4]
    assert nearest_level(x, WEIGHT_LEVELS["int2"]).tolist() == [-3, -3, -1, -1, -1, -1, 1, 1, 3, 3, 3]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("per_channel", [True, False])
def test_projection_never_increases_the_error(kind, per_channel):
    v = latent(2, (8, 40), scale=1.0) * torch.linspace(0.1, 2.0, 40)   # uneven magnitudes
    errors = []
    for rounds in range(1, 9):
        q, alpha = project_to_levels(v, WEIGHT_LEVELS[kind], per_channel, rounds=rounds)
        errors.append(float((v - alpha[:, None] * q).pow(2).sum()))
    assert all(b <= a * (1 + 1e-6) for a, b in zip(errors, errors[1:])), errors
    # At the end each step is a fixed point: Q is the nearest level of V / alpha ...
    q, alpha = project_to_levels(v, WEIGHT_LEVELS[kind], per_channel)
    final = float((v - alpha[:, None] * q).pow(2).sum())
    assert final <= errors[-1] * (1 + 1e-6)
    assert torch.equal(q, nearest_level(v / alpha[:, None], WEIGHT_LEVELS[kind]))
    # ... and no single scale does better for this Q (least squares).
    for factor in (0.9, 0.99, 1.01, 1.1):
        assert final <= float((v - factor * alpha[:, None] * q).pow(2).sum()) * (1 + 1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_projection_of_a_point_of_the_set_is_that_point(kind):
    g = torch.tensor(np.random.default_rng(3).choice(WEIGHT_LEVELS[kind], (5, 30)), dtype=torch.float32)
    g[:, 0] = max(WEIGHT_LEVELS[kind])                   # every row reaches the top level
    g = g * torch.tensor([[0.5], [0.1], [2.0], [0.03], [1.0]])
    q, alpha = project_to_levels(g, WEIGHT_LEVELS[kind])
    torch.testing.assert_close(q * alpha[:, None], g, rtol=1e-6, atol=0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", METHODS)
def test_an_all_zero_row_quantises_to_levels_and_exports(kind, method):
    net = build_net("small", (1, 1, 3), 2, weights=kind, method=method, alpha=False,
                    input_quant={"kind": "binarise", "threshold": 128},
                    specs=[topo.Dense(2), topo.Dense(topo.CLASSES)]).eval()
    net.fc0.weight.data[0] = 0.0
    q, scale = net.fc0.quantized()
    assert set(q[0].tolist()) <= set(WEIGHT_LEVELS[kind])
    if method == "admm" or kind.startswith("pow2"):
        assert scale[0].item() == 0.0                         # the projection of 0 is 0
    x = np.array([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)]).reshape(8, 1, 1, 3)
    model = export_net(net)
    np.testing.assert_array_equal(reference.run(model, x, return_all=True)[0],
                                  net.run_blocks(to_torch(x))[0].numpy())


@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("per_channel", [False, True])
def test_dorefa_weights_follow_the_paper(bits, per_channel):
    w = latent(4, (5, 17), scale=1.5).requires_grad_(True)
    q = dorefa_weights(w, bits, per_channel)
    n = (1 << bits) - 1
    t = np.tanh(w.detach().double().numpy())
    top = np.abs(t).max(axis=1, keepdims=True) if per_channel else np.abs(t).max()
    w_q = 2 * np.round(n * (t / (2 * top) + 0.5)) / n - 1      # DoReFa-Net's k-bit weights
    np.testing.assert_allclose(q.detach().numpy() / n, w_q, atol=1e-6)
    assert set(q.detach().unique().tolist()) <= set(WEIGHT_LEVELS[f"int{bits}"])
    assert q.detach().abs().max().item() == n                 # the largest |tanh| reaches the top
    (q * torch.arange(17.0)).sum().backward()                 # straight through the rounding
    assert bool(torch.isfinite(w.grad).all()) and bool((w.grad != 0).any())


def test_quant_act_codes_and_gradient():
    x = torch.tensor([-0.5, 0.0, 0.1, 0.17, 0.5, 0.9, 1.0, 1.5], requires_grad=True)
    y = QuantAct(2)(x)
    assert y.tolist() == [0, 0, 0, 1, 2, 3, 3, 3]             # round(clip(x, 0, 1) * 3), half to even
    y.sum().backward()
    assert x.grad.tolist() == [0, 3, 3, 3, 3, 3, 3, 0]
    assert QuantAct(4)(torch.tensor([0.5, 1.0])).tolist() == [8, 15]
    with pytest.raises(TritiumError, match="activation bits must be one of 2, 3, 4"):
        QuantAct(5)


# ------------------------------------------------------------------ k-bit thresholds


def kbit_net(gamma, beta, bits=2):
    """fc (3 bipolar inputs, weights [1, -1, 1]) -> BatchNorm (mean 0, var 1) -> k-bit codes -> fc."""
    m = len(gamma)
    fc = QuantLinear(3, m, alpha=False)
    fc.weight.data = torch.tensor([[1.0, -1.0, 1.0]] * m)
    bn = nn.BatchNorm1d(m)
    bn.weight.data = torch.tensor(gamma)
    bn.bias.data = torch.tensor(beta)
    bn.running_mean = torch.zeros(m)
    bn.running_var = torch.ones(m) - bn.eps
    out = QuantLinear(m, 2, alpha=False, input_bits=bits)
    out.weight.data = torch.ones(2, m)
    return Net([("flatten", nn.Flatten()), ("fc0", fc), ("bn0", bn), ("act0", QuantAct(bits)),
                ("fc1", out)], (1, 1, 3), {"kind": "binarise", "threshold": 128}).eval()


def test_kbit_thresholds_worked_example():
    # y = 0.25 acc + 0.5; code = round(clip(y, 0, 1) * 3) over acc = -3..3 is 0 0 1 2 2 3 3:
    # code >= 1 from acc -1, >= 2 from 0, >= 3 from 2. gamma -0.25: y = -0.25 acc + 0.5, the row is
    # negated and the same thresholds hold for -acc. gamma 0: y = beta everywhere.
    net = kbit_net([0.25, -0.25, 0.0, 0.0], [0.5, 0.5, 0.5, -1.0])
    model = export_net(net)
    fc = model.layers[0]
    assert str(fc.out_act) == "uint2"
    assert fc.thresholds.tolist() == [[-1, 0, 2], [-1, 0, 2], [-3, -3, 4], [4, 4, 4]]
    assert model.meta["negated_rows"] == {"fc0": 1}
    np.testing.assert_array_equal(fc.weight_values()[1], [-1, 1, -1])
    x = np.array([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)]).reshape(8, 1, 1, 3)
    hidden = net.run_blocks(to_torch(x))[0].numpy()
    np.testing.assert_array_equal(reference.run(model, x, return_all=True)[0], hidden)
    assert set(hidden[:, 0].tolist()) == {0, 1, 2, 3}


# ------------------------------------------------------------------ ADMM


def small_admm_net(kind="pow2-4", seed=0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_net("small", (4, 4, 1), 3, weights=kind, method="admm",
                         input_quant={"kind": "binarise", "threshold": 128},
                         specs=[topo.Dense(12), topo.Dense(topo.CLASSES)])


@pytest.mark.parametrize("kind", ["pow2-4", "int3", "ternary"])
def test_admm_reduces_the_constraint_gap(kind):
    net = small_admm_net(kind)
    gen = torch.Generator().manual_seed(1)
    x = torch.where(torch.rand(64, 1, 4, 4, generator=gen) < 0.5, -1.0, 1.0)
    y = torch.randint(0, 3, (64,), generator=gen)
    set_relaxed(net, True)
    net.train()
    state = AdmmState(net, rho=5.0)
    gaps = [state.gap()]
    for _ in range(200):
        state.extragradient_step(lambda: nn.functional.cross_entropy(net(x), y), lr=0.05)
        state.update_auxiliary()
        gaps.append(state.gap())
        for layer, g in zip(state.layers, state.g):            # G stays in the constraint set
            torch.testing.assert_close(project(layer, g), g, rtol=1e-6, atol=0)
    assert np.mean(gaps[-20:]) < 0.6 * np.mean(gaps[1:21]), gaps[::20]
    state.finish()
    for layer, g in zip(state.layers, state.g):                # the net now runs on G = alpha * Q
        q, scale = layer.quantized()
        torch.testing.assert_close(q.detach() * scale.detach()[:, None], g, rtol=1e-6, atol=0)


def test_admm_steps_follow_the_algorithm():
    net = small_admm_net("pow2-2")
    set_relaxed(net, True)
    state = AdmmState(net, rho=2.0)
    layer = state.layers[0]
    gen = torch.Generator().manual_seed(7)
    state.lam[0] = torch.randn(layer.weight.shape, generator=gen) * 0.1
    target = torch.randn(layer.weight.shape, generator=gen)
    w, g, lam = (t.detach().double().clone() for t in (layer.weight, state.g[0], state.lam[0]))
    others = [(lay.weight.detach().clone()) for lay in state.layers[1:]]
    # Extragradient on loss(W) = ||W - target||^2 (gradient 2 (W - target)) plus the penalty.
    grad = lambda v: 2 * (v - target.double()) + 2.0 * (v - g + lam)  # noqa: E731
    lr = 0.1
    want = w - lr * grad(w - lr * grad(w))
    state.extragradient_step(lambda: (layer.weight - target).pow(2).sum(), lr)
    torch.testing.assert_close(layer.weight.detach().double(), want, rtol=1e-5, atol=1e-6)
    for lay, before in zip(state.layers[1:], others):     # only the penalty moves the others
        g1, l1 = state.g[state.layers.index(lay)], state.lam[state.layers.index(lay)]
        step1 = before - lr * 2.0 * (before - g1 + l1)
        torch.testing.assert_close(lay.weight.detach(), before - lr * 2.0 * (step1 - g1 + l1))
    # G-step: the projection of W + lambda; dual step: lambda += W - G.
    w, lam = layer.weight.detach().clone(), state.lam[0].clone()
    state.update_auxiliary()
    q, alpha = project_to_levels(w + lam, WEIGHT_LEVELS["pow2-2"])
    torch.testing.assert_close(state.g[0], q * alpha[:, None])
    torch.testing.assert_close(state.lam[0], lam + w - state.g[0])


def test_bad_combinations_are_one_line_errors():
    with pytest.raises(TritiumError, match=r"^hidden activations have 2, 3 or 4 bits, not 5$"):
        build_net("tfc", (4, 4, 1), 3, weights="int2", act_bits=5)
    with pytest.raises(TritiumError, match="float weights are the ReLU baseline"):
        build_net("tfc", (4, 4, 1), 3, weights="binary,float,binary,binary", method="admm")
    with pytest.raises(TritiumError, match=r"unknown training method 'sgd' \(choose from ste, admm\)"):
        build_net("tfc", (4, 4, 1), 3, method="sgd")


def test_admm_refuses_layers_not_built_for_it():
    net = build_net("small", (4, 4, 1), 3, weights="pow2-2", specs=[topo.Dense(topo.CLASSES)],
                    input_quant={"kind": "binarise", "threshold": 128})
    with pytest.raises(TritiumError, match="method 'admm'"):
        AdmmState(net, rho=1.0)
    with pytest.raises(TritiumError, match="rho > 0"):
        train_admm(small_admm_net(), "digits", AdmmConfig(rho=0.0))


def test_admm_stays_stable_as_rho_reaches_its_limit():
    # Ten epochs: rho grows 1.5x per epoch to its limit RHO_STEP_LIMIT / lr. With lr * rho up to 0.5
    # and no lr decay, this run diverged (loss above 4, accuracy below chance).
    net = make_net("tfc", "digits", "ternary", method="admm")
    pretrain_float(net, "digits", TrainConfig(epochs=3), show_progress=False)
    history = train_admm(net, "digits", AdmmConfig(epochs=10), show_progress=False)
    assert max(history["loss"]) < 1.0 and history["gap"][-1] < 0.5 * history["gap"][0]
    assert evaluate(net, "digits") > 0.7
    assert history["rho"][-1] == pytest.approx(RHO_STEP_LIMIT / AdmmConfig().lr)


def test_admm_is_deterministic_for_a_seed():
    states = []
    for _ in range(2):
        net = make_net("tfc", "digits", "pow2-4", seed=3, method="admm")
        pretrain_float(net, "digits", TrainConfig(epochs=1, seed=3), show_progress=False)
        train_admm(net, "digits", AdmmConfig(epochs=1, seed=3), show_progress=False)
        states.append(net.state_dict())
    assert all(torch.equal(v, states[1][k]) for k, v in states[0].items())


@pytest.mark.parametrize("kind, act_bits", [("pow2-2", None), ("int2", 3)])
def test_admm_on_digits_exports_exactly(kind, act_bits, tmp_path):
    net = make_net("tfc", "digits", kind, method="admm", act_bits=act_bits)
    pretrain_float(net, "digits", TrainConfig(epochs=1), show_progress=False)
    history = train_admm(net, "digits", AdmmConfig(epochs=2), show_progress=False)
    assert history["gap"][1] < history["gap"][0]
    result = verify(net, export_net(net), "digits")
    assert result["agreement"] == 1.0 and result["logits_exact"] is True
    assert result["accuracy"] > 0.3
    save_checkpoint(net, tmp_path / "admm.pt")
    loaded, _ = load_checkpoint(tmp_path / "admm.pt")
    assert loaded.config["method"] == "admm" and loaded.config["act_bits"] == act_bits
    assert verify(loaded, export_net(loaded), "digits") == result
