#!/usr/bin/env bash
# Creates or updates target/compat-venv: the aws CLI, boto3 and pika pinned in
# tests/compat/requirements.txt, for the compatibility tests. A no-op (milliseconds)
# when the venv was built from the same requirements by the same interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."

req=tests/compat/requirements.txt
venv=${BERTH_COMPAT_VENV:-target/compat-venv}
stamp=$venv/.requirements.sha256
python=${PYTHON:-python3}

if ! command -v "$python" >/dev/null 2>&1; then
  echo "[compat-venv] $python not found: install python3 (scripts/prereqs.sh does)" >&2
  exit 1
fi
want="$(sha256sum "$req" | cut -d' ' -f1) $("$python" -c 'import sys; print(sys.version.split()[0])')"
if [ -x "$venv/bin/python" ] && [ -x "$venv/bin/aws" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi

start=$(date +%s)
echo "[compat-venv] building $venv from $req" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req"
"$venv/bin/aws" --version >&2
echo "$want" >"$stamp"
echo "[compat-venv] ready in $(( $(date +%s) - start )) s" >&2
