#!/usr/bin/env bash
# `make viz`: opens the visualizer. With no display (a server, a container, CI), renders its views
# offscreen through Mesa's EGL instead and says where the pictures are.
set -uo pipefail
PYBIN=${1:-.venv/bin/python}
shift || true
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/scripts/system_deps.sh" viz
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
    exec "$PYBIN" "$here/launch_viz.py" "$@"
fi
out=${VIZ_OFFSCREEN_DIR:-viz-offscreen}
echo "viz: no display (DISPLAY and WAYLAND_DISPLAY are unset): rendering the visualizer offscreen into $out/"
mkdir -p "$out"
# Each view with the panels that drive it: seeds as a grid, the augmentation controls on the
# bundled digits, the training controls (Start training's defaults run on a laptop CPU).
views=("generator --grid 4x3 --panels snapshot,seeds,trunc_noise"
       "augment --panels snapshot,augment"
       "training --panels snapshot,control")
# Four frames each, the last kept: plots fit their axes to the data a frame after it arrives.
for spec in "${views[@]}"; do
    read -r view extra <<<"$spec"
    tmp=$(mktemp -d)
    # shellcheck disable=SC2086
    "$PYBIN" "$here/launch_viz.py" --offscreen 4 --out "$tmp" --view $view $extra "$@" || { rc=$?; rm -rf "$tmp"; exit $rc; }
    last=$(ls "$tmp"/frame-*.png | tail -n 1)
    mv "$last" "$out/$view.png"
    rm -rf "$tmp"
    echo "viz: $out/$view.png"
done
echo "viz: on a desktop, 'make viz' opens the window instead"
