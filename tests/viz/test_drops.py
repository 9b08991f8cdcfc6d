"""Files dropped on the window: images become the projection's target, models open, the rest is said."""

from __future__ import annotations

from pathlib import Path

from viz.app import App
from viz.drops import classify_drop
from viz.widgets.projection import ProjectionState


def test_a_drop_is_classified_by_what_the_path_is(tmp_path: Path) -> None:
    run = tmp_path / "00001-digits"
    run.mkdir()
    assert classify_drop(str(tmp_path / "me.JPG")).kind == "image"
    assert classify_drop(str(tmp_path / "face.png")).kind == "image"
    for model in ("network-snapshot-000040.json", "g.safetensors", "ffhq.pkl"):
        assert classify_drop(str(tmp_path / model)).kind == "model"
    assert classify_drop(str(run)).kind == "model"  # a run directory: its newest snapshot
    unknown = classify_drop(str(tmp_path / "notes.txt"))
    assert unknown.kind == "unknown" and "notes.txt" in unknown.message and "drop one of those" in unknown.message


class _Host:
    def __init__(self, paths: list[str]) -> None:
        self.paths = paths

    def take_dropped(self) -> list[str]:
        taken, self.paths = self.paths, []
        return taken


class _Source:
    def __init__(self) -> None:
        self.opened: list[str] = []

    def open(self, path: str) -> None:
        self.opened.append(path)


def test_the_app_routes_dropped_files(tmp_path: Path) -> None:
    # App._take_drops alone, on stand-ins for the host and the model source (no window needed).
    app = object.__new__(App)
    image, model, other = str(tmp_path / "me.png"), str(tmp_path / "g.json"), str(tmp_path / "a.txt")
    app.host, app.source, app.projected = _Host([image, model, other]), _Source(), ProjectionState(error="old")
    app._open_panel, messages = None, []
    app.message = messages.append  # type: ignore[method-assign]
    app._take_drops()
    assert app.projected.target == image and app.projected.error is None
    assert app._open_panel == "projection"  # unfolded in the next frame
    assert app.source.opened == [model]
    assert len(messages) == 3 and "projection target" in messages[0] and "a.txt" in messages[2]
    app._take_drops()  # taken once
    assert app.source.opened == [model] and len(messages) == 3
