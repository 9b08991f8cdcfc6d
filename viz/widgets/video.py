"""Video panel: export a latent walk between seeds of the generator on screen (core.studio.video)."""

from __future__ import annotations

from dataclasses import dataclass

from imgui_bundle import imgui

from core.studio.common import StudioError, parse_grid, parse_number_list
from core.studio.video import KINDS
from viz.panel import ExportVideo, Intent, Scene, StatePanel
from viz.studio_jobs import JobStatus
from viz.ui import FrameContext, action_button, help_marker, job_status_line, record_item, reset_button

__all__ = ["VideoPanel", "VideoState", "draw_video", "export_intent"]


@dataclass
class VideoState:
    out: str = "walk.mp4"
    seeds: str = "0-7"
    grid: str = "1x1"
    seconds: float = 8.0
    fps: float = 30.0
    loop: bool = True
    kind: str = "lerp"
    error: str | None = None  # the form's own error (a seed list that does not parse)


def export_intent(state: VideoState) -> ExportVideo | None:
    """The export the form describes, or None with ``state.error`` saying what to fix."""
    try:
        seeds = tuple(parse_number_list(state.seeds, "seeds"))
        parse_grid(state.grid)
    except StudioError as exc:
        state.error = str(exc)
        return None
    state.error = None
    return ExportVideo(
        out=state.out.strip(), seeds=seeds, grid=state.grid.strip(), seconds=state.seconds, fps=state.fps,
        loop=state.loop, kind=state.kind,
    )  # fmt: skip


def draw_video(state: VideoState, ctx: FrameContext, scene: Scene) -> bool:
    """Draws the form; True when Export was clicked."""
    # Labels carry ##video: "Seeds" alone would share its ImGui id with the Seeds panel's header.
    imgui.set_next_item_width(-ctx.px(70))
    _, state.out = imgui.input_text("Output##video", state.out)
    record_item(ctx, "video_out")
    help_marker("name.mp4 (H.264), name.gif, or a folder ending in / for PNG frames")
    imgui.set_next_item_width(ctx.px(140))
    _, state.seeds = imgui.input_text("Seeds##video", state.seeds)
    record_item(ctx, "video_seeds")
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
    job_status_line(state.error, job.message, job.error, job.running)
    return clicked


class VideoPanel(StatePanel[VideoState]):
    name, title, state_type = "video", "Video export", VideoState

    def draw(self, ctx: FrameContext, scene: Scene) -> list[Intent]:
        if not draw_video(self.state, ctx, scene):
            return []
        intent = export_intent(self.state)
        return [intent] if intent is not None else []
