#!/usr/bin/env bash
# Creates the trecx environment, then runs the command given (if any) inside it.
#   bash install_conda_packages.sh                       # set up only
#   bash install_conda_packages.sh python -m pytest tests # set up, then run the tests
# A conda env "trecx" when conda is on PATH (and TRECX_USE_VENV is unset), else ./.venv with pip.
# Idempotent: the install is skipped while requirements.txt is unchanged since the last one.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/requirements.txt"
want="$(sha256sum "$req" | cut -d' ' -f1)"

if command -v conda >/dev/null 2>&1 && [ -z "${TRECX_USE_VENV:-}" ]; then
  env_name="${TRECX_CONDA_ENV:-trecx}"
  if ! conda run -n "$env_name" python -c 'pass' >/dev/null 2>&1; then
    conda create -y -q -n "$env_name" python=3.11 pip
  fi
  prefix="$(conda run -n "$env_name" python -c 'import sys; print(sys.prefix)')"
  py="$prefix/bin/python"
else
  prefix="$here/.venv"
  if [ ! -x "$prefix/bin/python" ]; then
    python3 -m venv "$prefix"
  fi
  py="$prefix/bin/python"
fi

stamp="$prefix/.trecx-requirements.sha256"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing requirements into $prefix (first run takes a few minutes)"
  "$py" -m pip install -q --upgrade pip
  "$py" -m pip install -q -r "$req"
  echo "$want" > "$stamp"
else
  echo "[setup] environment $prefix is up to date"
fi

# The Cortex-M firmware's Arm toolchain and QEMU are not installed here: the first firmware build installs them
# with apt (common/edge/mcu.py; TRECX_MCU=0 stops it), so the main job's set-up stays short.

if [ "$#" -gt 0 ]; then
  cd "$here"
  export PATH="$prefix/bin:$PATH"
  exec "$@"
fi
