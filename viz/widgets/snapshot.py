"""Snapshot panel: open a checkpoint, a public .pkl or a run directory; recent list; load status."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from imgui_bundle import imgui

from viz.panel import Intent, OpenSource, Scene, StatePanel
from viz.ui import FrameContext, fit_path, help_marker, record_item, text_colored

__all__ = ["SnapshotPanel", "SnapshotState", "draw_snapshot"]


@dataclass
class SnapshotState:
    path_input: str = ""
    recent: list[str] = field(default_factory=list)
    # What was asked for (a file or a run directory) and what is loaded from it.
    source: str | None = None
    loaded_file: str | None = None
    description: str = ""
    error: str | None = None
    loading: bool = False
    load_ms: float = 0.0
    follow_run: bool = True  # for a run directory: reload when newer weights appear

    @property
    def is_run_dir(self) -> bool:
        return self.source is not None and Path(self.source).is_dir()


def draw_snapshot(state: SnapshotState, ctx: FrameContext) -> str | None:
    """Draws the panel; returns the path the user asked to open, if any."""
    open_path: str | None = None
    imgui.set_next_item_width(-ctx.px(95))
    entered, state.path_input = imgui.input_text(
        "##snapshot_path", state.path_input, imgui.InputTextFlags_.enter_returns_true
    )
    record_item(ctx, "snapshot_path")
    if imgui.is_item_hovered() and not imgui.is_item_active() and state.path_input:
        imgui.set_tooltip(state.path_input)  # the field shows a long path's start; the name is at its end
    imgui.same_line()
    if (imgui.button("Open") or entered) and state.path_input.strip():
        open_path = state.path_input.strip()
    help_marker(
        "A snapshot (.safetensors + .json), a public StyleGAN2-ADA .pkl (imported without running its "
        "code), or a run directory (follows its newest snapshot and live weights)."
    )
    if state.recent and imgui.begin_combo("Recent", "choose...", imgui.ComboFlags_.height_large):
        width = imgui.get_content_region_avail().x
        for item in state.recent:
            label = fit_path(item, width, imgui.calc_text_size)
            if imgui.selectable(f"{label}##{item}", item == state.source)[0]:
                state.path_input = item
                open_path = item
        imgui.end_combo()
    if state.source and Path(state.source).is_dir():
        _, state.follow_run = imgui.checkbox("Follow newest weights of the run", state.follow_run)
    _draw_status(state)
    return open_path


def _draw_status(state: SnapshotState) -> None:
    if state.loading:
        text_colored("info", f"loading {state.source} ...")
    if state.error:
        text_colored("error", f"could not load: {state.error}")
    if state.loaded_file:
        text_colored("ok", state.description)
        if state.is_run_dir:
            imgui.text_disabled(f"from {Path(state.loaded_file).name} ({state.load_ms:.0f} ms)")
    elif not state.loading and not state.error:
        imgui.text_disabled("no generator loaded")


class SnapshotPanel(StatePanel[SnapshotState]):
    name, title, state_type = "snapshot", "Snapshot", SnapshotState

    def draw(self, ctx: FrameContext, scene: Scene) -> list[Intent]:
        path = draw_snapshot(self.state, ctx)
        return [OpenSource(path)] if path else []
