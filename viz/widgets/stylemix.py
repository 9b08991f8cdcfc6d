"""Style mixing panel: take the w of a second seed for a chosen range of layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from imgui_bundle import imgui

from viz.panel import Intent, Scene
from viz.ui import FrameContext, help_marker

__all__ = ["StyleMixPanel", "StyleMixState", "draw_stylemix"]


@dataclass
class StyleMixState:
    enabled: bool = False
    seed: int = 1
    lo: int = 0
    hi: int = 4

    def layer_range(self, num_ws: int) -> tuple[int, int]:
        lo = min(max(self.lo, 0), num_ws)
        return lo, min(max(self.hi, lo), num_ws)


def draw_stylemix(state: StyleMixState, ctx: FrameContext, num_ws: int) -> None:
    _, state.enabled = imgui.checkbox("Mix styles", state.enabled)
    help_marker(
        "Layers in [from, to) take the w of the mixing seed: early layers carry pose and shape, "
        "later ones colour and texture."
    )
    if not state.enabled:
        return
    imgui.set_next_item_width(ctx.px(140))
    changed, seed = imgui.input_int("Mixing seed", state.seed)
    if changed:
        state.seed = max(0, seed)
    imgui.set_next_item_width(ctx.px(180))
    _, state.lo, state.hi = imgui.drag_int_range2(
        "Layers", state.lo, state.hi, 0.1, 0, max(1, num_ws), "from %d", "to %d"
    )
    imgui.text_disabled(f"{num_ws} layers of w in this generator")


@dataclass
class StyleMixPanel:
    name: ClassVar[str] = "stylemix"
    title: ClassVar[str] = "Style mixing"
    state: StyleMixState = field(default_factory=StyleMixState)

    def draw(self, ctx: FrameContext, scene: Scene) -> list[Intent]:
        draw_stylemix(self.state, ctx, scene.num_ws)
        return []
