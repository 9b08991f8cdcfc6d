#!/usr/bin/env bash
# Runs the test suite. GUI tests need Xvfb and Mesa: installed here when missing and we may.
set -uo pipefail
PYBIN=${1:-.venv/bin/python}
need=()
command -v Xvfb >/dev/null || need+=(xvfb)
command -v xdotool >/dev/null || need+=(xdotool)
ldconfig -p 2>/dev/null | grep -q libEGL.so.1 || need+=(libegl1)
dpkg -s libegl-mesa0 >/dev/null 2>&1 || need+=(libegl-mesa0)
ldconfig -p 2>/dev/null | grep -q libGL.so.1 || need+=(libgl1 libglx-mesa0)
ldconfig -p 2>/dev/null | grep -q libgbm.so.1 || need+=(libgbm1)
dpkg -s libgl1-mesa-dri >/dev/null 2>&1 || need+=(libgl1-mesa-dri)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "test: installing ${need[*]}"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}") >/dev/null \
            || echo "test: could not install ${need[*]}; GUI tests will be skipped"
    else
        echo "test: missing ${need[*]} (not root, not installing); GUI tests will be skipped"
    fi
fi
"$PYBIN" -m pytest tests "${@:2}"
