"""The compiler as one ordered tuple of passes over immutable plans.

A pass is a function ``plan -> (plan, changed)``: it takes a
:class:`~.plan.ModelPlan`, never changes it, and returns the plan it makes (the
same one when it has nothing to do) and whether that differs. A pass that cannot
map the model raises :class:`~.errors.CompileError` naming the layer and a
configuration that would work.
"""

from .analysis import io_description
from .checks import check
from .compiled import Compiled
from .codegen import attach_row_constants, emit_runs
from .planning import lower, stack_images, unfold_first_layer
from .plan import ModelPlan
from .schedule import allocate, band_input, group_phases, stream

#: Every pass, in order. The first three (:data:`PLANNING`) need the lanes per word
#: of the array and nothing else of the accelerator.
PASSES = (
    lower,                  # IR layers -> one LayerPlan per weight layer, max-pools fused in
    unfold_first_layer,     # the host unfolds a few-channel first convolution's windows
    stack_images,           # a batch's images as rows of pointwise layers
    check,                  # refuse what the configuration cannot run
    group_phases,           # segments: consecutive layers whose weights fit the memories
    band_input,             # segments: the first layer's input in bands that fit a buffer
    allocate,               # activation buffers, bank words and threshold sets
    stream,                 # neuron-fold chunks copied from the weight store (LOAD_W)
    attach_row_constants,   # K of every row: reference accumulator = result - K
    emit_runs,              # the programs and memory images of each run of a batch
)
PLANNING = PASSES[:3]


def run_passes(plan, passes=PASSES):
    """``plan`` through ``passes`` in order; the last one's plan."""
    for apply in passes:
        plan, _ = apply(plan)
    return plan


def layer_plans(model, simd, batch=1):
    """The layer plans of ``model`` before any configuration check (:data:`PLANNING`,
    for words of ``simd`` lanes)."""
    return run_passes(ModelPlan(model=model, batch=batch, simd=simd), PLANNING).layers


def compile_model(model, cfg, batch=1):
    """Run every pass (:data:`PASSES`); returns a :class:`~.compiled.Compiled` model."""
    plan = run_passes(ModelPlan(model=model, batch=batch, simd=cfg.simd, config=cfg))
    first = plan.runs[0]
    return Compiled(config=cfg, program=first.program, weight_banks=first.weight_banks,
                    threshold_banks=first.threshold_banks, io=io_description(plan),
                    meta=dict(model.meta), plans=plan.layers, store_words=plan.store_words,
                    segments=list(plan.runs) if len(plan.runs) > 1 else [])
