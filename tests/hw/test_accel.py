"""The accelerator RTL (Amaranth simulator) against the golden reference and the ISA simulator."""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from strategies import (accel_configs, model_case, one_bit_hidden, segment_config, streamed_segment_config,
                        streaming_config)
from tritium.hw import isa
from tritium.hw.accel import STORE_NAME, Accelerator, accel_verilog, drop_memory_init
from tritium.hw.accel_config import AccelConfig
from tritium.hw.config import HwConfig
from tritium.hw.isa import Opcode
from tritium.sim.accel_sim import run_amaranth
from tritium.sw.compiler import CompileError, compile_model, layer_plans
from tritium.sw.model import reference
from tritium.sw.model.ir import ActType, Conv2d, Dense, IntModel, MaxPool2d
from tritium.sw.model.zoo import random_inputs, random_model
from tritium.sw.run.isasim import simulate


def check(model, cfg, x, batch=1):
    compiled = compile_model(model, cfg, batch=batch)
    acc_rtl, cycles_rtl = run_amaranth(compiled, x)
    np.testing.assert_array_equal(acc_rtl, reference.run(model, x))
    _, cycles_isa, _ = simulate(compiled, x)
    assert cycles_rtl == cycles_isa, "the ISA simulator's cycle count must equal the RTL's"


def _draw_rtl_model(data, values):
    """A random network the accelerator's output path runs (bipolar hidden outputs, raw
    last layer) with fewer than ``values`` output values (a short simulation), and inputs."""
    model, x = data.draw(model_case())
    assume(model.output_is_raw)
    infos = model.check()
    assume(all(i.out_act is None or i.out_act.kind == "bipolar" for i in infos))
    assume(sum(np.prod(i.out_shape) for i in infos) < values)
    return model, x


@settings(max_examples=12, deadline=None)
@given(st.data())
def test_random_models_on_the_rtl(data):
    model, x = _draw_rtl_model(data, 3000)
    cfg = data.draw(accel_configs(model, out_bits=1))
    check(model, cfg, x[:1])


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.data())
def test_streamed_weights_on_the_rtl(data):
    """Weight store + LOAD_W copies beside the RUNs: bit-exact, cycles equal the ISA simulator's."""
    model, x = data.draw(model_case())
    assume(model.output_is_raw and one_bit_hidden(model))
    assume(sum(np.prod(i.out_shape) for i in model.check()) < 3000)
    cfg = streaming_config(data, model)
    check(model, cfg, x[:1])


@pytest.mark.parametrize("copies, chain", [(False, False), (True, False), (True, True)])
def test_streamed_batch_on_the_rtl(copies, chain):
    """A batched dense network whose chunks start mid-word (P-lane slots of the output words).
    With the register copies (weight_reg, addr_reg) the banks' writes land a cycle later, in
    the chain (hw/chain.py) bank p's p + 1 cycles later: every RUN still reads the weights
    its LOAD_W copied."""
    model = random_model("tfc", (6, 6, 1), "bipolar", seed=3)
    cfg = AccelConfig(core=HwConfig(pe=2, simd=8, weight_depth=128, thr_depth=128,
                                    weight_reg=copies, addr_reg=copies, chain=chain), act_depth=64,
                      res_depth=32, store_depth=2048)
    compiled = compile_model(model, cfg, batch=4)
    assert any(c.first % (cfg.simd // cfg.pe) for p in compiled.plans for c in p.chunks)
    check(model, cfg, random_inputs(model, 4, seed=1), batch=4)


@pytest.mark.parametrize("act, kind", [("bipolar", "binary"), ("bipolar", "ternary"),
                                       ("uint8", "binary"), ("int4", "ternary")])
def test_dense_modes(act, kind):
    model = random_model("tfc", (5, 5, 1), act, weight_kind=kind, seed=7)
    cfg = AccelConfig(core=HwConfig(pe=4, simd=12, weight_kinds=("binary", "ternary"), act_bits=8,
                                    weight_depth=1024, thr_depth=64), act_depth=64, res_depth=8)
    check(model, cfg, random_inputs(model, 2, seed=1))


CHAIN = {"weight_reg": True, "addr_reg": True, "chain": True}


@pytest.mark.parametrize("arch, shape, act, kind, pe, simd", [
    ("tfc", (5, 5, 1), "bipolar", "ternary", 5, 20), ("tfc", (5, 5, 1), "int4", "ternary", 4, 16),
    ("sfc", (4, 4, 1), "uint8", "binary", 8, 16), ("cnn", (8, 8, 1), "uint8", "binary", 4, 16),
    ("tfc", (6, 6, 1), "int4", "ternary", 3, 36),        # two lane-op copies per slice
    ("cnn", (8, 8, 1), "uint8", "binary", 4, 32)])       # with lane_reg (below)
def test_chained_array(arch, shape, act, kind, pe, simd):
    """The chained array (hw/chain.py): each slice's bank, thresholds and result memory, the
    counter Q from the head, the activation vector from the tail (convolution, padding,
    pooling; bipolar and bit-serial inputs): bit-exact, cycles equal the ISA simulator's."""
    model = random_model(arch, shape, act, weight_kind=kind, seed=11)
    plans = layer_plans(model, simd)
    depth = sum(p.tiles(pe) * p.words_per_row(simd) for p in plans)
    cfg = AccelConfig(core=HwConfig(pe=pe, simd=simd, weight_kinds=("binary", "ternary"), act_bits=8,
                                    weight_depth=1 << (depth - 1).bit_length(), thr_depth=128,
                                    lane_reg=simd == 32, **CHAIN), act_depth=512, res_depth=16,
                      act_reg=simd == 32)
    check(model, cfg, random_inputs(model, 2, seed=1))


def test_chained_array_with_one_lane_op_and_no_bit_serial_controls():
    """A binary-only chain with bipolar inputs: its slices carry no lane op and no
    shl / neg / dbl (nothing reads them), only valid and last; still bit-exact."""
    model = random_model("tfc", (5, 5, 1), "bipolar", weight_kind="binary", seed=12)
    cfg = AccelConfig(core=HwConfig(pe=4, simd=16, weight_kinds=("binary",), act_bits=1,
                                    weight_depth=256, thr_depth=64, **CHAIN),
                      act_depth=256, res_depth=16)
    assert len(cfg.core.ops) == 1 and not cfg.core.bit_serial
    check(model, cfg, random_inputs(model, 2, seed=3))


def _strided_pooled_model(seed):
    """A convolution with strides 2 and 3, padding 1 and 2 and a 3x3 max-pool, then a dense
    layer over the pool's 2 x 2 output (13 x 14 input: the convolution gives 7 x 6 pixels)."""
    rng = np.random.default_rng(seed)
    # 8 channels (one word a pixel): no unfolding of the first layer, the RUN strides.
    conv = Conv2d.from_values("conv", rng.choice([-1, 1], (4, 3, 2, 8)), "binary", stride=(2, 3),
                              padding=(1, 2), pad_value=1,
                              thresholds=rng.integers(12, 20, (4, 1)), out_act="bipolar")
    # High thresholds: about half of the 3x3 pools' ORs are 1 (low ones would make all of
    # them 1, and a wrong window position would go unseen).
    fc = Dense.from_values("fc", rng.choice([-1, 1], (6, 2 * 2 * 4)), "binary")
    return IntModel((13, 14, 8), ActType.parse("bipolar"), [conv, MaxPool2d("pool", 3), fc])


def _small_chain_config(chain, **accel):
    """P = 2, S = 8; with ``chain`` the chained array and ``act_reg``."""
    extra = CHAIN if chain else {}
    return AccelConfig(core=HwConfig(pe=2, simd=8, weight_depth=64, thr_depth=16, **extra),
                       act_reg=chain, **accel)


@pytest.mark.parametrize("chain", [False, True])
def test_unequal_strides_padding_and_a_3x3_pool(chain):
    """The window position as running sums ((ox*pool + px)*sw, docs/accelerator.md "Timing"):
    strides 2 and 3, padding 1 and 2, a 3x3 max-pool after the convolution, bit-exact, with
    the RTL's cycles equal to the ISA simulator's."""
    model = _strided_pooled_model(5)
    cfg = _small_chain_config(chain, act_depth=512, res_depth=8)
    plans = compile_model(model, cfg).plans
    assert (*plans[0].kernel, *plans[0].stride, plans[0].pool) == (3, 2, 2, 3, 3)
    check(model, cfg, random_inputs(model, 2, seed=4))


@pytest.mark.parametrize("chain", [False, True])
def test_segments_on_the_rtl(chain):
    """A model that runs in segments (docs/accelerator.md "Segments"): its 8-bit input in
    four bands (the first layer pooled), its weights in three phases; the host's writes
    between the runs (sim/accel_sim.segment_writes), bit-exact, cycles equal the ISA
    simulator's."""
    model = random_model("cnn", (8, 8, 1), "uint8", weight_kind="binary", seed=3)
    extra = CHAIN if chain else {}
    cfg = AccelConfig(core=HwConfig(pe=4, simd=16, weight_kinds=("binary",), act_bits=8,
                                    weight_depth=256, thr_depth=32, **extra),
                      act_depth=128, res_depth=16)
    compiled = compile_model(model, cfg)
    assert len(compiled.plans[0].bands) == 4 and compiled.plans[-1].phase == 2
    check(model, cfg, random_inputs(model, 2, seed=1))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.data())
def test_random_segmented_models_on_the_rtl(data):
    model, x = data.draw(model_case())
    assume(model.output_is_raw and one_bit_hidden(model))
    assume(sum(np.prod(i.out_shape) for i in model.check()) < 3000)
    check(model, segment_config(data, model), x[:1])


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.data())
def test_random_streamed_segments_on_the_rtl(data):
    """Weight phases streamed from a small store, each phase's store image written between
    the runs (sim/accel_sim.store_writes), programs in parts: bit-exact, the ISA
    simulator's cycles."""
    model, x = data.draw(model_case())
    assume(model.output_is_raw and one_bit_hidden(model))
    assume(sum(np.prod(i.out_shape) for i in model.check()) < 3000)
    check(model, streamed_segment_config(data, model), x[:1])


@pytest.mark.parametrize("chain", [False, True])
def test_batched_convolutions_on_the_rtl(chain):
    """The image loop (CFG_IN.extra_images): three images through a strided, padded
    convolution with a 3x3 pool and a dense layer over its 2x2 output, each image padded on
    its own; bit-exact, and the RTL's cycles (one drain a RUN) equal the ISA simulator's."""
    model = _strided_pooled_model(6)
    cfg = _small_chain_config(chain, act_depth=1024, res_depth=16, max_images=4)
    assert [p.images for p in compile_model(model, cfg, batch=3).plans] == [3, 3]
    check(model, cfg, random_inputs(model, 6, seed=7), batch=3)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.data())
def test_random_batched_models_on_the_rtl(data):
    """Random networks in batches of 2-3 images (image loop and images as rows)."""
    model, x = _draw_rtl_model(data, 1500)
    batch = data.draw(st.integers(2, 3))
    cfg = data.draw(accel_configs(model, out_bits=1, batch=batch))
    check(model, cfg, np.resize(x, (batch,) + x.shape[1:]), batch=batch)


def test_batched_run():
    model = random_model("tfc", (4, 4, 1), "bipolar", seed=8)
    cfg = AccelConfig(core=HwConfig(pe=4, simd=16, weight_depth=256, thr_depth=64),
                      act_depth=64, res_depth=16)
    check(model, cfg, random_inputs(model, 4, seed=2), batch=4)


def test_weight_store_verilog_has_no_initial_value():
    """SPRAM cannot be initialised: the store's Verilog has no initial block (the others keep theirs)."""
    cfg = AccelConfig(core=HwConfig(pe=2, simd=8, weight_depth=16), act_depth=16, prog_depth=8,
                      res_depth=4, store_depth=32)
    text = accel_verilog(cfg)
    assert f"reg [7:0] {STORE_NAME} [31:0];" in text and f"{STORE_NAME}[0] =" not in text
    assert "prog[0] =" in text
    assert drop_memory_init("reg [3:0] m [1:0];\ninitial begin\n  m[0] = 4'h0;\nend\n", "m") \
        == "reg [3:0] m [1:0];\n"


@pytest.mark.parametrize("case", ["reserved opcode", "LOAD_W without a store", "no END",
                                  "a good run after an error"])
def test_controller_errors(case):
    """The controller stops with an error code on an instruction it does not implement and
    on a program counter past the program memory; the next START runs normally."""
    from amaranth.sim import Simulator

    from tritium.hw.protocol import Err

    cfg = AccelConfig(core=HwConfig(pe=2, simd=8, weight_depth=16), act_depth=16, prog_depth=8,
                      res_depth=4)
    cfg_in = isa.encode(Opcode.CFG_IN, in_buf=0, in_base=0, in_h=1, in_w=1, in_cw=1, in_planes=1,
                        in_signed=0, in_bipolar=1, extra_images=0)
    programs = {
        "reserved opcode": ([cfg_in, 9], Err.BAD_OPCODE),
        "LOAD_W without a store": ([isa.encode(Opcode.LOAD_W, addr=0, count=1, src=0)],
                                   Err.BAD_OPCODE),
        "no END": ([cfg_in] * cfg.prog_depth, Err.PC_OVERFLOW),
        "a good run after an error": ([cfg_in, 9], Err.BAD_OPCODE),
    }
    program, code = programs[case]
    dut = Accelerator(cfg)
    seen = []

    async def bench(ctx):
        async def run(words):
            for a, w in enumerate(words):
                ctx.set(dut.prog_we, 1)
                ctx.set(dut.prog_addr, a)
                ctx.set(dut.prog_data, w)
                await ctx.tick()
            ctx.set(dut.prog_we, 0)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            for _ in range(100):
                if ctx.get(dut.done) or ctx.get(dut.error):
                    break
                await ctx.tick()
            seen.append((ctx.get(dut.done), ctx.get(dut.error), ctx.get(dut.error_code)))
        await run(program)
        if case == "a good run after an error":
            await run([cfg_in, isa.encode(Opcode.END)])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen[0] == (0, 1, code)
    if case == "a good run after an error":
        assert seen[1] == (1, 0, Err.NONE)


def _row_model(width, seed=0):
    """A 1 x width image, 2 channels: a (1, 3) convolution with padding (same width), then a
    dense layer with raw outputs."""
    rng = np.random.default_rng(seed)
    conv = Conv2d.from_values("conv", rng.choice([-1, 1], (4, 1, 3, 2)), "binary", padding=(0, 1),
                              thresholds=rng.integers(-3, 4, (4, 1)), out_act="bipolar")
    fc = Dense.from_values("fc", rng.choice([-1, 1], (3, width * 4)), "binary")
    return IntModel((1, width, 2), ActType.parse("bipolar"), [conv, fc])


def test_image_width_at_the_register_limit_runs():
    """in_w and out_w at the largest value the configuration's registers hold (the
    activation buffers' depth, AccelConfig.field_limit): bit-exact, cycles as the ISA's;
    one pixel wider is refused by the compiler."""
    cfg = AccelConfig(core=HwConfig(pe=2, simd=8, weight_depth=64, thr_depth=16), act_depth=16,
                      res_depth=4)
    limit = cfg.field_limit(Opcode.CFG_IN, "in_w")
    assert limit == cfg.field_limit(Opcode.CFG_OUT, "out_w") == 16
    model = _row_model(limit)
    check(model, cfg, random_inputs(model, 1, seed=3))
    with pytest.raises(CompileError, match="layer conv"):
        compile_model(_row_model(limit + 1), cfg)
