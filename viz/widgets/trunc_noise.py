"""Truncation and noise panel: psi, truncation cutoff (layers), noise mode, noise seed and its animation."""

from __future__ import annotations

from dataclasses import dataclass

from imgui_bundle import imgui

from viz.panel import Intent, Scene, StatePanel
from viz.renderer import NOISE_MODES
from viz.ui import FrameContext, help_marker, record_item, reset_button

__all__ = ["TruncNoisePanel", "TruncNoiseState", "draw_trunc_noise"]


@dataclass
class TruncNoiseState:
    psi: float = 1.0
    use_cutoff: bool = False
    cutoff: int = 4
    noise_mode: str = "const"
    noise_seed: int = 0  # random noise is drawn from it: the same seed gives the same image
    noise_anim: bool = False  # a new noise seed every frame

    def effective_cutoff(self) -> int | None:
        return self.cutoff if self.use_cutoff else None

    def advance(self) -> None:
        """One frame of noise animation (only random noise changes with the seed)."""
        if self.noise_anim and self.noise_mode == "random":
            self.noise_seed = (self.noise_seed + 1) % 2**31


def draw_trunc_noise(state: TruncNoiseState, ctx: FrameContext, num_ws: int) -> None:
    imgui.set_next_item_width(ctx.px(180))
    _, state.psi = imgui.slider_float("Truncation psi", state.psi, -1.0, 2.0, "%.2f")
    record_item(ctx, "psi_slider")
    help_marker("psi < 1 pulls w towards the average w: more typical, less varied images.")
    _, state.use_cutoff = imgui.checkbox("Cutoff", state.use_cutoff)
    if state.use_cutoff:
        imgui.same_line()
        imgui.set_next_item_width(ctx.px(120))
        _, state.cutoff = imgui.slider_int("##cutoff", state.cutoff, 1, max(1, num_ws))
        help_marker("Truncate only the first layers (coarse features); later ones keep their w.")
    current = NOISE_MODES.index(state.noise_mode) if state.noise_mode in NOISE_MODES else 0
    imgui.set_next_item_width(ctx.px(180))
    changed, idx = imgui.combo("Noise", current, list(NOISE_MODES))
    record_item(ctx, "noise_mode")
    if changed:
        state.noise_mode = NOISE_MODES[idx]
    help_marker("const: the network's fixed noise; random: noise drawn from the noise seed; none: no noise.")
    if state.noise_mode == "random":
        imgui.set_next_item_width(ctx.px(140))
        changed, seed = imgui.input_int("Noise seed", state.noise_seed)
        record_item(ctx, "noise_seed")
        if changed:
            state.noise_seed = max(0, seed)
        imgui.same_line()
        _, state.noise_anim = imgui.checkbox("Animate##noise", state.noise_anim)
        record_item(ctx, "noise_anim")
    reset_button(ctx, state, "trunc_noise")


class TruncNoisePanel(StatePanel[TruncNoiseState]):
    name, title, state_type = "trunc_noise", "Truncation & noise", TruncNoiseState

    def draw(self, ctx: FrameContext, scene: Scene) -> list[Intent]:
        draw_trunc_noise(self.state, ctx, scene.num_ws)
        return []
