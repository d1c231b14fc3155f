"""Multi-plane weights (pow2-*, intK) with bipolar and k-bit inputs: the PE contract's words
and commands, the compiler and the ISA simulator, bit-exact against the golden reference."""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from strategies import accel_configs, compile_drawn, model_case, random_values, random_weights
from tritium.hw import isa
from tritium.hw.accel_config import AccelConfig
from tritium.hw.config import OP_AND_M, OP_AND_S, ConfigError, HwConfig
from tritium.hw.contract import (bank_images, beat_commands, check_layer, diagonal_terms,
                                 input_words, row_offsets, schedule)
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
K_BIT = [ActType.parse(t) for t in ("uint2", "uint3", "uint4", "int2", "int4", "uint8")]


def contract_accumulators(layer, x, cfg, in_act=BIPOLAR):
    """``D`` of every row for inputs ``x`` (N, F): the PE contract applied word by word to
    the contract's bank images and commands (one plain integer per PE and for Q, no
    vectors)."""
    images, words = bank_images(layer, cfg), input_words(x, in_act, cfg)
    lanes = (1 << cfg.simd) - 1
    d = np.zeros((len(x), layer.out_channels), np.int64)
    for r in range(layer.out_channels):
        steps = schedule(layer, in_act, cfg, tile=r // cfg.pe)
        for n in range(len(x)):
            acc = q = 0
            for plane, j, cmd in steps:
                w, xw = images[r % cfg.pe][cmd["w_addr"]], words[plane or 0][n][j]
                lane = lane_function(cmd["op"], xw, w & lanes, w >> cfg.simd) & lanes
                sign = -1 if cmd["neg"] else 1
                acc = (2 * acc if cmd["shl"] else acc) + sign * (bin(lane).count("1") << cmd["dbl"])
                q = (2 * q if cmd["shl"] else q) + sign * bin(xw).count("1") * cmd["count"]
            d[n, r] = acc - q
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


@pytest.mark.parametrize("kind", MULTI_PLANE)
@pytest.mark.parametrize("in_act", K_BIT, ids=str)
def test_k_bit_inputs_with_weight_planes_give_the_reference(kind, in_act):
    """k-bit inputs x every weight plane: D == reference accumulators (K = 0), on a core
    with and without mask words where the kind allows."""
    rng = np.random.default_rng(PLANES[kind] + in_act.bits)
    for kinds in {(kind,), ("ternary", kind)}:
        cfg = HwConfig(pe=3, simd=12, weight_kinds=kinds, weight_depth=64, act_bits=8)
        for fan_in in (1, 12, 29):
            layer = Dense.from_values("fc", random_weights(rng, kind, (7, fan_in)), kind)
            check_layer(layer, in_act, cfg)
            x = random_values(rng, in_act, (3, fan_in))
            np.testing.assert_array_equal(row_offsets(layer, in_act, cfg), 0)
            np.testing.assert_array_equal(contract_accumulators(layer, x, cfg, in_act),
                                          reference.accumulate(x, in_act, layer))


@pytest.mark.parametrize("planes, weight_planes", [(1, 1), (1, 3), (4, 1), (3, 2), (2, 4), (4, 4)])
def test_diagonal_terms_walk_every_term_once_in_horner_order(planes, weight_planes):
    """Every (weight plane, bit plane) pair once; the diagonals e + b never increase and
    ``first`` marks exactly where a diagonal starts; within one, the weight plane steps down
    and the bit plane up (so the next term's weight words follow in the row)."""
    terms = list(diagonal_terms(planes, weight_planes))
    exps = [(weight_planes - 1 - k, b) for k, b, _ in terms]
    assert sorted(exps) == sorted((e, b) for e in range(weight_planes) for b in range(planes))
    sums = [e + b for e, b in exps]
    assert sums == sorted(sums, reverse=True)
    assert [f for *_, f in terms] == [i == 0 or sums[i] != sums[i - 1] for i in range(len(terms))]
    for (k, b, f), (k2, b2, f2) in zip(terms, terms[1:]):
        assert f2 or (k2, b2) == (k + 1, b + 1)


def test_beats_of_k_bit_inputs_go_by_diagonals():
    """3 bit planes x 2 weight planes, 2 words each: the terms (weight plane from the top,
    bit plane) (0,2) | (0,1) (1,2) | (0,0) (1,1) | (1,0), shl on each diagonal's first word,
    neg on the MSB plane of signed inputs, count on every word of bipolar planes."""
    beats = beat_commands(False, True, False, True, 3, 2, weight_planes=2)
    terms = [(0, 2), (0, 1), (1, 2), (0, 0), (1, 1), (1, 0)]
    assert [(p, j, w) for p, j, w, _ in beats] == [(b, j, k * 2 + j) for k, b in terms for j in range(2)]
    assert [f["shl"] for *_, f in beats] == [0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0]
    assert [f["neg"] for *_, f in beats] == [int(b == 2) for _, b in terms for _ in range(2)]
    assert {(f["op"], f["dbl"], f["count"]) for *_, f in beats} == {(OP_AND_S, 1, 1)}
    masked = beat_commands(False, True, True, False, 3, 2, weight_planes=2)
    assert [f["op"] for *_, f in masked] == [OP_AND_S, OP_AND_M] * 12
    assert [f["shl"] for *_, f in masked[::2]] == [f["shl"] for *_, f in beats]


@pytest.mark.parametrize("bipolar", [True, False], ids=["bipolar", "any-inputs"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data())
def test_random_plane_models_match_the_reference(bipolar, data):
    """Random networks of every weight kind (mixed per layer) on random accelerators, with
    bipolar inputs or any (k-bit inputs and hidden activations): the ISA simulator gives
    the reference's integers and the cycle model's cycles."""
    model, x = data.draw(model_case(kinds=st.sampled_from(MULTI_PLANE + ["binary", "ternary"]),
                                    bipolar=bipolar))
    assume(model.output_is_raw)
    cfg = data.draw(accel_configs(model))
    compiled = compile_drawn(model, cfg)
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


@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("in_type, extreme", [("uint8", 255), ("int8", -128)])
def test_the_largest_k_bit_int4_results_fit_the_accumulators(sign, in_type, extreme):
    """8-bit inputs at an end of their range x +-15 weights over the longest fan-in: the
    accumulators hold (2**4 - 1) * (2**8 - 1) * 2 * Fp (the simulator refuses a result past
    acc_bits)."""
    core = HwConfig(pe=2, simd=8, weight_kinds=("int4",), act_bits=8, weight_depth=32,
                    max_fan_in=16)
    assert core.acc_bits == (2 * 16 * 255 * 15 + 1).bit_length() + 1
    model = IntModel((16,), ActType.parse(in_type), [Dense.from_values(
        "fc", np.full((2, 16), 15 * sign, np.int8), "int4")])
    acc, _, _ = simulate(compile_model(model, AccelConfig(core=core)), np.full((1, 16), extreme))
    np.testing.assert_array_equal(acc, [[15 * 16 * sign * extreme] * 2])


def test_the_simulator_refuses_fewer_beats_than_output_planes():
    """A program whose RUN writes 4-bit outputs from 2-beat accumulations (the output path
    could not write a word's planes before the next result): the ISA simulator refuses it
    as the compiler does."""
    core = HwConfig(pe=2, simd=8, weight_kinds=("binary",), act_bits=4, out_bits=4, weight_depth=64)
    hidden = Dense.from_values("fc0", np.ones((2, 16), np.int8), "binary", out_act=ActType("unsigned", 2),
                               thresholds=np.array([[-1, 0, 1]] * 2))
    model = IntModel((16,), BIPOLAR, [hidden, Dense.from_values("fc1", np.ones((2, 2), np.int8), "binary")])
    compiled = compile_model(model, AccelConfig(core=core))
    simulate(compiled, np.ones((1, 16), np.int64))        # 2-bit outputs from 2 beats: legal
    for k, word in enumerate(compiled.program):
        opcode, args = isa.decode(word)
        if opcode == isa.Opcode.CFG_OUT and args["out_bits"] == 2:
            compiled.program[k] = isa.encode(opcode, **{**args, "out_bits": 4})
    with pytest.raises(SimError, match="4-bit outputs needs at least 4 beats per result"):
        simulate(compiled, np.ones((1, 16), np.int64))
