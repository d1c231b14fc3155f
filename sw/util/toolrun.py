"""Run a long toolchain step (yosys, nextpnr, the bitstream tools) with progress.

:func:`run_tool` streams the tool's output into its log file as it comes, reads
the tool's phase from its own lines (:func:`yosys_phase`, :func:`nextpnr_phase`)
and reports ``"<tool>: <phase> <elapsed>"`` through a callback at most every
``every_s`` seconds (a tool in one long phase still gets a line every
``every_s``). Board builds and the synthesis benchmarks both run their tools
through it; progress goes wherever the callback writes (the commands: stderr,
so ``--json`` output stays clean).
"""

import re
import subprocess
import threading
import time
from pathlib import Path

from ...hw.errors import TritiumError

#: Seconds between progress lines of one tool.
PROGRESS_EVERY_S = 10.0


def elapsed_text(seconds):
    """``"42 s"``, ``"3 min 10 s"``, ``"1 h 02 min"``."""
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class YosysPhase:
    """yosys' current pass from its log lines (``2.27. Executing ABC9 pass.``): the
    script's command and the pass inside it, e.g. ``synth_ice40 > abc9``."""

    LINE = re.compile(r"^(\d+(?:\.\d+)*)\.\s+Executing (\S+)")

    def __init__(self):
        self.stack = []

    def __call__(self, line):
        m = self.LINE.match(line)
        if not m:
            return None
        depth = m.group(1).count(".") + 1
        if depth > 2:
            return None
        self.stack = self.stack[:depth - 1] + [m.group(2).lower()]
        return " > ".join(self.stack)


#: nextpnr's phases: (pattern of an ``Info:`` line, phase; ``{0}``... take the groups).
NEXTPNR_PHASES = (
    (r"Packing|Pack ", "packing"),
    (r"Creating initial (analytic )?placement|Placed \d+ cells based on constraints", "placing"),
    (r"Running main analytical placer|HeAP", "placing (analytic)"),
    (r"at iteration #(\d+), type", "placing (analytic, iteration {0})"),
    (r"Running Static placer", "placing (static)"),
    (r"^iter=(\d+) steplen=", "placing (static, iteration {0})"),
    (r"Strict legalising|^\s+Legalising ", "placing (legalising)"),
    (r"Running simulated annealing placer", "placing (annealing)"),
    (r"at iteration #(\d+): temp", "placing (annealing, iteration {0})"),
    (r"[Pp]arallel refine", "placing (refining)"),
    (r"Routing\.\.|Setting up routing queue|Running router1", "routing (router1)"),
    (r"^\s*\d+ \|\s+\d+\s+\d+ \|\s+-?\d+\s+-?\d+ \|\s+(\d+)\|", "routing (router1, {0} arcs left)"),
    (r"Running router2", "routing (router2)"),
    (r"iter=(\d+) wires=\d+ overused=(\d+)", "routing (router2 iteration {0}, {1} overused wires)"),
    (r"Critical path report|Max frequency for clock", None),
    (r"Program finished normally", "finished"),
)
_NEXTPNR = [(re.compile(p), label) for p, label in NEXTPNR_PHASES]


def nextpnr_phase(line):
    """The phase an ``Info:`` line of nextpnr starts (None: no change). Timing reports come
    after placement and after routing, so they do not change the phase."""
    text = line[6:] if line.startswith("Info: ") else line
    for pattern, label in _NEXTPNR:
        m = pattern.search(text)
        if m:
            return label.format(*m.groups()) if label else None
    return None


def phase_parser(tool):
    """A fresh phase parser for the tool called ``tool`` (its command name), or None."""
    if "yosys" in tool:
        return YosysPhase()
    if "nextpnr" in tool:
        return nextpnr_phase
    return None


def run_tool(cmd, cwd, log_path, *, name=None, progress=None, every_s=PROGRESS_EVERY_S,
             timeout_s=None, stdin=None, stdout=None, timeout_hint="the time limit",
             failure_hint=""):
    """Run ``cmd`` in ``cwd``; its output streams into ``log_path`` (``stdout``: a file for
    the tool's standard output instead, its stderr then goes to the log). ``progress``:
    called with ``"<name>: <phase> <elapsed>"`` at most every ``every_s`` seconds.
    Returns the seconds it ran; a failure, or running past ``timeout_s``, is one line
    naming the log. ``stdin``: a file for the tool's standard input."""
    name = name or Path(cmd[0]).name
    parse = phase_parser(name)
    state = {"phase": "running", "last": time.monotonic()}
    lock = threading.Lock()
    t0 = time.monotonic()

    def report(force=False):
        now = time.monotonic()
        with lock:
            if progress is not None and (force or now - state["last"] >= every_s):
                state["last"] = now
                progress(f"{name}: {state['phase']} {elapsed_text(now - t0)}")

    log_path = Path(log_path)
    with open(log_path, "w") as log:
        try:
            proc = subprocess.Popen(cmd, cwd=cwd, stdin=stdin, text=True, errors="replace",
                                    stdout=stdout if stdout is not None else subprocess.PIPE,
                                    stderr=subprocess.PIPE if stdout is not None else subprocess.STDOUT)
        except OSError as e:
            raise TritiumError(f"cannot run {cmd[0]}: {e.strerror}") from None
        stream = proc.stderr if stdout is not None else proc.stdout

        def read():
            for line in stream:
                log.write(line)
                phase = parse(line.rstrip("\n")) if parse else None
                if phase and phase != state["phase"]:
                    state["phase"] = phase
                    report()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            while True:
                left = None if timeout_s is None else timeout_s - (time.monotonic() - t0)
                if left is not None and left <= 0:
                    proc.kill()
                    proc.wait()
                    reader.join()
                    raise TritiumError(f"{name} did not finish in {timeout_s / 60:g} min "
                                       f"({timeout_hint}); log so far: {log_path}")
                tick = min(1.0, max(every_s, 0.05))
                try:
                    proc.wait(timeout=tick if left is None else min(tick, left))
                    break
                except subprocess.TimeoutExpired:
                    log.flush()             # the log of a long run can be read as it goes
                    report()
        except BaseException:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            raise
        reader.join()
    if proc.returncode != 0:
        lines = log_path.read_text(errors="replace").strip().splitlines()
        tail = [ln for ln in lines if ln.startswith("ERROR")][-2:] + lines[-3:]
        tail = list(dict.fromkeys(tail)) or [f"exit status {proc.returncode}"]
        raise TritiumError(f"{name} failed ({' | '.join(tail)}); log: {log_path}{failure_hint}")
    return time.monotonic() - t0
