"""Multi-plane weights (pow2-*, intK) with bipolar inputs: the PE contract's words and
commands, the compiler and the ISA simulator, bit-exact against the golden reference."""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from strategies import accel_configs, model_case, random_values, random_weights
from tritium.hw import isa
from tritium.hw.accel_config import AccelConfig
from tritium.hw.config import ConfigError, HwConfig
from tritium.hw.contract import bank_images, beat_commands, check_layer, row_offsets, schedule
from tritium.hw.errors import TritiumError
from tritium.hw.isa import Opcode
from tritium.hw.pe import lane_function
from tritium.sw.compiler import compile_model
from tritium.sw.model import reference
from tritium.sw.model.ir import ActType, Dense, IntModel
from tritium.sw.run.isasim import SimError, simulate

MULTI_PLANE = ["pow2-2", "pow2-4", "int2", "int3", "int4"]
PLANES = {"pow2-2": 2, "pow2-4": 3, "int2": 2, "int3": 3, "int4": 4}
BIPOLAR = ActType("bipolar")


def contract_accumulators(layer, x, cfg):
    """``D`` of every row for inputs ``x`` (N, F): the PE contract applied word by word to
    the contract's bank images and commands (one plain integer per PE, no vectors)."""
    from tritium.hw.contract import input_words
    images, words = bank_images(layer, cfg), input_words(x, BIPOLAR, cfg)
    lanes = (1 << cfg.simd) - 1
    d = np.zeros((len(x), layer.out_channels), np.int64)
    for r in range(layer.out_channels):
        steps = schedule(layer, BIPOLAR, cfg, tile=r // cfg.pe)
        for n in range(len(x)):
            acc = 0
            for _, j, cmd in steps:
                w = images[r % cfg.pe][cmd["w_addr"]]
                lane = lane_function(cmd["op"], words[0][n][j], w & lanes, w >> cfg.simd) & lanes
                term = bin(lane).count("1") << cmd["dbl"]
                acc = (2 * acc if cmd["shl"] else acc) + (-term if cmd["neg"] else term)
            d[n, r] = acc
    return d


@pytest.mark.parametrize("kind", MULTI_PLANE)
@pytest.mark.parametrize("masks", [False, True])
def test_contract_words_and_commands_give_the_reference(kind, masks):
    """D - K == reference accumulators, on a core with and without mask words."""
    rng = np.random.default_rng(PLANES[kind] + 10 * masks)
    kinds = ("ternary", kind) if masks else ("binary", kind)
    if masks and not kind.startswith("int") or not masks and kind.startswith("pow2"):
        kinds = (kind,)
    cfg = HwConfig(pe=3, simd=12, weight_kinds=kinds, weight_depth=64)
    for fan_in in (1, 12, 29):
        layer = Dense.from_values("fc", random_weights(rng, kind, (7, fan_in)), kind)
        check_layer(layer, BIPOLAR, cfg)
        x = random_values(rng, BIPOLAR, (4, fan_in))
        d = contract_accumulators(layer, x, cfg)
        np.testing.assert_array_equal(d - row_offsets(layer, BIPOLAR, cfg),
                                      reference.accumulate(x, BIPOLAR, layer))


def test_beats_run_the_weight_planes_top_plane_first():
    beats = beat_commands(True, True, True, False, 1, 3, weight_planes=3)
    assert [(j, w) for _, j, w, _ in beats] == [(j, k * 3 + j) for k in range(3) for j in range(3)]
    assert [f["shl"] for *_, f in beats] == [0, 0, 0, 1, 0, 0, 1, 0, 0]
    assert {(f["dbl"], f["neg"], f["count"]) for *_, f in beats} == {(1, 0, 0)}


def test_k_bit_inputs_with_weight_planes_are_refused_in_one_line():
    layer = Dense.from_values("fc", np.ones((2, 5), np.int8), "int2")
    cfg = HwConfig(pe=2, simd=8, weight_kinds=("int2",), act_bits=8)
    with pytest.raises(TritiumError, match=r"^layer fc: int2 weights \(2 planes\) need bipolar "
                       r"inputs \(the accelerator does not run uint8 inputs"):
        check_layer(layer, ActType.parse("uint8"), cfg)
    with pytest.raises(TritiumError, match="bipolar inputs only"):
        beat_commands(False, False, False, False, 8, 2, weight_planes=2)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.data())
def test_random_plane_models_match_the_reference(data):
    """Random networks of every weight kind (mixed per layer) on random accelerators: the ISA
    simulator gives the reference's integers and the cycle model's cycles."""
    model, x = data.draw(model_case(kinds=st.sampled_from(MULTI_PLANE + ["binary", "ternary"]),
                                    bipolar=True))
    assume(model.output_is_raw)
    cfg = data.draw(accel_configs(model))
    compiled = compile_model(model, cfg)
    acc, cycles, layers = simulate(compiled, x)
    np.testing.assert_array_equal(acc, reference.run(model, x))
    assert cycles == [compiled.cycles_per_run] * len(x)
    assert [l.beats for l in layers] == [p.beats(cfg) for p in compiled.plans]


@pytest.mark.parametrize("kind", MULTI_PLANE)
def test_a_plane_layer_takes_planes_times_the_beats_and_bank_words(kind):
    rng = np.random.default_rng(1)
    w = random_weights(rng, kind, (6, 40))
    models = [IntModel((40,), BIPOLAR, [Dense.from_values("fc", w if k == kind else np.sign(w) | 1,
                                                          k)]) for k in (kind, "binary")]
    cfg = AccelConfig(core=HwConfig(pe=2, simd=8, weight_kinds=("binary", kind), weight_depth=64))
    plane, binary = (compile_model(m, cfg).plans[0] for m in models)
    assert plane.beats(cfg) == PLANES[kind] * binary.beats(cfg) == PLANES[kind] * 3 * 5
    assert plane.bank_words(cfg) == PLANES[kind] * binary.bank_words(cfg)
    program = [isa.decode(w) for w in compile_model(models[0], cfg).program]
    mem = [args for op, args in program if op == Opcode.CFG_MEM]
    assert [a["extra_w_planes"] for a in mem] == [PLANES[kind] - 1]
    assert mem[0]["ternary"] == int(kind.startswith("pow2"))


def test_core_configuration_of_weight_planes():
    assert HwConfig(pe=2, simd=8).weight_planes == 1
    assert HwConfig(pe=2, simd=8, weight_kinds=("ternary", "int4", "pow2-4")).weight_planes == 4
    assert HwConfig(pe=2, simd=8, weight_kinds=("int2",)).ternary is False
    assert HwConfig(pe=2, simd=8, weight_kinds=("pow2-2",)).ternary is True
    with pytest.raises(ConfigError, match=r"^unknown weight kind 'int5' in weight_kinds "
                       r"\(binary, ternary, pow2-2, pow2-4, int2, int3, int4\)$"):
        HwConfig(pe=2, simd=8, weight_kinds=("int5",))


def test_the_simulator_refuses_more_planes_than_the_core_runs():
    model = IntModel((8,), BIPOLAR, [Dense.from_values("fc", np.ones((2, 8), np.int8), "int2")])
    cfg = AccelConfig(core=HwConfig(pe=2, simd=8, weight_kinds=("int2",)))
    compiled = compile_model(model, cfg)
    small = AccelConfig(core=HwConfig(pe=2, simd=8, weight_kinds=("binary",)))
    compiled.config = small
    with pytest.raises(SimError, match="extra_w_planes = 1 needs a core with more weight planes"):
        simulate(compiled, np.ones((1, 8), np.int64))


@pytest.mark.parametrize("sign", [1, -1])
def test_the_largest_int4_results_fit_the_accumulators(sign):
    """A row of +-15 weights over the longest fan-in, every input +1: the extremes of an
    int4 layer come back exact (the simulator refuses a result past acc_bits)."""
    core = HwConfig(pe=2, simd=8, weight_kinds=("int4",), weight_depth=8, max_fan_in=16)
    model = IntModel((16,), BIPOLAR, [Dense.from_values(
        "fc", np.full((2, 16), 15 * sign, np.int8), "int4")])
    x = np.ones((1, 16), np.int64)
    acc, _, _ = simulate(compile_model(model, AccelConfig(core=core)), x)
    np.testing.assert_array_equal(acc, [[15 * 16 * sign] * 2])
