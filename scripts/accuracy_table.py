"""Accuracy of every low-bit weight scheme, trained and exported with the CLI.

Trains, for each data set (digits, mnist5k), network (SFC, the MNIST CNN) and
seed (0, 1, 2), one network per row of :data:`ROWS`: the float baseline, BWN
and TWN (straight-through estimators), ADMM binary / ternary / pow2-2 /
pow2-4 (from ADMM's own float start: ``--pretrain-epochs`` as many float
epochs with the network's sign activations, then ``--epochs`` ADMM epochs) and
DoReFa W2A2 / W4A4; ``--rows admm-init-binary,...`` adds ADMM started with
``--init`` from the ReLU float checkpoint of the same network, data set and
seed instead. Every run is ``tritium train ... --json -q``; every quantised
checkpoint is then exported with ``tritium export ... --verify --json -q``.
The commands run in this process (the CLI's ``main``, on one torch thread as
``--threads 1`` trains), which saves a Python and torch start per command.
A run's record (the train JSON, the export JSON or its error line, both
commands) goes to ``OUT/NAME.json``; a run whose record exists is skipped, so
an interrupted sweep resumes where it stopped (a record of another
``--epochs`` stops it). Progress lines go to stderr, the markdown table to
stdout.

    python scripts/accuracy_table.py --out out/accuracy            # sweep, then the table
    python scripts/accuracy_table.py --out out/accuracy --table    # the table of what exists (of --rows)
    python scripts/accuracy_table.py --out out/acc1 --epochs 1 --datasets digits --archs sfc
"""

import argparse
import contextlib
import io
import json
import os
import shlex
import sys
import time
from pathlib import Path

from tritium.sw.util.console import markdown_row, markdown_table

DATASETS = ("digits", "mnist5k")
ARCHS = ("sfc", "cnn")
SEEDS = (0, 1, 2)
ARCH_NAMES = {"sfc": "SFC", "cnn": "CNN", "tfc": "TFC"}

#: (key, label, method, tritium train options). The "admm-" rows train their own float
#: start first, with the network's sign activations, for as many epochs as the ADMM phase
#: (``--pretrain-epochs``); the "admm-init-" rows (not in the default sweep) take ``--init``
#: the float run (ReLU) of the same data set, network and seed instead, so "float" comes first.
_ADMM_KINDS = (("binary", "binary"), ("ternary", "ternary"), ("pow2-2", "pow2-2 {0, +-1, +-2}"),
               ("pow2-4", "pow2-4 {0, +-1, +-2, +-4}"))
ROWS = (
    ("float", "float", "-", ("--weights", "float")),
    ("bwn", "BWN (binary, alpha_c = mean abs W_c)", "STE", ("--weights", "binary")),
    ("twn", "TWN (ternary)", "STE", ("--weights", "ternary")),
    *((f"admm-{kind}", label, "ADMM", ("--weights", kind, "--method", "admm")) for kind, label in _ADMM_KINDS),
    ("dorefa-w2a2", "int2, 2-bit act. (W2A2)", "DoReFa", ("--weights", "int2", "--act-bits", "2")),
    ("dorefa-w4a4", "int4, 4-bit act. (W4A4)", "DoReFa", ("--weights", "int4", "--act-bits", "4")),
    *((f"admm-init-{kind}", label, "ADMM, --init float (ReLU)", ("--weights", kind, "--method", "admm"))
      for kind, label in _ADMM_KINDS),
)
ROW_KEYS = tuple(row[0] for row in ROWS)
DEFAULT_ROWS = tuple(key for key in ROW_KEYS if not key.startswith("admm-init-"))


def _takes_init(row):
    return row.startswith("admm-init-")


def run_name(dataset, arch, row, seed):
    return f"{dataset}-{arch}-{row}-s{seed}"


def plan(datasets=DATASETS, archs=ARCHS, seeds=SEEDS, rows=DEFAULT_ROWS):
    """``(dataset, arch, row, seed)`` of every run, cheapest group first, float before ADMM."""
    if any(_takes_init(r) for r in rows) and "float" not in rows:
        rows = ("float", *rows)
    order = [r for r in ROW_KEYS if r in rows]
    return [(d, a, r, s) for d in datasets for a in archs for s in seeds for r in order]


def commands(out, dataset, arch, row, seed, epochs):
    """The train command and (for quantised rows) the export command of one run."""
    options = dict((r[0], r[3]) for r in ROWS)[row]
    stem = out / run_name(dataset, arch, row, seed)
    train = ["tritium", "train", "--arch", arch, "--dataset", dataset, *options, "--epochs", str(epochs),
             "--seed", str(seed), "-o", f"{stem}.pt", "--force", "--json", "-q"]
    if _takes_init(row):
        train += ["--init", str(out / f"{run_name(dataset, arch, 'float', seed)}.pt")]
    elif row.startswith("admm-"):
        train += ["--pretrain-epochs", str(epochs)]
    if row == "float":
        return train, None
    return train, ["tritium", "export", f"{stem}.pt", "-o", f"{stem}.npz", "--force", "--verify", "--json", "-q"]


def _call(cmd):
    """``(exit code, stdout, last stderr line)`` of ``tritium ARGS`` run by the CLI's ``main``."""
    from tritium.sw.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(cmd[1:])
    lines = err.getvalue().strip().splitlines()
    return code, out.getvalue(), lines[-1] if lines else ""


def execute(train_cmd, export_cmd, call=_call):
    """Run one training and its export; returns the run's record."""
    record = {"train_command": shlex.join(train_cmd),
              "export_command": shlex.join(export_cmd) if export_cmd else None}
    rc, stdout, err = call(train_cmd)
    if rc != 0:
        raise RuntimeError(f"{record['train_command']} failed ({rc}): {err}")
    record["train"] = json.loads(stdout)
    if export_cmd is not None:
        rc, stdout, err = call(export_cmd)
        record["export"] = json.loads(stdout) if rc == 0 else {"error": err, "returncode": rc}
    return record


def sweep(out, runs, epochs, call=_call, log=print):
    """Run every run of ``runs`` whose record is not in ``out`` yet; returns how many ran."""
    out.mkdir(parents=True, exist_ok=True)
    done = 0
    for i, (dataset, arch, row, seed) in enumerate(runs, 1):
        path = out / f"{run_name(dataset, arch, row, seed)}.json"
        if path.exists():
            held = json.loads(path.read_text())["train"]["epochs"]
            if held != epochs:
                raise ValueError(f"{path} holds a {held}-epoch run, not {epochs}: give another --out")
            continue
        t0 = time.perf_counter()
        record = execute(*commands(out, dataset, arch, row, seed, epochs), call=call)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=1) + "\n")
        os.replace(tmp, path)
        done += 1
        log(f"[{i}/{len(runs)}] {path.stem}: {_summary(record)} ({time.perf_counter() - t0:.0f} s)")
    return done


def _summary(record):
    train, export = record["train"], record.get("export")
    text = f"accuracy {train['accuracy']:.4f}"
    if export is not None:
        text += (f", export error: {export['error']}" if "error" in export else
                 f", agreement {export['agreement']}, logits exact {export['logits_exact']}")
    return text


def load_records(out):
    """Every run record in ``out``, keyed by ``(dataset, arch, row, seed)``."""
    records = {}
    for path in sorted(Path(out).glob("*.json")):
        record = json.loads(path.read_text())
        dataset, arch, rest = path.stem.split("-", 2)
        row, seed = rest.rsplit("-s", 1)
        records[(dataset, arch, row, int(seed))] = record
    return records


def _pct(x):
    return f"{100 * x:.2f} %"


def _all(values, yes):
    """``yes`` with the run count if every value is, else the failing values listed."""
    if all(v == yes for v in values):
        return f"{yes} (all {len(values)})"
    return ", ".join(str(v) for v in values)


def table_row(dataset, arch, row, records):
    """One markdown row for the runs ``records`` (a list) of one data set, network and row."""
    label, method = {r[0]: (r[1], r[2]) for r in ROWS}[row]
    acc = [r["train"]["accuracy"] for r in records]
    seconds = sum(r["train"]["train_seconds"] for r in records) / len(records)
    cells = [dataset, ARCH_NAMES.get(arch, arch), label, method,
             f"{_pct(sum(acc) / len(acc))} ({100 * min(acc):.2f}-{100 * max(acc):.2f}) [n={len(acc)}]"]
    exports = [r.get("export") for r in records]
    if row == "float":
        cells += ["-", "-", "-"]
    elif any(e is None or "error" in e for e in exports):
        errors = [e["error"] if e else "not exported" for e in exports if e is None or "error" in e]
        cells += [f"export failed: {errors[0]}", "-", "-"]
    else:
        integer = [e["accuracy_integer"] for e in exports]
        cells += [_pct(sum(integer) / len(integer)), _all([e["agreement"] for e in exports], 1.0),
                  _all([e["logits_exact"] for e in exports], True)]
    return markdown_row(cells + [f"{seconds:.1f}"])


HEADERS = ("data set", "net", "weights", "method", "held-out acc. PyTorch (mean, min-max of seeds)",
           "integer model", "agreement", "logits exact", "train s (mean)")


def markdown(records, rows=ROW_KEYS):
    """The markdown table of ``records`` (from :func:`load_records`) of the rows ``rows``, in plan order."""
    groups = {}
    for (dataset, arch, row, seed), record in sorted(records.items(), key=lambda kv: kv[0][3]):
        groups.setdefault((dataset, arch, row), []).append(record)
    order = [(d, a, r) for d in DATASETS for a in ("tfc", *ARCHS) for r in ROW_KEYS if r in rows]
    lines = [table_row(*key, groups[key]) for key in order if key in groups]
    return "\n".join([markdown_table([], HEADERS), *lines])


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("out/accuracy"), help="folder of checkpoints and records")
    p.add_argument("--epochs", type=int, default=20, help="epochs of every run (ADMM: ADMM epochs)")
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--archs", default=",".join(ARCHS))
    p.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    p.add_argument("--rows", default=",".join(DEFAULT_ROWS), help=f"subset of {','.join(ROW_KEYS)}")
    p.add_argument("--table", action="store_true", help="print the table of the existing records only")
    args = p.parse_args(argv)
    args.datasets, args.archs, args.rows = (v.split(",") for v in (args.datasets, args.archs, args.rows))
    args.seeds = [int(s) for s in args.seeds.split(",")]
    unknown = sorted(set(args.rows) - set(ROW_KEYS))
    if unknown:
        p.error(f"unknown row {unknown[0]!r}; rows are {','.join(ROW_KEYS)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if not args.table:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            sweep(args.out, plan(args.datasets, args.archs, args.seeds, args.rows), args.epochs,
                  log=lambda m: print(m, file=sys.stderr, flush=True))
        finally:
            torch.set_num_threads(threads)
    print(markdown(load_records(args.out), args.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
