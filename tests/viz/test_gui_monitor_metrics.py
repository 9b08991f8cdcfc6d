"""The training monitor's metrics in the real app under Xvfb: a recorded run with metric events at
every snapshot, then two more runs overlaid through the Compare runs controls (typed path, runs
nearby), a help tooltip, and Remove (issue 22: 1, 4, 5, 9).

Set ADA_STUDIO_SHOTS to a folder to keep the screenshots (docs/images/monitor-metrics.png and
monitor-compare-runs.png are taken this way)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.viz.recorded_metrics import SNAPSHOT_EVERY, best_kimg, record_run
from tests.viz.test_gui_xvfb import RunningApp, _crop, _point, _type_into, running_app

AUGS = ("noaug", "ada", "apa")
GROUPS = ["distances", "kid", "pr", "copies", "leaks"]
# implot's default colormap (Deep): the attached run, the first and the second compared run.
RUN_COLOURS = {"ada": (76, 114, 176), "noaug": (221, 132, 82), "apa": (85, 168, 104)}
KEEP_SHOTS = "ADA_STUDIO_SHOTS"  # a folder to keep the screenshots in (docs/images/monitor-*.png come from it)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {aug: record_run(root / f"0000{i}-digits-{aug}", aug) for i, aug in enumerate(AUGS)}


@pytest.fixture(scope="module")
def app(xvfb: str, runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    args = ["--run", str(runs["ada"]), "--view", "training", "--panels", "monitor", "--size", "1280x800",
            "--fps-cap", "30"]  # fmt: skip
    with running_app(xvfb, tmp_path_factory.mktemp("gui-metrics"), args) as running:
        yield running


def _colour_pixels(img: np.ndarray, rgb: tuple[int, int, int], tol: float = 30.0) -> int:
    return int((np.abs(img - np.asarray(rgb, dtype=np.float64)).max(axis=-1) < tol).sum())


def _keep(name: str, img: np.ndarray) -> None:
    folder = os.environ.get(KEEP_SHOTS)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.astype(np.uint8)).save(Path(folder) / name)


def test_the_monitor_plots_metrics_and_overlays_compared_runs(app: RunningApp, runs: dict[str, Path]) -> None:
    snapshots = int(40 / SNAPSHOT_EVERY)
    st = app.until(lambda s: s["monitor"]["status"] == "finished" and s["monitor"]["metrics"], "the run's metrics")
    mon = st["monitor"]
    assert mon["plots"] == ["augmentation p", "r_t = E[sign D(real)]", *GROUPS]  # next to p and r_t
    assert set(mon["metrics"].values()) == {snapshots} and "leak/rotate90" in mon["metrics"]
    assert mon["best"]["kimg"] == best_kimg("ada") and mon["best"]["key"] == "fd_offline"
    st = app.until(lambda s: all(f"monitor_plot:{g}" in s["rects"] for g in GROUPS), "the metric plots on screen")
    app.xdotool("mousemove", "--window", app.window, "5", "5")  # no hover read-out on a plot
    app.fresh_state()
    alone = app.screenshot()
    _keep("monitor-metrics.png", alone)
    fd_rect = st["rects"]["monitor_plot:distances"]
    assert _crop(alone, fd_rect).std() > 10, "the FD plot is blank"
    assert _colour_pixels(_crop(alone, fd_rect), RUN_COLOURS["noaug"]) < 20  # no second run yet

    # A typed path, then a run picked from the runs next to the attached one.
    st = _open_compare(app)
    _type_into(app, st["rects"]["monitor_compare_path"], str(runs["noaug"]))
    app.until(lambda s: [c["run_dir"] for c in s["monitor"]["compared"]] == [str(runs["noaug"])], "noaug compared")
    app.click(app.fresh_state()["rects"]["monitor_compare_nearby"], fx=0.5)
    choice = f"monitor_compare_choice:{runs['apa'].name}"
    app.until(lambda s: choice in s["rects"], "the runs nearby")
    app.fresh_state()  # a popup's first frame lays it out unseen: click where the next frames drew it
    st = app.fresh_state()
    assert f"monitor_compare_choice:{runs['ada'].name}" not in st["rects"]  # the attached run is not offered
    app.click(st["rects"][choice], fx=0.3)
    st = app.until(lambda s: len(s["monitor"]["compared"]) == 2 and all(
        c["metrics"] for c in s["monitor"]["compared"]), "two compared runs read")
    compared = {Path(c["run_dir"]).name: c for c in st["monitor"]["compared"]}
    for aug in ("noaug", "apa"):
        c = compared[runs[aug].name]
        assert set(c["metrics"].values()) == {snapshots} and c["best"]["kimg"] == best_kimg(aug)
    assert st["monitor"]["compare_error"] is None
    app.fresh_state()
    overlaid = app.screenshot()
    _keep("monitor-compare-runs.png", overlaid)
    st = app.state()
    fd = _crop(overlaid, st["rects"]["monitor_plot:distances"])
    for aug, rgb in RUN_COLOURS.items():  # one colour per run in the FD plot
        assert _colour_pixels(fd, rgb) > 30, f"no {aug} line in the FD plot"

    # How to read the leak indicator: its help marker (on screen, whatever the toolbar holds) opens a tooltip.
    width = st["window"][0]
    assert all(st["rects"][f"monitor_help:{g}"][2] < width - 8 for g in GROUPS), "a help marker is cut off"
    x, y = _point(st["rects"]["monitor_help:leaks"], 0.5, 0.5)
    app.xdotool("mousemove", "--window", app.window, str(x), str(y))
    app.fresh_state()
    hovered = app.screenshot()
    _keep("monitor-leak-help.png", hovered)
    below = (x - 300, y + 8, x + 40, y + 120)
    assert np.abs(_crop(hovered, below) - _crop(overlaid, below)).mean() > 5, "no tooltip under the help marker"
    app.xdotool("mousemove", "--window", app.window, "5", "5")

    app.click(st["rects"]["monitor_compare_remove:0"], fx=0.5)
    st = app.until(lambda s: len(s["monitor"]["compared"]) == 1, "noaug removed")
    assert st["monitor"]["compared"][0]["run_dir"] == str(runs["apa"])


def _open_compare(app: RunningApp) -> dict[str, Any]:
    st = app.state()
    if "monitor_compare_path" not in st["rects"]:
        app.click(st["rects"]["monitor_compare"], fx=0.2)
        st = app.until(lambda s: "monitor_compare_path" in s["rects"], "the Compare runs controls")
    return st


def test_a_path_that_is_no_run_directory_is_refused_in_one_line(app: RunningApp, tmp_path: Path) -> None:
    st = _open_compare(app)
    _type_into(app, st["rects"]["monitor_compare_path"], str(tmp_path))
    st = app.until(lambda s: s["monitor"]["compare_error"], "the refusal")
    assert st["monitor"]["compare_error"].startswith(f"{tmp_path}: not a run directory")


def test_compare_on_the_command_line_overlays_runs_from_the_start(
    xvfb: str, runs: dict[str, Path], tmp_path: Path
) -> None:
    args = ["--run", str(runs["ada"]), "--compare", str(runs["noaug"]), "--compare", str(runs["apa"]),
            "--view", "training", "--panels", "monitor", "--size", "1280x800", "--fps-cap", "30"]  # fmt: skip
    with running_app(xvfb, tmp_path, args) as running:
        st = running.until(lambda s: len(s["monitor"]["compared"]) == 2 and all(
            c["metrics"] for c in s["monitor"]["compared"]), "both compared runs read")
    assert [c["run_dir"] for c in st["monitor"]["compared"]] == [str(runs["noaug"]), str(runs["apa"])]


def test_compare_with_a_path_that_is_no_run_directory_exits_in_one_line(tmp_path: Path, capsys) -> None:
    from viz.app import parse_args

    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--compare", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--compare {tmp_path}: not a run directory (give <outdir>/<NNNNN>-<desc>" in err[0]
