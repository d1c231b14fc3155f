"""Console output shared by the subcommands: progress bars, JSON, tables; argument checks."""

import contextlib
import json
import os
import sys

from tqdm import tqdm

#: Where :func:`print_json` writes while a command runs under :func:`json_only_stdout`.
_json_stream = None


def progress(iterable=None, total=None, desc=None, enabled=True, unit="it"):
    """A progress bar on stderr (so ``--json`` output on stdout stays clean)."""
    return tqdm(iterable, total=total, desc=desc, disable=not enabled, unit=unit,
                file=sys.stderr, leave=False, dynamic_ncols=True)


def step(message, quiet=False):
    """Print one progress line on stderr."""
    if not quiet:
        print(f"[tritium] {message}", file=sys.stderr, flush=True)


def print_json(obj):
    """Print ``obj`` as JSON on stdout (numpy scalars converted)."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"
    if _json_stream is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        _json_stream.write(text)
        _json_stream.flush()
        _json_stream.printed = True


class _JsonStream:
    def __init__(self, stream):
        self.stream, self.printed = stream, False

    def write(self, text):
        self.stream.write(text)

    def flush(self):
        self.stream.flush()


@contextlib.contextmanager
def json_only_stdout():
    """While a command runs with ``--json``, stdout carries only :func:`print_json`'s
    output: anything else written to it (``print``, child processes such as Verilator or
    yosys writing to file descriptor 1) goes to stderr. Yields an object whose
    ``printed`` says whether JSON was printed."""
    global _json_stream
    real = sys.stdout
    try:
        fd = real.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    if fd == 1:
        real.flush()
        saved = os.dup(1)
        os.dup2(2, 1)
        stream = os.fdopen(saved, "w", encoding="utf-8")
    else:
        stream = real
    _json_stream = _JsonStream(stream)
    sys.stdout = sys.stderr
    try:
        yield _json_stream
    finally:
        sys.stderr.flush()
        sys.stdout = real
        _json_stream = None
        if fd == 1:
            stream.flush()
            os.dup2(saved, 1)
            stream.close()


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def table(rows, headers, left=1):
    """Format rows as a plain aligned text table (the first ``left`` columns left-aligned)."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if i >= left else c.ljust(w)
                       for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_row(cells):
    """One Markdown table row of ``cells``."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def markdown_table(rows, headers):
    """A Markdown table: the header row, its rule and ``rows`` (lists of cells)."""
    return "\n".join([markdown_row(headers), "|" + "---|" * len(headers),
                      *(markdown_row(r) for r in rows)])


def at_least(low, kind=int):
    """An argparse ``type`` that refuses values below ``low`` (one-line usage error)."""
    import argparse

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse
