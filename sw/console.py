"""Console output shared by the subcommands: progress bars, JSON, tables."""

import json
import sys

from tqdm import tqdm


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
    print(json.dumps(obj, indent=2, sort_keys=True, default=_json_default))


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
