"""A quick resource estimate of a core, from its configuration alone (no synthesis).

The LUT4 formula counts what the generator builds: per PE one LUT4 per lane
for the lane operation fused with the first popcount level (two when the
lane op has more than two inputs), one LUT4 per output bit of every
carry-chain adder of the tree, one LUT4 per accumulator bit (plus one per bit
for each of the Horner shift and the negation when the core is bit-serial;
a core without them keeps the narrow unsigned sum of
:class:`~tritium.hw.pe.ShiftAccumulator`, ``padded_fan_in.bit_length()`` bits)
and the threshold comparators. ``tritium bench synth`` measures the real
numbers (synthesis merges some of this logic, so they come out lower).
"""

from .popcount import adder_widths


def estimate(cfg):
    per_acc = 1 + (2 if cfg.bit_serial else 0) + (1 if cfg.bit_serial and cfg.ternary else 0)
    lane_luts = cfg.simd * (1 if len(cfg.ops) == 1 and not cfg.ternary else 2)
    tree = sum(adder_widths(cfg.simd))
    acc_reg_bits = cfg.acc_bits if cfg.bit_serial else cfg.padded_fan_in.bit_length()
    pe_luts = lane_luts + tree + per_acc * acc_reg_bits
    thr_luts = cfg.n_thresholds * cfg.acc_bits
    shared = (cfg.simd + tree + 3 * cfg.acc_bits) if cfg.bit_serial else 0
    luts = cfg.pe * (pe_luts + thr_luts + (cfg.acc_bits if cfg.bit_serial else 0)) + shared
    weight_bits = cfg.pe * cfg.weight_depth * cfg.weight_width
    thr_bits = cfg.pe * cfg.thr_depth * cfg.n_thresholds * cfg.acc_bits
    return {
        "lanes": cfg.lanes,
        "lut4_estimate": luts,
        "lut4_per_lane_estimate": round(luts / cfg.lanes, 3),
        "pe_array_lut4_per_lane_estimate": round(pe_luts / cfg.simd, 3),
        "weight_memory_bits": weight_bits,
        "threshold_memory_bits": thr_bits,
        "ice40_ebr_4k_min": _blocks(cfg.pe, cfg.weight_depth, cfg.weight_width, 4096, 16)
        + _blocks(cfg.pe, cfg.thr_depth, cfg.n_thresholds * cfg.acc_bits, 4096, 16),
        "ecp5_ebr_18k_min": _blocks(cfg.pe, cfg.weight_depth, cfg.weight_width, 18432, 36)
        + _blocks(cfg.pe, cfg.thr_depth, cfg.n_thresholds * cfg.acc_bits, 18432, 36),
    }


def _blocks(banks, depth, width, block_bits, max_width):
    """Block RAMs for ``banks`` memories of depth x width (each bank separately)."""
    w = max_width
    while w >= 1:
        if depth * w <= block_bits or w == 1:
            break
        w //= 2
    cols = -(-width // w)
    rows = -(-depth * w // block_bits)
    return banks * cols * rows
