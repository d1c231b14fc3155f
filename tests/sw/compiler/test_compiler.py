"""Compiler + ISA-level simulator against the golden reference, and refusals."""

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from strategies import (accel_configs, compile_drawn, model_case, one_bit_hidden, segment_config,
                        streamed_segment_config, streaming_config)
from tritium.hw import isa
from tritium.hw.accel_config import START_CYCLES, AccelConfig
from tritium.hw.config import ConfigError, HwConfig
from tritium.hw.isa import Opcode
from tritium.hw.presets import PRESETS
from tritium.sw.model import reference
from tritium.sw.compiler import (PASSES, CompileError, ModelPlan, attach_row_constants, compile_model,
                                 emit, run_passes)
from tritium.sw.model.ir import ActType, Conv2d, Dense, IntModel, MaxPool2d
from tritium.sw.model.zoo import random_inputs, random_model
from tritium.sw.run.isasim import simulate


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.data())
def test_streamed_weights_match_the_reference(data):
    model, x = data.draw(model_case())
    assume(model.output_is_raw and one_bit_hidden(model))
    cfg = streaming_config(data, model)
    compiled = compile_model(model, cfg)
    assert all(p.chunks for p in compiled.plans) and compiled.store_words
    acc, cycles, layers = simulate(compiled, x)
    np.testing.assert_array_equal(acc, reference.run(model, x))
    assert cycles == [compiled.io["cycles"]] * len(x)
    assert [l.cycles for l in layers] == [l["cycles"] for l in compiled.io["layers"]]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.data())
def test_segmented_models_match_the_reference(data):
    """Segments (weight phases, input bands; docs/accelerator.md "Segments"): bit-exact, every
    segment's weights and thresholds within the memories, cycles the sum of the runs'."""
    model, x = data.draw(model_case())
    assume(model.output_is_raw)
    cfg = segment_config(data, model, out_bits=max(1, max(
        (i.out_act.bits for i in model.check() if i.out_act is not None), default=1)))
    compiled = compile_drawn(model, cfg)
    plans = compiled.plans
    assert len(compiled.segments) > 1 and plans[-1].phase > 0
    event(f"bands: {bool(plans[0].bands)}, phases: {plans[-1].phase + 1}")
    for k in range(plans[-1].phase + 1):
        phase = [p for p in plans if p.phase == k]
        assert sum(p.tiles(cfg.pe) * p.words_per_row(cfg.simd) for p in phase) <= cfg.core.weight_depth
        assert sum(p.tiles(cfg.pe) for p in phase if not p.raw) <= cfg.core.thr_depth
    acc, cycles, layers = simulate(compiled, x)
    np.testing.assert_array_equal(acc, reference.run(model, x))
    assert cycles == [compiled.io["cycles"]] * len(x)
    assert compiled.io["cycles"] == sum(s["cycles"] for s in compiled.io["segments"])
    assert [l.cycles for l in layers] == [l["cycles"] for l in compiled.io["layers"]]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.data())
def test_streamed_segments_match_the_reference(data):
    """Weights streamed from a store too small for them at once: weight phases, each with
    its store image, and programs longer than the program memory in parts; bit-exact,
    every phase's streamed words within the store, cycles the sum of the runs'."""
    model, x = data.draw(model_case())
    assume(model.output_is_raw and one_bit_hidden(model))
    cfg = streamed_segment_config(data, model)
    compiled = compile_model(model, cfg)
    plans = compiled.plans
    assert len(compiled.segments) > 1 and plans[-1].phase > 0
    event(f"phases: {plans[-1].phase + 1}, runs: {len(compiled.segments)}")
    acc, cycles, layers = simulate(compiled, x)
    np.testing.assert_array_equal(acc, reference.run(model, x))
    assert cycles == [compiled.io["cycles"]] * len(x)
    assert compiled.io["cycles"] == sum(s["cycles"] for s in compiled.io["segments"])
    assert [l.cycles for l in layers] == [l["cycles"] for l in compiled.io["layers"]]


def test_lfc_streams_in_segments_on_the_icebreaker():
    """LFC on the icebreaker preset (its 3 Mbit of weights against a 1 Mbit store, 1,536
    threshold sets against 512): a weight phase a layer, fc1's and fc2's programs in two
    parts each; bit-exact, and each layer's utilisation over 90 %."""
    cfg = PRESETS["icebreaker"]
    lfc = random_model("lfc", (784,), "bipolar", seed=4)
    compiled = compile_model(lfc, cfg, batch=16)
    assert [p.phase for p in compiled.plans] == [0, 1, 2, 3]
    assert len(compiled.segments) == 6
    # fc1's and fc2's second parts read the store their first parts wrote
    stores = [len(compiled.segment(k).store_words) for k in range(len(compiled.segments))]
    assert stores == [13312, 16384, 0, 16384, 0, 0]
    assert all(l["utilization"] > 0.9 for l in compiled.io["layers"])
    x = random_inputs(lfc, 16, seed=5)
    acc, cycles, _ = simulate(compiled, x)
    np.testing.assert_array_equal(acc, reference.run(lfc, x))
    assert cycles == [compiled.io["cycles"]]


def test_cnv_and_lfc_run_in_segments_on_the_ulx3s():
    """CNV (its 8-bit input in bands, two weight phases) and LFC (four phases) on the ulx3s
    preset, which holds neither at once: bit-exact, and the convolutions' utilisation is
    that of a configuration with memory enough for the whole of CNV."""
    cfg = PRESETS["ulx3s"]
    model = random_model("cnv", (32, 32, 3), "uint8", seed=2)
    compiled = compile_model(model, cfg)
    assert compiled.plans[0].bands and len(compiled.plans[0].bands) > 1
    assert compiled.plans[-1].phase == 1 and len(compiled.segments) == len(compiled.plans[0].bands) + 1
    x = random_inputs(model, 1, seed=3)
    acc, _, layers = simulate(compiled, x)
    np.testing.assert_array_equal(acc, reference.run(model, x))
    roomy = dataclasses.replace(cfg, act_depth=8192,
                                core=dataclasses.replace(cfg.core, weight_depth=1024))
    whole = compile_model(model, roomy)
    assert not whole.segments
    for l, w in zip(compiled.io["layers"][1:], whole.io["layers"][1:]):
        assert l["name"] == w["name"] and l["beats"] == w["beats"]
        assert l["cycles"] <= w["cycles"] + 4      # the first RUN of a segment issues sooner
    # In batches of 2 every convolution after the first loops over both images: the drain
    # is paid once per batch, and each is at 90 % or more (the last: 576 beats, 54 drain).
    batched = compile_model(model, cfg, batch=2)
    assert [p.images for p in batched.plans[1:6]] == [2] * 5
    x = random_inputs(model, 2, seed=4)
    acc, _, layers = simulate(batched, x)
    np.testing.assert_array_equal(acc, reference.run(model, x))
    assert min(l.utilization for l in layers[1:6]) >= 0.9
    assert batched.cycles_per_image < compiled.cycles_per_image
    lfc = random_model("lfc", (784,), "bipolar", seed=4)
    compiled = compile_model(lfc, cfg, batch=8)
    assert len(compiled.segments) == 4 and all(s.input_words is None for s in compiled.segments[1:])
    x = random_inputs(lfc, 16, seed=5)
    acc, cycles, _ = simulate(compiled, x)
    np.testing.assert_array_equal(acc, reference.run(lfc, x))


def test_segment_refusals():
    """A layer whose weights or thresholds alone overfill the memories, and a first-layer
    input row longer than a buffer, are refused with one line naming the layer."""
    model = random_model("tfc", (8, 8, 1), "bipolar", seed=1)
    core = dict(pe=2, simd=8, weight_kinds=("binary",))
    with pytest.raises(CompileError, match=r"layer fc0: its weights take \d+ words per bank"):
        compile_model(model, AccelConfig(core=HwConfig(**core, weight_depth=8), act_depth=64))
    with pytest.raises(CompileError, match="layer fc0: its thresholds take 32 sets per PE"):
        compile_model(model, AccelConfig(core=HwConfig(**core, weight_depth=512, thr_depth=16),
                                         act_depth=64))
    wide = random_model("tfc", (16, 16, 1), "bipolar", seed=1)       # 256 inputs, 64 outputs
    with pytest.raises(CompileError, match="layer fc0: 1 input row.* take 16 words"):
        compile_model(wide, AccelConfig(core=HwConfig(pe=2, simd=16, weight_depth=512),
                                        act_depth=8))


def test_stream_pass_tiles_layers_into_alternate_halves():
    model = random_model("sfc", (784,), "bipolar", seed=1)
    cfg = PRESETS["icebreaker"]
    compiled = compile_model(model, cfg, batch=16)
    half, pe, s = cfg.core.weight_depth // 2, cfg.pe, cfg.simd
    src, index = 0, 0
    for p in compiled.plans:
        wpr, first = p.words_per_row(s), 0
        for c in p.chunks:
            assert c.first == first and c.tiles * wpr <= half      # folds in order, half a bank
            assert c.weight_base == (index % 2) * half and c.src == src   # alternate halves
            first, src, index = first + c.tiles, src + pe * c.tiles * wpr, index + 1
        assert first == p.tiles(pe)
    assert len(compiled.store_words) == src <= cfg.store_depth
    first = compiled.plans[0].chunks
    assert first[0].tiles < first[1].tiles                # a short first copy, then bigger ones
    ops = [isa.decode(w)[0] for w in compiled.program]
    assert ops.count(Opcode.LOAD_W) == ops.count(Opcode.RUN) == index
    assert ops[0] == Opcode.LOAD_W
    # A model that fits keeps the resident schedule: no LOAD_W, no chunks.
    tfc = compile_model(random_model("tfc", (784,), "bipolar", seed=1), PRESETS["ulx3s"], batch=16)
    assert not any(p.chunks for p in tfc.plans) and not tfc.store_words
    assert Opcode.LOAD_W not in [isa.decode(w)[0] for w in tfc.program]


@pytest.mark.parametrize("change, message", [
    (dict(store_depth=1024), "words of the weight store, it holds 1024"),
    (dict(store_depth=0), "or a weight store"),
    (dict(weight_depth=16), "to fit half a bank"),
])
def test_streaming_refusals(change, message):
    model = random_model("sfc", (784,), "bipolar", seed=1)
    cfg = PRESETS["icebreaker"]
    if "weight_depth" in change:
        cfg = dataclasses.replace(cfg, core=dataclasses.replace(cfg.core, **change))
    else:
        cfg = dataclasses.replace(cfg, **change)
    with pytest.raises(CompileError, match=message):
        compile_model(model, cfg, batch=16)


def test_sfc_on_icebreaker_matches_the_reference():
    model = random_model("sfc", (784,), "bipolar", seed=2)
    compiled = compile_model(model, PRESETS["icebreaker"], batch=16)
    x = random_inputs(model, 32, seed=3)
    acc, cycles, layers = simulate(compiled, x)
    np.testing.assert_array_equal(acc, reference.run(model, x))
    assert cycles == [compiled.io["cycles"]] * 2
    assert min(l.utilization for l in layers) >= 0.9


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_random_models_and_configs_match_the_reference(data):
    model, x = data.draw(model_case())
    assume(model.output_is_raw)     # the accelerator's last layer writes raw accumulators
    cfg = data.draw(accel_configs(model))
    compiled = compile_drawn(model, cfg)
    acc, cycles, layers = simulate(compiled, x)
    np.testing.assert_array_equal(acc, reference.run(model, x))
    # Cycle count = one per instruction + beats + drain per RUN (docs/accelerator.md).
    runs = sum(p.cycles(cfg) for p in compiled.plans)
    assert cycles == [START_CYCLES + runs + len(compiled.program) - len(compiled.plans)] * len(x)
    assert cycles == [compiled.cycles_per_run] * len(x)
    assert [l.beats for l in layers] == [p.beats(cfg) for p in compiled.plans]


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_random_batched_models_match_the_reference(data):
    """Batches of 2-3 images through random networks: convolutions loop over the images
    (CFG_IN.extra_images), 1x1 windows take them as rows (stack_images); bit-exact, and a
    RUN's beats are its images' (its drain once)."""
    model, x = data.draw(model_case())
    assume(model.output_is_raw)
    batch = data.draw(st.integers(2, 3))
    x = np.resize(x, (2 * batch,) + x.shape[1:])        # two batches (x's images repeated)
    cfg = data.draw(accel_configs(model, batch=batch))
    compiled = compile_drawn(model, cfg, batch=batch)
    event(f"image loop: {any(p.images > 1 for p in compiled.plans)}")
    acc, cycles, layers = simulate(compiled, x)
    np.testing.assert_array_equal(acc, reference.run(model, x))
    assert cycles == [compiled.cycles_per_run] * 2
    single = compile_model(model, dataclasses.replace(cfg, max_images=1))
    assert [l.beats for l in layers] == [batch * p.beats(cfg) for p in single.plans]


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_batched_dense_models_match(batch):
    model = random_model("tfc", (10, 10, 1), "bipolar", weight_kind="ternary", seed=5)
    cfg = AccelConfig(core=HwConfig(pe=4, simd=16, weight_kinds=("binary", "ternary"),
                                    weight_depth=512), res_depth=64)
    x = random_inputs(model, 24, seed=6)
    acc, cycles, _ = simulate(compile_model(model, cfg, batch=batch), x)
    np.testing.assert_array_equal(acc, reference.run(model, x))
    assert len(cycles) == 24 // batch


def test_cnv_with_8_bit_input_and_pooling_matches():
    model = random_model("cnv", (32, 32, 3), "uint8", seed=2)
    cfg = AccelConfig(core=HwConfig(pe=8, simd=64, act_bits=8, weight_depth=8192, thr_depth=256),
                      act_depth=8192)
    x = random_inputs(model, 1, seed=3)
    acc, _, layers = simulate(compile_model(model, cfg), x)
    np.testing.assert_array_equal(acc, reference.run(model, x))
    assert min(l.utilization for l in layers[1:7]) > 0.9   # conv layers with 64+ channels
    assert layers[0].utilization > 0.4                     # RGB patches unfolded by the host


def small(kind="binary", act="bipolar", pool=None):
    conv = Conv2d.from_values("conv0", np.ones((4, 3, 3, 2), np.int8), kind, padding=1,
                              thresholds=np.zeros((4, 1), np.int64), out_act="bipolar")
    h, w = pool.output_hw(4, 4) if pool else (4, 4)
    fc = Dense.from_values("fc", np.ones((3, h * w * 4), np.int8), kind)
    return IntModel((4, 4, 2), ActType.parse(act), [conv] + ([pool] if pool else []) + [fc])


@pytest.mark.parametrize("model, core, message", [
    (small("ternary"), HwConfig(pe=2, simd=8), "ternary weights need a core built with them"),
    (small("pow2-4"), HwConfig(pe=2, simd=8, weight_kinds=("binary", "ternary")),
     r"layer conv0: pow2-4 weights need a core built with them \(this one: binary, ternary; "
     r"a configuration with weight_kinds binary,pow2-4,ternary runs it\)"),
    (small("int2", act="uint8"), HwConfig(pe=2, simd=8, weight_kinds=("int2",), act_bits=4),
     r"layer conv0: uint8 inputs need a bit-serial core with act_bits >= 8 \(this core: 4; a "
     r"configuration with act_bits 8 runs it\)"),
    (small("int2"), HwConfig(pe=2, simd=8), "layer conv0: int2 weights need a core built with them"),
    (small(act="uint8"), HwConfig(pe=2, simd=8), "act_bits >= 8"),
    (small(act="uint1"), HwConfig(pe=2, simd=8), "bit-serial core with act_bits >= 2"),
    (small(), HwConfig(pe=2, simd=8, weight_depth=4), "configuration with weight_depth"),
    (small(), HwConfig(pe=2, simd=8, weight_depth=64, max_fan_in=8), "max_fan_in 8"),
    (small(pool=MaxPool2d("p", 2, 1)), HwConfig(pe=2, simd=8), "stride = kernel"),
])
def test_refusals_name_the_layer_and_a_fix(model, core, message):
    with pytest.raises(CompileError, match=message):
        compile_model(model, AccelConfig(core=core))


def test_small_buffers_are_refused_with_a_suggestion():
    model = random_model("cnv", (32, 32, 3), "uint8", seed=2)
    cfg = AccelConfig(core=HwConfig(pe=8, simd=64, act_bits=8, weight_depth=8192, thr_depth=256),
                      act_depth=256)
    with pytest.raises(CompileError, match="configuration with act_depth"):
        compile_model(model, cfg)


def test_s_must_be_a_multiple_of_p():
    with pytest.raises(ConfigError, match="S % P"):
        AccelConfig(core=HwConfig(pe=3, simd=8))


def test_batching_convolutions_needs_an_image_loop():
    # conv0 is unfolded by the host (a 1x1 window): its images are rows; fc's 4x4 window loops.
    with pytest.raises(CompileError, match=r"layer fc: a batch of 2 images .*max_images >= 2"):
        compile_model(small(), AccelConfig(core=HwConfig(pe=2, simd=8)), batch=2)
    cfg = AccelConfig(core=HwConfig(pe=2, simd=8), max_images=3)
    with pytest.raises(CompileError, match="a batch of at most 3"):
        compile_model(small(), cfg, batch=4)
    # A 1x1 first layer whose 2x2 pool would straddle two images (5 rows) loops over them,
    # and a looped layer's input cannot run in bands: refused with the batch that fits.
    conv = Conv2d.from_values("conv0", np.ones((4, 1, 1, 8), np.int8), "binary",
                              thresholds=np.zeros((4, 1), np.int64), out_act="bipolar")
    fc = Dense.from_values("fc", np.ones((3, 2 * 2 * 4), np.int8), "binary")
    pooled = IntModel((5, 5, 8), ActType.parse("bipolar"), [conv, MaxPool2d("pool", 2), fc])
    with pytest.raises(CompileError, match=r"layer conv0: the input of a batch of 3 takes 75 "
                                           r"words, .* holds 64, .*\(try a batch of 2\)"):
        compile_model(pooled, AccelConfig(core=HwConfig(pe=2, simd=8), act_depth=64,
                                          max_images=4), batch=3)
    looped = compile_model(pooled, AccelConfig(core=HwConfig(pe=2, simd=8), act_depth=64,
                                               max_images=4), batch=2)
    assert [p.images for p in looped.plans] == [2, 2]
    xp = random_inputs(pooled, 4, seed=2)
    np.testing.assert_array_equal(simulate(looped, xp)[0], reference.run(pooled, xp))
    x = random_inputs(small(), 6, seed=1)
    compiled = compile_model(small(), cfg, batch=3)
    assert [(p.images, p.in_height) for p in compiled.plans] == [(1, 12), (3, 4)]
    acc, cycles, _ = simulate(compiled, x)
    np.testing.assert_array_equal(acc, reference.run(small(), x))
    assert cycles == [compiled.io["cycles"]] * 2


def test_field_limits_follow_the_memories():
    """Registers are sized by the configuration (one definition, AccelConfig.field_limit),
    capped by the ISA's field widths."""
    cfg = PRESETS["icebreaker"]
    assert cfg.field_limit(Opcode.CFG_IN, "in_h") == cfg.act_depth == 256
    assert cfg.field_limit(Opcode.CFG_OUT, "out_w") == max(cfg.act_depth, cfg.res_depth)
    assert cfg.field_limit(Opcode.CFG_MEM, "tiles") == cfg.core.weight_depth
    assert cfg.field_limit(Opcode.LOAD_W, "count") == cfg.core.weight_depth
    assert cfg.field_limit(Opcode.CFG_IN, "in_planes") == cfg.core.act_bits == 1
    assert cfg.field_limit(Opcode.CFG_WIN, "last_lanes") == cfg.simd
    assert cfg.field_limit(Opcode.CFG_WIN, "kh") == 63                 # the ISA's width
    assert cfg.field_limit(Opcode.CFG_IN, "extra_images") == 0         # no image loop
    assert PRESETS["ulx3s"].field_limit(Opcode.CFG_IN, "extra_images") == 15
    big = AccelConfig(core=HwConfig(pe=2, simd=8, weight_depth=4096), act_depth=4096)
    assert big.field_limit(Opcode.CFG_IN, "in_w") == 1023
    assert big.field_limit(Opcode.CFG_IN, "in_cw") == 255


def test_emit_refuses_a_field_past_the_register_limit():
    """The last line of defence (emit): a field the hardware's register cannot hold is refused
    with the layer's name, even where no earlier check caught it."""
    model = random_model("tfc", (4, 4, 1), "bipolar", seed=1)
    cfg = AccelConfig(core=HwConfig(pe=2, simd=8, weight_depth=1024, thr_depth=128), act_depth=64,
                      res_depth=16)
    codegen = PASSES.index(attach_row_constants)             # every pass before code generation
    layers = list(run_passes(ModelPlan(model, 1, cfg.simd, cfg), PASSES[:codegen]).layers)
    emit(layers, cfg)
    layers[1] = dataclasses.replace(layers[1], in_width=cfg.field_limit(Opcode.CFG_IN, "in_w") + 1)
    with pytest.raises(CompileError, match=f"layer {layers[1].name}: CFG_IN in_w = 65 exceeds 64"):
        emit(layers, cfg)
