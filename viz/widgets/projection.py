"""Projection panel: find the w of a target image (core.studio.project), then show it in the generator view."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imgui_bundle import imgui

from viz.panel import Intent, Project, Scene, StatePanel
from viz.studio_jobs import JobStatus
from viz.ui import FrameContext, action_button, help_marker, job_status_line, record_item, reset_button

__all__ = ["ProjectionPanel", "ProjectionState", "draw_projection", "project_intent"]

WS_FILE = "projected_w.npz"  # the public projector's output name, written by core.studio.project


@dataclass
class ProjectionState:
    target: str = ""
    outdir: str = "projection"
    steps: int = 1000
    seed: int = 303
    vgg: str = ""  # the VGG16 TorchScript file; empty: $ADA_STUDIO_VGG16, else the labelled pixel fallback
    show: bool = False  # the generator view renders the projected w instead of the seed lattice
    seen_done: int = 0  # finished projections already switched to (a new one is shown at once)
    error: str | None = None

    def ws_file(self) -> Path:
        return Path(self.outdir).expanduser() / WS_FILE


def project_intent(state: ProjectionState) -> Project | None:
    """The projection the form describes, or None with ``state.error`` saying what to fix."""
    target = state.target.strip()
    if not target:
        state.error = "name a target image (PNG or JPEG) to project"
        return None
    state.error = None
    return Project(target=target, outdir=state.outdir.strip() or ".", steps=max(1, state.steps),
                   seed=max(0, state.seed), vgg=state.vgg.strip() or None)  # fmt: skip


def draw_projection(state: ProjectionState, ctx: FrameContext, scene: Scene) -> bool:
    """Draws the form; True when Project was clicked. Labels carry ##proj (ids unique in the pane)."""
    job = scene.jobs.get("projection") or JobStatus()
    if job.done > state.seen_done:  # a projection just finished: show what it found
        state.seen_done, state.show = job.done, True
    for label, attr, rect in (("Target image##proj", "target", "proj_target"),
                              ("Output folder##proj", "outdir", "proj_outdir"),
                              ("VGG16 file##proj", "vgg", "proj_vgg")):  # fmt: skip
        imgui.set_next_item_width(-ctx.px(110))
        _, value = imgui.input_text(label, getattr(state, attr))
        setattr(state, attr, value)
        record_item(ctx, rect)
    help_marker("The VGG16 TorchScript file for the perceptual distance (or $ADA_STUDIO_VGG16); "
                "never downloaded. Without it a pixel distance is used and labelled in proj.json.")  # fmt: skip
    imgui.set_next_item_width(ctx.px(140))
    _, state.steps = imgui.input_int("Steps##proj", state.steps, 50, 500)
    record_item(ctx, "proj_steps")
    imgui.set_next_item_width(ctx.px(140))
    _, state.seed = imgui.input_int("Seed##proj", state.seed)
    record_item(ctx, "proj_seed")
    clicked = action_button(ctx, "Project", "proj_run", job.running or not scene.model_loaded)
    imgui.same_line()
    imgui.begin_disabled(not state.ws_file().is_file())
    _, state.show = imgui.checkbox("Show projected w", state.show)
    record_item(ctx, "proj_show")
    imgui.end_disabled()
    imgui.same_line()
    reset_button(ctx, state, "projection")
    job_status_line(state.error, job.message, job.error, job.running)
    return clicked


class ProjectionPanel(StatePanel[ProjectionState]):
    name, title, state_type = "projection", "Projection", ProjectionState

    def draw(self, ctx: FrameContext, scene: Scene) -> list[Intent]:
        if not draw_projection(self.state, ctx, scene):
            return []
        intent = project_intent(self.state)
        return [intent] if intent is not None else []
