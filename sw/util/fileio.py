"""File helpers: atomic writes (a failure never leaves half a file), modes that follow the
umask, and the checks every command makes on its output paths before any long work."""

import hashlib
import os
import tempfile
from pathlib import Path

from ...hw.errors import TritiumError


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename.

    The file gets the mode a plain ``open(path, "w")`` would give it (0o666 less the
    umask), not the 0o600 of the temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path, text):
    """Text flavour of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def temp_dir(prefix, parent):
    """A new folder in ``parent`` (made if missing) with the mode ``mkdir`` would give it
    (0o777 less the umask), not the 0o700 of :func:`tempfile.mkdtemp`; for a folder that
    is filled, then renamed into place."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(path, 0o777 & ~_umask())
    return path


def sha256_file(path):
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- output checks

def _writable_folder(folder, what):
    """Refuse unless new files can be made in ``folder``, or in the nearest folder above it
    that exists (``folder`` itself is then made). Probes with a real file, so the answer
    is the file system's, whoever runs the command."""
    existing = Path(folder)
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise TritiumError(f"{what}: {existing} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".tritium-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise TritiumError(f"{what}: cannot write in {existing} ({e.strerror or e})") from None


def check_output_file(path, force=False, option="-o"):
    """Refuse, with one line, an output file that cannot or may not be written: one that
    exists (unless ``force``), a folder, or one in a folder that cannot be written."""
    path = Path(path)
    what = f"{option} {path}"
    if path.is_dir():
        raise TritiumError(f"{what} is a folder: give a file name")
    if path.exists() and not force:
        raise TritiumError(f"{what} exists (--force overwrites it)")
    _writable_folder(path.parent, what)
    return path


def check_output_folder(path, force=False, option="-o"):
    """Refuse, with one line, an output folder that cannot or may not be written: a file,
    a folder that holds anything (unless ``force``), or one that cannot be written."""
    path = Path(path)
    what = f"{option} {path}"
    if path.exists() and not path.is_dir():
        raise TritiumError(f"{what} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise TritiumError(f"{what} exists and is not empty (--force writes into it)")
    _writable_folder(path, what)
    return path


def check_work_folder(path, option):
    """Refuse a working folder a command keeps its outputs and caches in (and may reuse)
    when it is a file or cannot be written; holding files is its normal state."""
    path = Path(path)
    what = f"{option} {path}"
    if path.exists() and not path.is_dir():
        raise TritiumError(f"{what} exists and is not a folder")
    _writable_folder(path, what)
    return path
