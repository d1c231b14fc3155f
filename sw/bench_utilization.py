"""PE-array utilisation of the reference networks on the board presets.

Each network (random weights of the FINN topologies, the shapes are what
matter) is compiled for a preset; the figures come from the compiled cycle
model, which the ISA-level simulator executes and which the accelerator's
RTL matches cycle for cycle (tests/test_accel.py, tests/test_networks_rtl.py).
A network that does not fit a preset is reported with the compiler's reason.
"""

import dataclasses

from ..hw.presets import PRESETS
from .compiler import CompileError, compile_model
from .zoo import reference_network

#: The ULX3S PE array (P=32 x S=64) with the buffers CNV needs: 8192-word activation
#: buffers (conv0's unfolded 8-bit input is 7,200 words) and 1024-word weight banks (760
#: words a bank). The ECP5-85F does not have that much block RAM: CNV on the board
#: needs weights streamed from SDRAM. Its figures show what the array does on CNV.
CNV_MEMORY = "ulx3s+cnv-memory"


def bench_config(name):
    """A preset by name, or :data:`CNV_MEMORY`."""
    if name == CNV_MEMORY:
        base = PRESETS["ulx3s"]
        return dataclasses.replace(base, act_depth=8192,
                                   core=dataclasses.replace(base.core, weight_depth=1024))
    return PRESETS[name]


#: (preset, architecture, batch) measured by default. The ULX3S's fully connected networks
#: run batches of 32: its chained array drains 33 cycles longer per RUN (a RUN per layer
#: and batch), which batch 16 pays twice as often per image (SFC 88.4 % against 91.5 %).
CASES = [
    ("icebreaker", "tfc", 16),
    ("icebreaker", "sfc", 16),
    ("icebreaker", "cnv", 1),
    ("ulx3s", "tfc", 32),
    ("ulx3s", "sfc", 32),
    ("ulx3s", "lfc", 16),
    ("ulx3s", "cnv", 1),
    (CNV_MEMORY, "cnv", 1),
]


def measure_utilization(cases=CASES, log=print):
    """Per-layer and whole-network utilisation; ``{"preset/arch": {...}}``."""
    out = {}
    for preset, arch, batch in cases:
        cfg = bench_config(preset)
        key = f"{preset}/{arch}"
        log(f"{key}: compiling (batch {batch})")
        model = reference_network(arch)
        try:
            compiled = compile_model(model, cfg, batch=batch)
        except CompileError as e:
            out[key] = {"fits": False, "reason": str(e)}
            continue
        layers = compiled.io["layers"]
        cycles = sum(l["cycles"] for l in layers)
        useful = sum(l["useful_lane_ops"] for l in layers)
        conv = [l for l, plan in zip(layers, compiled.plans) if plan.kh * plan.kw > 1 and
                (plan.in_h, plan.in_w) != (plan.kh, plan.kw)]
        entry = {
            "fits": True, "batch": batch, "lanes": cfg.core.lanes,
            "cycles_per_image": compiled.cycles_per_image,
            "utilization": useful / (cfg.core.lanes * cycles),
            "layers": {l["name"]: round(l["utilization"], 4) for l in layers},
        }
        if conv:
            entry["conv_utilization"] = (sum(l["useful_lane_ops"] for l in conv)
                                         / (cfg.core.lanes * sum(l["cycles"] for l in conv)))
        out[key] = entry
    return out
