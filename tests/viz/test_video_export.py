"""Video export from the GUI: the form's intent, and the exporter running core.studio.video off the GUI thread."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from core.studio.video import VideoOptions
from viz.panel import ExportVideo
from viz.video_export import VideoExporter
from viz.widgets.video import VideoState, export_intent


def test_the_form_becomes_an_export_intent_or_a_one_line_error() -> None:
    state = VideoState(out=" walk.gif ", seeds="0-2,7", grid="2x1", seconds=2.0, fps=10.0, loop=False)
    assert export_intent(state) == ExportVideo(
        out="walk.gif", seeds=(0, 1, 2, 7), grid="2x1", seconds=2.0, fps=10.0, loop=False, kind="lerp"
    )
    assert state.error is None
    state.seeds = "0-x"
    assert export_intent(state) is None
    assert state.error is not None and "0-x" in state.error and "\n" not in state.error


def test_the_exporter_writes_the_walk_off_the_gui_thread(tmp_path: Path, fixture_pkl: Path) -> None:
    exporter = VideoExporter()
    out = tmp_path / "walk.gif"
    opts = VideoOptions(network=str(fixture_pkl), device="cpu", out=str(out), seeds=(0, 1), seconds=0.4, fps=5.0)
    assert exporter.start(opts)
    assert exporter.wait(120)
    status = exporter.status()
    assert not status.running and not status.error, status.message
    assert status.message == f"wrote 2 frames to {out}"
    with Image.open(out) as gif:
        assert gif.n_frames == 2 and gif.size == (32, 32)


def test_a_bad_export_is_one_line_and_the_exporter_can_start_again(tmp_path: Path, fixture_pkl: Path) -> None:
    exporter = VideoExporter()
    bad = VideoOptions(network=str(fixture_pkl), out=str(tmp_path / "walk.avi"), seeds=(0,), seconds=0.2, fps=5.0)
    assert exporter.start(bad) and exporter.wait(60)
    status = exporter.status()
    assert status.error and "walk.avi" in status.message and "\n" not in status.message
    good = VideoOptions(network=str(fixture_pkl), out=f"{tmp_path}/frames/", seeds=(0,), seconds=0.2, fps=5.0)
    assert exporter.start(good) and exporter.wait(60)
    assert not exporter.status().error and len(list((tmp_path / "frames").glob("*.png"))) == 1
