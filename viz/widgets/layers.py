"""Layers panel: list the synthesis layers of the loaded G and show one layer's channels as the image.

The panel only edits its state; the app puts the choice into the render request, and the worker
(which runs the generator with forward hooks) sends back the layer list, the stats and any error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from imgui_bundle import imgui

from viz.layer_view import MODES, NORMS, LayerOptions, LayerStats, LayerView
from viz.panel import Intent, Scene, StatePanel
from viz.ui import FrameContext, help_marker, record_item, reset_button, text_colored

__all__ = ["LayersPanel", "LayersState", "draw_layers"]


@dataclass
class LayersState:
    enabled: bool = False
    layer: str | None = None
    mode: str = "rgb"
    channels: list[int] = field(default_factory=lambda: [0, 1, 2])
    norm: str = "minmax"
    std_k: float = 2.0
    gain: float = 1.0
    fft: bool = False
    scroll_to_selected: bool = True  # a layer chosen from outside the list (--layer) is scrolled into view

    def selection(self) -> tuple[str | None, LayerOptions]:
        """The layer to show (None: the output) and how, as the render request wants them."""
        opts = LayerOptions(
            mode=self.mode, channels=(self.channels[0], self.channels[1], self.channels[2]), norm=self.norm,
            std_k=self.std_k, gain=self.gain, fft=self.fft,
        )  # fmt: skip
        return (self.layer if self.enabled else None), opts


def draw_layers(state: LayersState, ctx: FrameContext, view: LayerView | None) -> None:
    _, state.enabled = imgui.checkbox("Show a layer", state.enabled)
    record_item(ctx, "layers_enable")
    help_marker("Show one synthesis layer's channels instead of the output image (first grid cell's stats).")
    imgui.same_line()
    reset_button(ctx, state, "layers")
    if view is None or not view.layers:
        imgui.text_disabled("layers appear after the first render")
        return
    _draw_layer_list(state, ctx, view)
    _draw_channel_controls(state, ctx)
    if view.error:
        text_colored("error", view.error)
    elif view.name is not None:
        _draw_stats(view)


def _draw_layer_list(state: LayersState, ctx: FrameContext, view: LayerView) -> None:
    height = min(len(view.layers), 8) * imgui.get_text_line_height_with_spacing() + ctx.px(8)
    imgui.begin_child("##layer_list", imgui.ImVec2(0, height), imgui.ChildFlags_.borders)
    for info in view.layers:
        shape = "x".join(str(s) for s in info.shape)
        if imgui.selectable(f"{info.name}  [{shape}]", info.name == state.layer)[0]:
            state.layer, state.enabled = info.name, True
        record_item(ctx, f"layer:{info.name}")
        if info.name == state.layer and state.scroll_to_selected:
            imgui.set_scroll_here_y(0.5)
            state.scroll_to_selected = False
    imgui.end_child()


def _draw_channel_controls(state: LayersState, ctx: FrameContext) -> None:
    imgui.set_next_item_width(ctx.px(160))
    changed, idx = imgui.combo("Show", MODES.index(state.mode), ["3 channels as RGB", "1 channel as gray"])
    record_item(ctx, "layers_mode")
    if changed:
        state.mode = MODES[idx]
    imgui.set_next_item_width(ctx.px(160))
    if state.mode == "rgb":
        changed, chans = imgui.input_int3("Channels R G B", state.channels)
        if changed:
            state.channels = [max(0, c) for c in chans]
    else:
        changed, chan = imgui.input_int("Channel", state.channels[0])
        if changed:
            state.channels[0] = max(0, chan)
    record_item(ctx, "layers_channels")
    imgui.set_next_item_width(ctx.px(160))
    changed, idx = imgui.combo("Normalise", NORMS.index(state.norm), ["min / max", "mean ± k·std"])
    record_item(ctx, "layers_norm")
    if changed:
        state.norm = NORMS[idx]
    if state.norm == "std":
        imgui.set_next_item_width(ctx.px(160))
        _, state.std_k = imgui.slider_float("k", state.std_k, 0.5, 8.0, "%.1f")
        record_item(ctx, "layers_std_k")
    imgui.set_next_item_width(ctx.px(160))
    _, state.gain = imgui.slider_float("Gain", state.gain, 0.1, 10.0, "%.2f", imgui.SliderFlags_.logarithmic)
    record_item(ctx, "layers_gain")
    _, state.fft = imgui.checkbox("FFT magnitude (log)", state.fft)
    record_item(ctx, "layers_fft")


def _draw_stats(view: LayerView) -> None:
    rows: list[tuple[str, LayerStats | None]] = [
        ("all channels", view.all_channels),
        ("selected", view.selected),
    ]
    imgui.text_disabled(f"{view.name}: channels {', '.join(str(c) for c in view.shown_channels)} shown")
    if imgui.begin_table("##layer_stats", 4, imgui.TableFlags_.borders | imgui.TableFlags_.row_bg):
        for title in ("", "mean", "std", "max"):
            imgui.table_setup_column(title)
        imgui.table_headers_row()
        for label, stats in rows:
            if stats is None:
                continue
            imgui.table_next_row()
            for i, text in enumerate((label, f"{stats.mean:.3g}", f"{stats.std:.3g}", f"{stats.max:.3g}")):
                imgui.table_set_column_index(i)
                imgui.text(text)
        imgui.end_table()


class LayersPanel(StatePanel[LayersState]):
    name, title, state_type = "layers", "Layers", LayersState

    def draw(self, ctx: FrameContext, scene: Scene) -> list[Intent]:
        draw_layers(self.state, ctx, scene.layer_view)
        return []
