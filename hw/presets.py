"""Named accelerator configurations (the defaults of each supported board), and the
one way a command reads a configuration: :func:`load_accel_config`.

Every option that takes a configuration (``--hw`` of generate, compile, build and
bench) takes one of these names or a JSON file in the configuration format
(docs/config.md): the configuration itself, or a file tritium wrote that holds it
under ``config`` (``tritium generate``'s tritium_accel.json, ``tritium compile``'s
compiled.json).
"""

import json
from pathlib import Path

from .errors import TritiumError
from .accel_config import AccelConfig, accel_config_from_dict
from .config import ConfigError, HwConfig

PRESETS = {
    # iCE40UP5K: 128 lanes (P=2: every memory fits the 30 block RAMs, see
    # docs/accelerator.md "Weight streaming"), bipolar inputs, binary weights. Weights
    # that do not fit the banks stream from a weight store in the four SPRAMs
    # (16384 x 64 bits), so SFC-sized models run in batches of up to 19 images.
    "icebreaker": AccelConfig(
        core=HwConfig(pe=2, simd=64, weight_kinds=("binary",), act_bits=1, out_bits=1,
                      weight_depth=256, thr_depth=512, max_fan_in=1024),
        act_depth=256, prog_depth=256, res_depth=128, store_depth=16384),
    # ECP5-85F: 2048 lanes, binary and ternary weights, every memory in the 208 block RAMs
    # (18 kbit): weight banks 32 x 512 x 128 bits take 128 of them, the activation
    # buffers 16, thresholds 32 (yosys: 179 DP16KD in all; each chain slice keeps its raw
    # results in LUT RAM); TFC / SFC (binary or ternary) fit, LFC and CNV run in segments.
    # Each register option below costs cycles per RUN and keeps a path within the 100 MHz
    # cycle (measured in docs/timing.md):
    # weight_reg: a register after the weight banks (one cycle per RUN): the block RAMs'
    # clock-to-output time and the lane-op / popcount path never share a cycle.
    # addr_reg: a register copy of the weight address per bank (one cycle per RUN): no
    # flip-flop drives more than one bank's block RAMs.
    # chain (hw/chain.py): the PEs in a systolic chain, every net between neighbouring
    # slices, each slice's block RAMs pinned beside its neighbours' (boards/floorplan.py).
    # lane_reg and a fourth popcount register (pipeline=4): the lane op (x, sign, mask, op:
    # two LUT levels) and the tree's first level get a cycle each, and so do levels 2-4.
    # act_reg: the activation buffers' reads in the block RAMs' output registers, so their
    # clock-to-output time and the input word's selection never share a cycle. max_images:
    # RUNs loop over up to 16 images, so convolutional networks run in batches (CNV: 2, as
    # many as conv0's 900-word output allows in a 2048-word buffer).
    "ulx3s": AccelConfig(
        core=HwConfig(pe=32, simd=64, weight_kinds=("binary", "ternary"), act_bits=8, out_bits=1,
                      weight_depth=512, thr_depth=256, weight_reg=True, addr_reg=True,
                      chain=True, lane_reg=True, pipeline=4),
        act_depth=2048, prog_depth=128, res_depth=64, act_reg=True, max_images=16),
}


def load_accel_config(spec):
    """A preset name or a JSON configuration file -> :class:`AccelConfig` (one-line errors)."""
    if spec in PRESETS:
        return PRESETS[spec]
    path = Path(spec)
    if not path.is_file():
        raise TritiumError(f"--hw {spec}: neither a preset ({', '.join(PRESETS)}) nor a "
                           "configuration file (docs/config.md)")
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise TritiumError(f"--hw {spec}: not a JSON configuration ({e})") from None
    recorded = None
    if isinstance(d, dict) and "config" in d:      # written by generate or compile
        recorded, d = d.get("config_hash"), d["config"]
    try:
        cfg = accel_config_from_dict(d)
    except ConfigError as e:
        raise ConfigError(f"--hw {spec}: {e}") from None
    if recorded is not None and recorded != cfg.hash:
        raise ConfigError(f"--hw {spec}: its config_hash {recorded} is not the hash of its "
                          f"configuration ({cfg.hash}): the configuration was edited after it "
                          "was written; remove config_hash to use it as it is")
    return cfg
