"""Each compiler pass alone: what it changes on a small plan, that it reports ``changed``
truthfully, and that the plans it reads and returns are immutable."""

import dataclasses

import numpy as np
import pytest

from tritium.hw.accel_config import AccelConfig
from tritium.hw.config import HwConfig
from tritium.hw.isa import Opcode, decode
from tritium.hw.presets import PRESETS
from tritium.sw.compiler import (PASSES, CompileError, ModelPlan, allocate, attach_row_constants,
                                 band_input, check, compile_model, emit_runs, group_phases,
                                 lower, run_passes, stack_images, stream, unfold_first_layer)
from tritium.sw.model.ir import ActType, Conv2d, Dense, IntModel, MaxPool2d
from tritium.sw.model.zoo import random_model


def conv_then_dense(pool=None):
    """A 3x3 convolution over 4x4x2 (padding 1, 4 channels out), an optional max-pool, and a
    fully connected layer to 3 raw outputs."""
    conv = Conv2d.from_values("conv0", np.ones((4, 3, 3, 2), np.int8), "binary", padding=1,
                              thresholds=np.zeros((4, 1), np.int64), out_act="bipolar")
    h, w = pool.output_hw(4, 4) if pool else (4, 4)
    fc = Dense.from_values("fc", np.ones((3, h * w * 4), np.int8), "binary")
    return IntModel((4, 4, 2), ActType.parse("bipolar"), [conv] + ([pool] if pool else []) + [fc])


def planned(model, cfg, upto, batch=1):
    """``model``'s plan after the passes before ``upto``."""
    return run_passes(ModelPlan(model, batch, cfg.simd, cfg), PASSES[:PASSES.index(upto)])


SMALL = AccelConfig(core=HwConfig(pe=2, simd=8), max_images=3)

#: (model, configuration, batch): resident weights (an unfolded first convolution, a batch
#: looped and stacked), weights streamed from a store, and segments (two weight phases, the
#: first layer's input in two bands).
CASES = {
    "resident": (lambda: conv_then_dense(MaxPool2d("pool", 2)), SMALL, 3),
    "streamed": (lambda: random_model("sfc", (784,), "bipolar", seed=1), PRESETS["icebreaker"], 16),
    "segments": (lambda: random_model("tfc", (16, 16, 1), "bipolar", seed=1),
                 AccelConfig(core=HwConfig(pe=2, simd=16, weight_depth=512, thr_depth=64),
                             act_depth=16), 2),
}


@pytest.mark.parametrize("case", CASES)
def test_every_pass_reports_changed_truthfully_and_reaches_a_fixed_point(case):
    """Through the whole pipeline: each pass leaves the plan it was given as it was, says
    ``changed`` exactly when its plan differs, and changes nothing of its own output."""
    make, cfg, batch = CASES[case]
    model = make()
    plan = ModelPlan(model, batch, cfg.simd, cfg)
    changed_by = []
    for apply in PASSES:
        before = dataclasses.replace(plan)
        new, changed = apply(plan)
        assert plan == before
        assert changed == (new != plan), apply.__name__
        again, changed_again = apply(new)
        assert again == new and not changed_again, apply.__name__
        if changed:
            changed_by.append(apply.__name__)
        plan = new
    compiled = compile_model(model, cfg, batch)
    assert [s.program for s in compiled.runs()] == [s.program for s in plan.runs]
    assert {"lower", "allocate", "attach_row_constants", "emit_runs"} <= set(changed_by)
    assert ("stream" in changed_by) == (case == "streamed")
    assert ("band_input" in changed_by) == (case == "segments")
    assert "check" not in changed_by


def test_plans_are_immutable():
    plan = planned(conv_then_dense(), SMALL, check)
    layer = plan.layers[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        layer.out_channels = 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.layers = ()
    with pytest.raises(TypeError):
        plan.layers[0] = layer          # a tuple
    streamed = planned(random_model("sfc", (784,), "bipolar", seed=1), PRESETS["icebreaker"],
                       attach_row_constants, batch=16)
    chunk = streamed.layers[0].chunks[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        chunk.tiles = 1


def test_lower_fuses_a_max_pool_into_the_layer_before_it():
    plan, changed = lower(ModelPlan(conv_then_dense(MaxPool2d("pool", 2)), 3, 8))
    conv, fc = plan.layers
    assert changed and [p.name for p in plan.layers] == ["conv0", "fc"]
    assert (conv.pool, conv.pool_name) == (2, "pool")
    assert (conv.conv_height, conv.out_height, conv.out_channels) == (4, 2, 4)
    assert (conv.kernel, conv.stride, conv.padding) == ((3, 3), (1, 1), (1, 1))
    assert (fc.kernel, fc.in_channels, fc.out_channels) == ((2, 2), 4, 3)   # over the 2x2x4 map
    assert all(p.images == 3 for p in plan.layers)


def test_unfold_first_layer_only_where_it_saves_words():
    plan, _ = lower(ModelPlan(conv_then_dense(), 1, 8))
    unfolded, changed = unfold_first_layer(plan)
    first = unfolded.layers[0]
    assert changed and unfolded.layers[1:] == plan.layers[1:]
    assert first.pointwise and first.in_channels == 18                     # 3 x 3 x 2 lanes
    assert first.words_per_row(8) == 3 < plan.layers[0].words_per_row(8) == 9
    assert first.unfold.as_dict() == {"kernel": [3, 3], "stride": [1, 1], "padding": [1, 1],
                                      "pad_value": -1, "channels": 2, "height": 4, "width": 4}
    # Two lanes a word: 9 words a row either way, so the window stays.
    narrow, _ = lower(ModelPlan(conv_then_dense(), 1, 2))
    assert unfold_first_layer(narrow) == (narrow, False)


def test_stack_images_turns_a_pointwise_layers_images_into_rows():
    plan = run_passes(ModelPlan(conv_then_dense(), 3, 8), (lower, unfold_first_layer))
    stacked, changed = stack_images(plan)
    first, fc = stacked.layers
    assert changed and (first.images, first.in_height, first.out_height) == (1, 12, 12)
    assert fc == plan.layers[1] and fc.images == 3        # a 4x4 window: the image loop
    single = run_passes(ModelPlan(conv_then_dense(), 1, 8), (lower, unfold_first_layer))
    assert stack_images(single) == (single, False)


def test_check_changes_nothing_and_refuses_what_does_not_fit():
    plan = planned(conv_then_dense(), SMALL, check)
    assert check(plan) == (plan, False)
    tight = dataclasses.replace(plan, config=dataclasses.replace(SMALL, act_depth=8))
    with pytest.raises(CompileError, match="layer conv0: the output tensor takes 16 words, an "
                                           "activation buffer holds 8"):
        check(tight)


def test_group_phases_splits_where_the_banks_are_full():
    """tfc over 256 pixels on 512-word banks: fc0 takes 512 words, the rest 276."""
    make, cfg, batch = CASES["segments"]
    plan = planned(make(), cfg, group_phases, batch)
    grouped, changed = group_phases(plan)
    assert changed and [p.phase for p in grouped.layers] == [0, 1, 1, 1]
    assert [p.bank_words(cfg) for p in plan.layers] == [512, 128, 128, 20]
    roomy = planned(make(), dataclasses.replace(
        cfg, core=dataclasses.replace(cfg.core, weight_depth=1024, thr_depth=128)),
        group_phases, batch)
    assert group_phases(roomy) == (roomy, False)


def test_band_input_cuts_the_first_layers_input_into_buffer_sized_bands():
    """Two images of 256 one-bit pixels as two rows of 16 words each: a 16-word buffer holds
    one row, so the first layer runs in two bands of one row."""
    make, cfg, batch = CASES["segments"]
    plan = planned(make(), cfg, band_input, batch)
    banded, changed = band_input(plan)
    assert changed and banded.layers[1:] == plan.layers[1:]
    assert banded.layers[0].bands == ((0, 1), (1, 1))
    assert dataclasses.replace(banded.layers[0], bands=None) == plan.layers[0]
    roomy = planned(make(), dataclasses.replace(cfg, act_depth=32), band_input, batch)
    assert band_input(roomy) == (roomy, False)


def test_allocate_alternates_buffers_and_stacks_weights_per_phase():
    make, cfg, batch = CASES["segments"]
    plan = planned(make(), cfg, allocate, batch)
    allocated, changed = allocate(plan)
    layers = allocated.layers
    assert changed and [(p.in_buffer, p.out_buffer) for p in layers] == [(0, 1), (1, 0)] * 2
    assert [p.weight_base for p in layers] == [0, 0, 128, 256]      # from 0 in phase 1
    assert [p.threshold_base for p in layers] == [0, 0, 32, 64]
    assert [dataclasses.replace(p, in_buffer=0, out_buffer=1, weight_base=0, threshold_base=0)
            for p in layers] == [dataclasses.replace(p, out_buffer=1) for p in plan.layers]


def test_stream_chunks_only_on_an_accelerator_with_a_weight_store():
    model = random_model("sfc", (784,), "bipolar", seed=1)
    plan = planned(model, PRESETS["icebreaker"], stream, batch=16)
    streamed, changed = stream(plan)
    assert changed and all(p.chunks for p in streamed.layers)
    assert [dataclasses.replace(p, chunks=None) for p in streamed.layers] == list(plan.layers)
    resident = planned(model, PRESETS["ulx3s"], stream, batch=16)
    assert stream(resident) == (resident, False)


def test_attach_row_constants_gives_each_row_its_constant():
    plan = planned(conv_then_dense(), SMALL, attach_row_constants)
    attached, changed = attach_row_constants(plan)
    assert changed and all(p.row_constants is None for p in plan.layers)
    assert [len(p.row_constants) for p in attached.layers] == [4, 3]
    assert all(isinstance(k, (int, np.integer)) for p in attached.layers for k in p.row_constants)


def test_emit_runs_makes_one_program_per_run():
    plan = planned(conv_then_dense(), SMALL, emit_runs)
    emitted, changed = emit_runs(plan)
    assert changed and plan.runs == () and len(emitted.runs) == 1
    ops = [decode(w)[0] for w in emitted.runs[0].program]
    assert ops.count(Opcode.RUN) == 2 and ops[-1] == Opcode.END
    assert emitted.layers == plan.layers
