"""Truncation and noise panel: psi, truncation cutoff (layers), noise mode."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from imgui_bundle import imgui

from viz.panel import Intent, Scene
from viz.renderer import NOISE_MODES
from viz.ui import FrameContext, help_marker, record_item

__all__ = ["TruncNoisePanel", "TruncNoiseState", "draw_trunc_noise"]


@dataclass
class TruncNoiseState:
    psi: float = 1.0
    use_cutoff: bool = False
    cutoff: int = 4
    noise_mode: str = "const"

    def effective_cutoff(self) -> int | None:
        return self.cutoff if self.use_cutoff else None


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
    if changed:
        state.noise_mode = NOISE_MODES[idx]
    help_marker("const: the network's fixed noise; random: new noise each render; none: no noise.")


@dataclass
class TruncNoisePanel:
    name: ClassVar[str] = "trunc_noise"
    title: ClassVar[str] = "Truncation & noise"
    state: TruncNoiseState = field(default_factory=TruncNoiseState)

    def draw(self, ctx: FrameContext, scene: Scene) -> list[Intent]:
        draw_trunc_noise(self.state, ctx, scene.num_ws)
        return []
