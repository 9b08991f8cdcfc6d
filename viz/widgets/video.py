"""Video panel: export a latent walk of the generator on screen (core.studio.video), with progress.

The walk goes through the seed list, or, once it holds any, through the keyframe strip: seeds
taken from the view and saved ws (projected_w.npz files), in an order the strip lets you change.
While the export runs on its own thread, a progress bar counts the frames written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from imgui_bundle import imgui

from core.studio.common import StudioError, parse_grid, parse_number_list
from core.studio.video import KINDS, keyframe_seed
from viz.panel import ExportVideo, FormPanel, Intent, Scene
from viz.studio_jobs import JobStatus
from viz.ui import (
    FrameContext,
    action_button,
    help_marker,
    job_progress_bar,
    job_status_line,
    record_item,
    reset_button,
)

__all__ = ["VideoPanel", "VideoState", "draw_video", "export_intent", "key_label"]


@dataclass
class VideoState:
    out: str = "walk.mp4"
    seeds: str = "0-7"
    grid: str = "1x1"
    seconds: float = 8.0
    fps: float = 30.0
    loop: bool = True
    kind: str = "lerp"
    # The keyframe strip: "12" is seed 12, anything else a projected_w.npz file; used when not empty.
    keys: list[str] = field(default_factory=list)
    selected: int = -1  # the strip's selected keyframe (moved or removed by the buttons), -1: none
    strip_open: bool = False  # the strip's tree node (folded, it is one line: the form stays short)
    w_file: str = ""  # a saved w to add to the strip
    error: str | None = None  # the form's own error (a seed list that does not parse, a missing file)

    # -- the strip (kept here, not in the drawing code, so tests can drive it without a window)

    def add_key(self, key: str) -> None:
        """Append a keyframe after the selected one (or at the end) and select it."""
        at = self.selected + 1 if 0 <= self.selected < len(self.keys) else len(self.keys)
        self.keys.insert(at, key)
        self.selected = at

    def add_w_file(self, path: str) -> None:
        path = path.strip()
        if not path or not Path(path).expanduser().is_file():
            self.error = f"w file {path or '(empty)'}: not found; name a projected_w.npz file"
            return
        self.error = None
        self.add_key(str(Path(path).expanduser()))

    def move_selected(self, step: int) -> None:
        i, j = self.selected, self.selected + step
        if 0 <= i < len(self.keys) and 0 <= j < len(self.keys):
            self.keys[i], self.keys[j] = self.keys[j], self.keys[i]
            self.selected = j

    def remove_selected(self) -> None:
        if 0 <= self.selected < len(self.keys):
            del self.keys[self.selected]
            self.selected = min(self.selected, len(self.keys) - 1)


def key_label(key: str) -> str:
    """``seed 12`` or ``w proj/projected_w.npz`` (a file by its folder and name)."""
    seed = keyframe_seed(key)
    if seed is not None:
        return f"seed {seed}"
    path = Path(key)
    return f"w {path.parent.name}/{path.name}" if path.parent.name else f"w {path.name}"


def export_intent(state: VideoState) -> ExportVideo | None:
    """The export the form describes, or None with ``state.error`` saying what to fix."""
    try:
        seeds = () if state.keys else tuple(parse_number_list(state.seeds, "seeds"))
        parse_grid(state.grid)
    except StudioError as exc:
        state.error = str(exc)
        return None
    state.error = None
    return ExportVideo(
        out=state.out.strip(), seeds=seeds, grid=state.grid.strip(), seconds=state.seconds, fps=state.fps,
        loop=state.loop, kind=state.kind, keyframes=tuple(state.keys),
    )  # fmt: skip


def draw_video(state: VideoState, ctx: FrameContext, scene: Scene) -> bool:
    """Draws the form; True when Export was clicked."""
    # Labels carry ##video: "Seeds" alone would share its ImGui id with the Seeds panel's header.
    imgui.set_next_item_width(-ctx.px(70))
    _, state.out = imgui.input_text("Output##video", state.out)
    record_item(ctx, "video_out")
    help_marker("name.mp4 (H.264), name.gif, or a folder ending in / for PNG frames")
    imgui.begin_disabled(bool(state.keys))
    imgui.set_next_item_width(ctx.px(140))
    _, state.seeds = imgui.input_text("Seeds##video", state.seeds)
    record_item(ctx, "video_seeds")
    imgui.end_disabled()
    if state.keys and imgui.is_item_hovered(imgui.HoveredFlags_.allow_when_disabled):
        imgui.set_tooltip("the keyframe strip is used while it holds any keyframe")
    imgui.same_line()
    _draw_strip(state, ctx, scene)
    imgui.set_next_item_width(ctx.px(140))
    _, state.grid = imgui.input_text("Grid WxH##video", state.grid)
    record_item(ctx, "video_grid")
    imgui.set_next_item_width(ctx.px(140))
    _, state.seconds = imgui.input_float("Seconds##video", state.seconds, 1.0, 5.0, "%.1f")
    record_item(ctx, "video_seconds")
    imgui.set_next_item_width(ctx.px(140))
    _, state.fps = imgui.input_float("Frames/s##video", state.fps, 1.0, 10.0, "%.0f")
    record_item(ctx, "video_fps")
    _, state.loop = imgui.checkbox("Loop##video", state.loop)
    record_item(ctx, "video_loop")
    imgui.same_line()
    imgui.set_next_item_width(ctx.px(90))
    changed, idx = imgui.combo("Interpolation##video", KINDS.index(state.kind), list(KINDS))
    record_item(ctx, "video_kind")
    if changed:
        state.kind = KINDS[idx]
    job = scene.jobs.get("video") or JobStatus()
    clicked = action_button(ctx, "Export video", "video_export", job.running or not scene.model_loaded)
    imgui.same_line()
    reset_button(ctx, state, "video")
    if job.running:
        job_progress_bar(ctx, job.progress, "video_progress", "loading the network ...")
    job_status_line(state.error, job.message, job.error, job.running)
    return clicked


def _draw_strip(state: VideoState, ctx: FrameContext, scene: Scene) -> None:
    """The keyframe strip, a tree node: one button per keyframe (click selects), then add / move / remove."""
    imgui.set_next_item_open(state.strip_open, imgui.Cond_.always)
    count = f" ({len(state.keys)})" if state.keys else ""
    # On the Seeds line: folded, the form keeps its height (the panel sits at the bottom of the pane).
    state.strip_open = imgui.tree_node(f"Keyframes{count}###video_strip")
    record_item(ctx, "video_strip")
    help_marker("Add the seed on screen or a saved w (projected_w.npz); select one to move or remove it. "
                "With any keyframe here, the export walks through the strip instead of the seed list; "
                "a grid deals the keyframes to its cells in order.")  # fmt: skip
    if state.strip_open:
        _draw_strip_items(state, ctx, scene)
        imgui.tree_pop()


def _draw_strip_items(state: VideoState, ctx: FrameContext, scene: Scene) -> None:
    for i, key in enumerate(state.keys):
        if i:
            imgui.same_line()
            if imgui.get_content_region_avail().x < ctx.px(90):
                imgui.new_line()
        chosen = i == state.selected
        if chosen:
            imgui.push_style_color(imgui.Col_.button, imgui.get_style_color_vec4(imgui.Col_.button_active))
        if imgui.button(f"{i + 1}: {key_label(key)}##video_key{i}"):
            state.selected = -1 if chosen else i
        if chosen:
            imgui.pop_style_color()
        record_item(ctx, f"video_key{i}")
        if imgui.is_item_hovered():
            imgui.set_tooltip(key)
    if not state.keys:
        imgui.text_disabled("(empty: the seed list is used)")
    seed_label = f"+ seed {scene.seed}" if scene.seed is not None else "+ seed"
    if action_button(ctx, f"{seed_label}##video_add_seed", "video_add_seed", scene.seed is None):
        state.add_key(str(scene.seed))
    imgui.same_line()
    if action_button(ctx, "+ projected w##video", "video_add_projected", scene.projected_w is None):
        state.add_key(str(scene.projected_w))
    imgui.same_line()
    none_selected = not 0 <= state.selected < len(state.keys)
    for label, rect, step in (("<##video", "video_key_left", -1), (">##video", "video_key_right", 1)):
        if action_button(ctx, label, rect, none_selected):
            state.move_selected(step)
        imgui.same_line()
    if action_button(ctx, "Remove##video_key", "video_key_remove", none_selected):
        state.remove_selected()
    imgui.set_next_item_width(-ctx.px(70))
    _, state.w_file = imgui.input_text("##video_w_file", state.w_file, imgui.InputTextFlags_.auto_select_all)
    record_item(ctx, "video_w_file")
    if imgui.is_item_hovered() and not state.w_file:
        imgui.set_tooltip("a projected_w.npz file to add as a keyframe")
    imgui.same_line()
    if action_button(ctx, "+ w file##video", "video_add_w_file", not state.w_file.strip()):
        state.add_w_file(state.w_file)


class VideoPanel(FormPanel[VideoState]):
    name, title, state_type = "video", "Video export", VideoState

    def draw_form(self, ctx: FrameContext, scene: Scene) -> bool:
        return draw_video(self.state, ctx, scene)

    def submit(self) -> Intent | None:
        return export_intent(self.state)
