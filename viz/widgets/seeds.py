"""Seeds panel: seed number, a continuous 2-D seed lattice browsed by dragging or animated, grid view, class."""

from __future__ import annotations

import math
from dataclasses import dataclass

from imgui_bundle import imgui

from viz.panel import Intent, Scene, StatePanel
from viz.renderer import LATTICE_WIDTH, lattice_point, lattice_seed
from viz.ui import FrameContext, help_marker, record_item, reset_button

__all__ = ["SeedsPanel", "SeedsState", "drag_lattice", "draw_seeds"]

GRID_MAX = 8


@dataclass
class SeedsState:
    x: float = 0.0  # lattice position; whole numbers are exact seeds
    y: float = 0.0
    grid: bool = False
    grid_w: int = 4
    grid_h: int = 3
    class_idx: int = 0
    drag_speed: float = 4.0  # lattice steps per image width dragged
    drag_origin: tuple[float, float] | None = None  # lattice position where the current drag began
    anim: bool = False  # move along the lattice on its own
    anim_speed: float = 0.5  # lattice steps per second
    anim_angle: float = 0.0  # direction in degrees: 0 moves along x, 90 along y

    @property
    def seed(self) -> int:
        return lattice_seed(math.floor(self.x), math.floor(self.y))

    def set_seed(self, seed: int) -> None:
        self.x, self.y = lattice_point(max(0, int(seed)))

    def snap(self) -> None:
        self.x, self.y = float(round(self.x)), float(round(self.y))

    def advance(self, dt: float) -> None:
        """Move the lattice point by speed * dt in the chosen direction while animating (not while dragged)."""
        if not self.anim or self.drag_origin is not None:
            return
        a = math.radians(self.anim_angle)
        self.x = max(0.0, self.x + self.anim_speed * dt * math.cos(a))
        self.y = max(0.0, self.y + self.anim_speed * dt * math.sin(a))


def draw_seeds(state: SeedsState, ctx: FrameContext, c_dim: int) -> None:
    imgui.set_next_item_width(ctx.px(140))
    changed, seed = imgui.input_int("Seed", state.seed, 1, 10)
    record_item(ctx, "seed_input")
    if changed:
        state.set_seed(seed)
    imgui.same_line()
    if imgui.button("Snap"):
        state.snap()
    help_marker(
        f"Drag on the image to move across a 2-D lattice of seeds: point (x, y) is seed "
        f"y * {LATTICE_WIDTH} + x, and between lattice points the latents of the four neighbouring "
        "seeds are blended, so the image changes smoothly. Snap returns to a whole seed."
    )
    imgui.set_next_item_width(ctx.px(180))
    changed, xy = imgui.input_float2("Lattice x, y", [state.x, state.y], "%.3f")
    record_item(ctx, "lattice_xy")
    if changed:
        state.x, state.y = max(0.0, xy[0]), max(0.0, xy[1])
    _draw_animation(state, ctx)
    _, state.grid = imgui.checkbox("Grid view", state.grid)
    record_item(ctx, "grid_checkbox")
    if state.grid:
        imgui.set_next_item_width(ctx.px(140))
        _, wh = imgui.slider_int2("columns x rows", [state.grid_w, state.grid_h], 1, GRID_MAX)
        state.grid_w, state.grid_h = wh[0], wh[1]
    if c_dim > 0:
        imgui.set_next_item_width(ctx.px(140))
        changed, cls = imgui.input_int("Class", state.class_idx)
        if changed:
            state.class_idx = min(max(cls, 0), c_dim - 1)
        imgui.same_line()
        imgui.text_disabled(f"of {c_dim}")
    reset_button(ctx, state, "seeds")


def _draw_animation(state: SeedsState, ctx: FrameContext) -> None:
    _, state.anim = imgui.checkbox("Animate##seeds", state.anim)
    record_item(ctx, "seed_anim")
    help_marker("Move across the lattice on its own, at this many lattice steps per second, in this direction.")
    if state.anim:
        imgui.set_next_item_width(ctx.px(120))
        _, state.anim_speed = imgui.slider_float(
            "steps/s##seeds", state.anim_speed, 0.01, 10.0, "%.2f", imgui.SliderFlags_.logarithmic
        )
        record_item(ctx, "seed_anim_speed")
        imgui.set_next_item_width(ctx.px(120))
        _, state.anim_angle = imgui.slider_float("direction °", state.anim_angle, 0.0, 90.0, "%.0f")
        record_item(ctx, "seed_anim_angle")


def drag_lattice(state: SeedsState, dx_px: float, dy_px: float, image_px: float) -> None:
    """Place the lattice position for a drag of (dx, dy) screen pixels so far, over an image that wide."""
    x0, y0 = state.drag_origin if state.drag_origin is not None else (state.x, state.y)
    step = state.drag_speed / max(image_px, 1.0)
    # Dragging the picture right shows what lies to its left, like panning a map.
    state.x = max(0.0, x0 - dx_px * step)
    state.y = max(0.0, y0 - dy_px * step)


class SeedsPanel(StatePanel[SeedsState]):
    name, title, state_type = "seeds", "Seeds", SeedsState

    def draw(self, ctx: FrameContext, scene: Scene) -> list[Intent]:
        draw_seeds(self.state, ctx, scene.c_dim)
        return []
