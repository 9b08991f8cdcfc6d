#!/usr/bin/env bash
# Runs the test suite. GUI tests need Xvfb and Mesa: installed here when missing and we may
# (without them the GUI tests are skipped, each saying why).
set -uo pipefail
PYBIN=${1:-.venv/bin/python}
bash "$(dirname "$0")/system_deps.sh" test
"$PYBIN" -m pytest tests "${@:2}"
