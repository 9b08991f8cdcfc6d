"""Style mixing panel: the checked ws indices take the w of a second (mix) seed; the rest keep the main seed's.

Early ws carry pose and shape, later ones colour and texture. *Animate* moves the mix seed
continuously: between whole seeds the two neighbours' z are blended, so the image morphs smoothly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from imgui_bundle import imgui

from viz.panel import Intent, Scene, StatePanel
from viz.ui import FrameContext, help_marker, record_item, reset_button

__all__ = ["StyleMixPanel", "StyleMixState", "draw_stylemix"]

COLUMNS = 6  # checkboxes per row


@dataclass
class StyleMixState:
    enabled: bool = False
    seed: float = 1.0  # fractional while animated
    indices: list[int] = field(default_factory=lambda: [0, 1, 2, 3])  # ws indices from the mix seed
    animate: bool = False
    speed: float = 0.5  # seeds per second

    def checked(self, num_ws: int) -> tuple[int, ...]:
        """The checked indices this generator has, sorted (what the render request mixes)."""
        return tuple(sorted(i for i in set(self.indices) if 0 <= i < num_ws))

    def toggle(self, index: int, on: bool) -> None:
        rest = [i for i in self.indices if i != index]
        self.indices = sorted([*rest, index]) if on else rest

    def advance(self, dt: float) -> None:
        """Move the mix seed by speed * dt while animating (never below seed 0)."""
        if self.enabled and self.animate:
            self.seed = max(0.0, self.seed + self.speed * dt)


def draw_stylemix(state: StyleMixState, ctx: FrameContext, num_ws: int) -> None:
    _, state.enabled = imgui.checkbox("Mix styles", state.enabled)
    record_item(ctx, "mix_enable")
    help_marker(
        "Checked ws indices take the w of the mixing seed, the others keep the main seed's: "
        "early indices carry pose and shape, later ones colour and texture."
    )
    imgui.same_line()
    reset_button(ctx, state, "stylemix")
    if not state.enabled:
        return
    imgui.set_next_item_width(ctx.px(140))
    changed, seed = imgui.input_int("Mixing seed", math.floor(state.seed))
    record_item(ctx, "mix_seed")
    if changed:
        state.seed = float(max(0, seed))
    _, state.animate = imgui.checkbox("Animate", state.animate)
    record_item(ctx, "mix_animate")
    imgui.same_line()
    imgui.set_next_item_width(ctx.px(120))
    _, state.speed = imgui.slider_float("seeds/s##mix", state.speed, 0.05, 5.0, "%.2f", imgui.SliderFlags_.logarithmic)
    record_item(ctx, "mix_speed")
    _draw_index_boxes(state, ctx, num_ws)


def _draw_index_boxes(state: StyleMixState, ctx: FrameContext, num_ws: int) -> None:
    for i in range(num_ws):
        if i % COLUMNS:
            imgui.same_line()
        changed, on = imgui.checkbox(f"{i:2d}##mixws", i in state.indices)
        record_item(ctx, f"mix_ws:{i}")
        if changed:
            state.toggle(i, on)
    if imgui.small_button("All##mix"):
        state.indices = list(range(num_ws))
    record_item(ctx, "mix_all")
    imgui.same_line()
    if imgui.small_button("None##mix"):
        state.indices = []
    record_item(ctx, "mix_none")
    imgui.same_line()
    imgui.text_disabled(f"{num_ws} ws in this generator, seed {state.seed:.2f}")


class StyleMixPanel(StatePanel[StyleMixState]):
    name, title, state_type = "stylemix", "Style mixing", StyleMixState

    def draw(self, ctx: FrameContext, scene: Scene) -> list[Intent]:
        draw_stylemix(self.state, ctx, scene.num_ws)
        return []
