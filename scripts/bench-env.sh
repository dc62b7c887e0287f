#!/usr/bin/env bash
# Create .venv-bench (Python 3.11): the bench-only environment with dlt for
# bench/extract_stage.py's comparison readers, from bench/requirements-dlt.txt
# (exact pins). It never touches .venv, the bridge's runtime tree. uv when it is
# available (.venv's own or on PATH), pip otherwise. A no-op while the pins are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
STAMP=.venv-bench/.installed
digest=$(sha256sum bench/requirements-dlt.txt | cut -c1-16)
if [ -x .venv-bench/bin/python ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$digest" ]; then
  exit 0
fi
if [ ! -x .venv-bench/bin/python ]; then
  echo "bench-env: creating .venv-bench with $PY"
  "$PY" -m venv .venv-bench
fi
UV=$(command -v uv || true)
[ -z "$UV" ] && [ -x .venv/bin/uv ] && UV=.venv/bin/uv
start=$(date +%s)
if [ -n "$UV" ]; then
  "$UV" pip install --quiet --python .venv-bench/bin/python -r bench/requirements-dlt.txt
else
  .venv-bench/bin/pip install --quiet --disable-pip-version-check -r bench/requirements-dlt.txt
fi
echo "$digest" > "$STAMP"
echo "bench-env: done in $(( $(date +%s) - start )) s"
