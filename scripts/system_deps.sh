#!/usr/bin/env bash
# Installs the Debian packages a purpose needs when they are missing (as root, with apt), else says
# which are missing. Usage: system_deps.sh viz|test. Never fails: a missing package is reported, and
# the program that needs it says what it cannot do.
set -uo pipefail
purpose=${1:?usage: system_deps.sh viz|test}
need=()
# viz: OpenGL/EGL through Mesa (present on any desktop; EGL surfaceless renders with no display).
ldconfig -p 2>/dev/null | grep -q libEGL.so.1 || need+=(libegl1)
dpkg -s libegl-mesa0 >/dev/null 2>&1 || need+=(libegl-mesa0)
ldconfig -p 2>/dev/null | grep -q libGL.so.1 || need+=(libgl1 libglx-mesa0)
ldconfig -p 2>/dev/null | grep -q libgbm.so.1 || need+=(libgbm1)
dpkg -s libgl1-mesa-dri >/dev/null 2>&1 || need+=(libgl1-mesa-dri)
if [ "$purpose" = test ]; then
    # test: the GUI tests open real windows on a private Xvfb and click with xdotool.
    command -v Xvfb >/dev/null || need+=(xvfb)
    command -v xdotool >/dev/null || need+=(xdotool)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "$purpose: installing ${need[*]} (apt)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}") \
        >/dev/null 2>&1 || echo "$purpose: could not install ${need[*]}; install them with your package manager"
else
    echo "$purpose: missing ${need[*]}; install them with your package manager (sudo apt-get install ${need[*]})"
fi
exit 0
