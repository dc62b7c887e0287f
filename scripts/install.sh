#!/usr/bin/env bash
# Create .venv (Python 3.11) and install the pinned tree (requirements*.txt under
# constraints.txt) plus the project itself (editable, for the `bridge` CLI).
# uv is used when it is on PATH; otherwise it is bootstrapped into .venv with pip;
# if even that fails, plain pip does the whole install. Re-running is a no-op
# while the pin files are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
STAMP=.venv/.installed
digest=$(cat requirements.txt requirements-dev.txt constraints.txt pyproject.toml | sha256sum | cut -c1-16)
if [ -x .venv/bin/python ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$digest" ]; then
  exit 0
fi

if ! command -v "$PY" >/dev/null 2>&1; then
  echo "install: $PY not found. Install Python 3.11 (or set PYTHON=/path/to/python3.11)." >&2
  exit 2
fi

if [ ! -x .venv/bin/python ]; then
  echo "install: creating .venv with $PY"
  "$PY" -m venv .venv
fi

UV=$(command -v uv || true)
if [ -z "$UV" ]; then
  if .venv/bin/pip install --quiet --disable-pip-version-check uv==0.13.9 2>/dev/null; then
    UV=.venv/bin/uv
  fi
fi

start=$(date +%s)
if [ -n "$UV" ]; then
  echo "install: uv pip install (pinned by constraints.txt)"
  "$UV" pip install --quiet --python .venv/bin/python \
    -r requirements.txt -r requirements-dev.txt -c constraints.txt
  "$UV" pip install --quiet --python .venv/bin/python --no-deps -e .
else
  echo "install: uv unavailable, falling back to pip (about a minute)"
  .venv/bin/pip install --quiet --disable-pip-version-check \
    -r requirements.txt -r requirements-dev.txt -c constraints.txt
  .venv/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
fi
echo "$digest" > "$STAMP"
echo "install: done in $(( $(date +%s) - start )) s"
