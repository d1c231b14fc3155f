"""The compiler: integer IR + accelerator configuration -> program and memory images.

One ordered tuple of passes (:data:`PASSES`, in :mod:`.pipeline`) over immutable
plans (:mod:`.plan`); docs/accelerator.md describes the target:

* :mod:`.planning`  the planning passes: IR layers -> one :class:`LayerPlan` per weight
                    layer (a following max-pool fused in), the first convolution's
                    windows unfolded by the host, a batch's images stacked as rows;
* :mod:`.checks`    refuse what the configuration cannot run, naming the layer, the
                    reason and a configuration that would work;
* :mod:`.schedule`  weight phases and input bands (segments), activation buffers,
                    bank words and threshold sets, weight-streaming chunks;
* :mod:`.codegen`   row constants, memory images and the programs of every run;
* :mod:`.analysis`  the io description and the program timing (read-only).

:func:`compile_model` runs them all and returns a :class:`Compiled` model;
:mod:`tritium.sw.compiler.image` writes it to files. The host-side tensor layout
(:func:`pack_input`, :func:`results_to_accumulators`) lives in
:mod:`tritium.sw.model.layout`.
"""

from ..model.layout import lanes_to_int, pack_input, pack_tensor, results_to_accumulators
from .analysis import io_description, program_timing
from .checks import bandable, check
from .codegen import attach_row_constants, emit, emit_runs, memories, program_parts
from .compiled import Compiled, Segment
from .errors import CompileError
from .pipeline import PASSES, PLANNING, compile_model, layer_plans, run_passes
from .plan import Chunk, LayerPlan, ModelPlan, Unfold
from .planning import lower, stack_images, unfold_first_layer
from .schedule import allocate, band_input, group_phases, stream

__all__ = [
    "PASSES", "PLANNING", "Chunk", "CompileError", "Compiled", "LayerPlan", "ModelPlan",
    "Segment", "Unfold", "allocate", "attach_row_constants", "band_input", "bandable", "check",
    "compile_model", "emit", "emit_runs", "group_phases", "io_description", "lanes_to_int",
    "layer_plans", "lower", "memories", "pack_input", "pack_tensor", "program_parts",
    "program_timing", "results_to_accumulators", "run_passes", "stack_images", "stream",
    "unfold_first_layer",
]
