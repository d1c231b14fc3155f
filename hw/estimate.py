"""A quick resource estimate of a core, from its configuration alone (no synthesis).

The LUT4 formula counts what the generator builds: per PE one LUT4 per lane
for the lane operation fused with the first popcount level (two when the
lane op has more than two inputs), one LUT4 per output bit of every
carry-chain adder of the tree, one LUT4 per accumulator bit (plus one per bit
for each of the Horner shift and the negation when the core is bit-serial,
one for the Horner shift of a core with multi-plane weights only; a core
without any keeps the narrow unsigned sum of
:class:`~tritium.hw.pe.ShiftAccumulator`, ``padded_fan_in.bit_length()`` bits)
and the threshold comparators. ``tritium bench synth`` measures the real
numbers (synthesis merges some of this logic, so they come out lower).
"""

from .popcount import adder_widths


def estimate(cfg):
    horner = cfg.bit_serial or cfg.weight_planes > 1
    per_acc = (1 + int(horner) + int(cfg.bit_serial) + (1 if cfg.bit_serial and cfg.ternary else 0))
    lane_luts = cfg.simd * (1 if len(cfg.ops) == 1 and not cfg.ternary else 2)
    tree = sum(adder_widths(cfg.simd))
    acc_reg_bits = cfg.acc_bits if horner else cfg.padded_fan_in.bit_length()
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


#: Block RAMs of each family: (bits, widest port) (iCE40 SB_RAM40_4K, ECP5 DP16KD).
BLOCK_RAM = {"ice40": (4096, 16), "ecp5": (18432, 36)}
#: iCE40 SB_SPRAM256KA: 16384 words of 16 bits (the weight store maps onto them).
SPRAM_WORDS, SPRAM_WIDTH = 16384, 16
#: Logic cells of a whole board design (ICESTORM_LC: a LUT4 and / or a flip-flop; ECP5
#: TRELLIS_COMB: a LUT4 slot) per LUT4 of the core's formula (:func:`estimate`), and the
#: cells of everything around the core (controller, host link, UART, PLL, reset). Calibrated
#: on the two presets' board builds (``tritium build``): icebreaker 4,099 cells for a
#: 338-LUT4 core estimate, ulx3s 27,154 for 11,708 (and the ulx3s top with a 120-LUT4 core,
#: 4,080).
CELLS_PER_CORE_LUT4 = 2
AROUND_CORE_CELLS = {"ice40": 3400, "ecp5": 3900}


def accel_memories(cfg):
    """The memories of an accelerator (:class:`~tritium.hw.accel_config.AccelConfig`)
    and its host link, as ``(name, banks, depth, width, lut_ram_on_ecp5)``."""
    from .protocol import MAX_PAYLOAD
    from .isa import INSTR_BITS
    core = cfg.core
    mems = [("weights", core.pe, core.weight_depth, core.weight_width, False),
            ("thresholds", core.pe, core.thr_depth, core.n_thresholds * core.acc_bits, False),
            ("activations", 2, cfg.act_depth, core.simd, False),
            ("program", 1, cfg.prog_depth, INSTR_BITS, False),
            ("results", 1, cfg.res_depth, core.pe * core.acc_bits, True),
            ("host buffer", 1, 2 * MAX_PAYLOAD, 8, False)]
    if cfg.store_depth:
        mems.append(("store", 1, cfg.store_depth, core.weight_width, False))
    return mems


def design_estimate(cfg, family):
    """Logic cells, block RAMs and SPRAMs of a board design with the accelerator ``cfg``
    on ``family`` (``"ice40"``, ``"ecp5"``): a formula, not synthesis. The block RAM count
    is each memory's fewest blocks (yosys maps every memory on its own); the weight store
    goes to SPRAM on iCE40, the result memory to LUT RAM on ECP5."""
    bits, widest = BLOCK_RAM[family]
    rams = sprams = 0
    for name, banks, depth, width, lut_ram in accel_memories(cfg):
        if name == "store" and family == "ice40":
            sprams += -(-width // SPRAM_WIDTH) * -(-depth // SPRAM_WORDS)
        elif not (lut_ram and family == "ecp5"):
            rams += _blocks(banks, depth, width, bits, widest)
    cells = AROUND_CORE_CELLS[family] + CELLS_PER_CORE_LUT4 * estimate(cfg.core)["lut4_estimate"]
    return {"cells": cells, "block_rams": rams, "sprams": sprams}
