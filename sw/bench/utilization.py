"""PE-array utilisation of the reference networks on the board presets.

Each network (random weights of the FINN topologies, the shapes are what
matter) is compiled for a preset; the figures come from the compiled cycle
model, which the ISA-level simulator executes and which the accelerator's
RTL matches cycle for cycle (tests/hw/test_accel.py, tests/sim/test_networks_rtl.py).
A network that does not fit a preset is reported with the compiler's reason.
"""

from ...hw.presets import PRESETS
from ..compiler import CompileError, compile_model
from ..model.ir import Conv2d
from ..model.zoo import reference_network

#: (preset, architecture, batch) measured by default. The ULX3S's fully connected networks
#: run batches of 32: its chained array drains 33 cycles longer per RUN (a RUN per layer
#: and batch), which batch 16 pays twice as often per image (SFC 88.4 % against 91.5 %).
#: LFC and CNV do not fit the ULX3S at once: they run in segments (the host writes each
#: weight phase, and CNV's input in bands, between program runs; docs/accelerator.md); on
#: the iCEBreaker LFC streams its weights in four phases from a store that holds one. CNV
#: runs on the ULX3S in batches of 2 (its RUNs loop over both images: one drain a batch).
CASES = [
    ("icebreaker", "tfc", 16),
    ("icebreaker", "sfc", 16),
    ("icebreaker", "lfc", 16),
    ("icebreaker", "cnv", 1),
    ("ulx3s", "tfc", 32),
    ("ulx3s", "sfc", 32),
    ("ulx3s", "lfc", 32),
    ("ulx3s", "cnv", 2),
]


def measure_utilization(cases=CASES, log=print):
    """Per-layer and whole-network utilisation; ``{"preset/arch": {...}}``."""
    out = {}
    for preset, arch, batch in cases:
        cfg = PRESETS[preset]
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
        conv = [l for l, plan in zip(layers, compiled.plans) if isinstance(plan.layer, Conv2d)]
        entry = {
            "fits": True, "batch": batch, "lanes": cfg.core.lanes,
            "cycles_per_image": compiled.cycles_per_image,
            "utilization": useful / (cfg.core.lanes * cycles),
            "layers": {l["name"]: round(l["utilization"], 4) for l in layers},
            "segments": len(compiled.segments) or 1,
        }
        if conv:
            # Every convolution, and those after the first: an RGB first layer (3x3x3 patches
            # unfolded by the host: 27 of 64 lanes) is a different kind of layer.
            entry["conv_utilization"] = _utilization(conv, cfg)
            if len(conv) > 1:
                entry["conv_utilization_after_first"] = _utilization(conv[1:], cfg)
        out[key] = entry
    return out


def _utilization(layers, cfg):
    return (sum(l["useful_lane_ops"] for l in layers)
            / (cfg.core.lanes * sum(l["cycles"] for l in layers)))
