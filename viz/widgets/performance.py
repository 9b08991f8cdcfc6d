"""Performance panel: frames per second, frame time, render time, seed-change latency."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from imgui_bundle import imgui, implot

from viz.panel import Intent, Scene, StatePanel
from viz.ui import FrameContext

__all__ = ["PerfState", "PerformancePanel", "draw_performance"]

HISTORY = 240


@dataclass
class PerfState:
    frame_ms: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))  # busy time per frame
    interval_ms: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))  # frame to frame
    render_ms: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))  # generator, worker
    latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))  # request -> on screen
    fps_cap: float = 60.0
    dropped: int = 0

    def add_frame(self, busy_ms: float, interval_ms: float | None) -> None:
        self.frame_ms.append(busy_ms)
        if interval_ms is not None:
            self.interval_ms.append(interval_ms)

    @property
    def fps(self) -> float:
        if not self.interval_ms:
            return 0.0
        return 1000.0 / max(float(np.median(np.asarray(self.interval_ms))), 1e-3)

    def summary(self) -> dict[str, float]:
        def med(values: deque[float]) -> float:
            return float(np.median(np.asarray(values))) if values else 0.0

        return {
            "fps": self.fps,
            "frame_ms": med(self.frame_ms),
            "render_ms": med(self.render_ms),
            "latency_ms": med(self.latency_ms),
        }


def draw_performance(state: PerfState, ctx: FrameContext) -> None:
    s = state.summary()
    imgui.text(f"{s['fps']:.1f} fps    frame {s['frame_ms']:.1f} ms (median of {len(state.frame_ms)})")
    imgui.text(f"generator render {s['render_ms']:.1f} ms    request to screen {s['latency_ms']:.1f} ms")
    imgui.text_disabled(f"stale renders dropped: {state.dropped}")
    imgui.set_next_item_width(ctx.px(160))
    _, state.fps_cap = imgui.slider_float("FPS cap", state.fps_cap, 10.0, 240.0, "%.0f")
    if state.frame_ms and implot.begin_plot(
        "##frametimes", imgui.ImVec2(-1, ctx.px(110)), implot.Flags_.no_legend | implot.Flags_.no_menus
    ):
        implot.setup_axes("frame", "ms", implot.AxisFlags_.no_tick_labels, implot.AxisFlags_.auto_fit)
        implot.setup_axis_limits(implot.ImAxis_.x1, 0, HISTORY, implot.Cond_.always)
        implot.plot_line("frame", np.asarray(state.frame_ms, dtype=np.float64))
        if state.render_ms:
            implot.plot_line("render", np.asarray(state.render_ms, dtype=np.float64))
        implot.end_plot()


class PerformancePanel(StatePanel[PerfState]):
    name, title, state_type = "performance", "Performance", PerfState

    def draw(self, ctx: FrameContext, scene: Scene) -> list[Intent]:
        draw_performance(self.state, ctx)
        return []
