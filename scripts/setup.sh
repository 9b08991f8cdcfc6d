#!/usr/bin/env bash
# Creates the virtual environment and installs ADA Studio with its GUI, test and video extras.
set -euo pipefail
PY=${1:-python3}
VENV=${2:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "torch==2.13.0"
"$VENV/bin/python" -m pip install -q -e ".[gui,dev,video]"
# Refuse an environment that pulled CUDA wheels or torchvision behind our back.
if "$VENV/bin/python" -m pip list 2>/dev/null | grep -qiE '^(nvidia-|torchvision )'; then
    echo "setup: a dependency pulled CUDA wheels or torchvision; see pyproject.toml" >&2
    exit 1
fi
