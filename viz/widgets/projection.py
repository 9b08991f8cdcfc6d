"""Projection panel: find the w of a target image (core.studio.project), then show it in the generator view.

While the projection runs on its own thread the panel shows it converge: a progress bar (step,
distance, time left), the target beside the image the newest step scored, and the distance curve.
When it ends the generator view switches to the projected w, which then browses like a seed:
psi-free, style-mixable with the mix seed, its layers viewable, addable to the video keyframes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from imgui_bundle import imgui

from viz.panel import FormPanel, Intent, Project, Scene
from viz.studio_jobs import JobProgress, JobStatus
from viz.ui import (
    FrameContext,
    action_button,
    help_marker,
    job_progress_bar,
    job_status_line,
    record_item,
    reset_button,
)

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
    mix_source: bool = False  # the Style mixing panel's checked ws come from the projected w, not the mix seed
    seen_done: int = 0  # finished projections already switched to (a new one is shown at once)
    error: str | None = None
    # The distance after each step the panel saw (frames are slower than steps: some are skipped).
    curve_steps: list[float] = field(default_factory=list)
    curve: list[float] = field(default_factory=list)
    curve_of: float = 0.0  # the JobProgress.started the curve belongs to (a new projection starts a new curve)

    def follow(self, progress: JobProgress | None) -> None:
        """Add the newest step's distance to the curve."""
        if progress is None or progress.distance is None:
            return
        if progress.started != self.curve_of:
            self.curve_steps, self.curve, self.curve_of = [], [], progress.started
        if not self.curve_steps or progress.done > self.curve_steps[-1]:
            self.curve_steps.append(float(progress.done))
            self.curve.append(progress.distance)

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
        state.seen_done, state.show, state.mix_source = job.done, True, False
    state.follow(job.progress)
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
    has_ws = state.ws_file().is_file()
    imgui.begin_disabled(not has_ws)
    changed, state.show = imgui.checkbox("Show projected w", state.show)
    record_item(ctx, "proj_show")
    state.mix_source = state.mix_source and not (changed and state.show)  # one role at a time
    imgui.end_disabled()
    imgui.same_line()
    reset_button(ctx, state, "projection")
    imgui.begin_disabled(not has_ws)
    changed, state.mix_source = imgui.checkbox("Mix into the seeds (as the mix seed)", state.mix_source)
    record_item(ctx, "proj_mix")
    state.show = state.show and not (changed and state.mix_source)
    imgui.end_disabled()
    if imgui.is_item_hovered(imgui.HoveredFlags_.allow_when_disabled):
        imgui.set_tooltip("The Style mixing panel's checked ws come from the projected w instead of the mix seed "
                          "(style mixing on): browse the seed lattice with the projection's styles.")  # fmt: skip
    if job.running:
        job_progress_bar(ctx, job.progress, "proj_progress", "loading, measuring W (w_avg samples) ...")
    job_status_line(state.error, job.message, job.error, job.running)
    if job.progress is not None and (job.running or state.curve):
        _draw_live(state, ctx, job.progress)
    return clicked


def _draw_live(state: ProjectionState, ctx: FrameContext, progress: JobProgress) -> None:
    """Target | the newest step's image across the panel, the distance curve under it."""
    width = imgui.get_content_region_avail().x
    if progress.image is not None and ctx.textures is not None:
        tex = ctx.textures.get("projection_live", progress.image)
        h = min(width * tex.height / tex.width, ctx.px(140))
        imgui.image(imgui.ImTextureRef(tex.tex_id), imgui.ImVec2(h * tex.width / tex.height, h))
        record_item(ctx, "proj_live_image")
        imgui.text_disabled(f"target  |  step {progress.done} of {progress.total}")
    if state.curve:
        values = np.asarray(state.curve, dtype=np.float32)
        imgui.plot_lines("##proj_curve", values, overlay_text=f"distance {state.curve[-1]:.4g}",
                         scale_min=0.0, graph_size=imgui.ImVec2(width, ctx.px(56)))  # fmt: skip
        record_item(ctx, "proj_curve")
        if imgui.is_item_hovered():
            imgui.set_tooltip(f"distance to the target after each step (first {state.curve[0]:.4g})")


class ProjectionPanel(FormPanel[ProjectionState]):
    name, title, state_type = "projection", "Projection", ProjectionState

    def draw_form(self, ctx: FrameContext, scene: Scene) -> bool:
        return draw_projection(self.state, ctx, scene)

    def submit(self) -> Intent | None:
        return project_intent(self.state)
