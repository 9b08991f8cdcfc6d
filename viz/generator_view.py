"""The generator view: what to render (from the panels' states), the newest image, and dragging it.

The request is rebuilt every frame from the seeds, truncation/noise, style-mixing, layers and
projection states and submitted to the renderer only when it changed (latest wins there). The
view shows the newest result; a drag on it moves the seed lattice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imgui_bundle import imgui

from viz.model_source import ModelSource
from viz.renderer import RenderRequest, RenderResult
from viz.ui import FrameContext, text_colored
from viz.widgets.layers import LayersState
from viz.widgets.performance import PerfState
from viz.widgets.projection import ProjectionState
from viz.widgets.seeds import SeedsState, drag_lattice
from viz.widgets.stylemix import StyleMixState
from viz.widgets.trunc_noise import TruncNoiseState

# The grid a model opens on (unless --grid says otherwise): (largest resolution, (columns, rows)).
FIRST_VIEW_GRIDS = ((64, (6, 4)), (256, (3, 2)))


class GeneratorView:
    """Builds render requests, keeps the newest result, and turns drags on it into lattice moves."""

    def __init__(self, renderer: Any, source: ModelSource, seeds: SeedsState, trunc: TruncNoiseState,
                 stylemix: StyleMixState, layers: LayersState, projected: ProjectionState, perf: PerfState,
                 message: Callable[[str], None], first_view_grid: bool) -> None:
        self.renderer, self.source, self.message, self.perf = renderer, source, message, perf
        self.seeds, self.trunc, self.stylemix, self.layers, self.projected = seeds, trunc, stylemix, layers, projected
        self.result: RenderResult | None = None
        self.submitted: RenderRequest | None = None
        self.latency_pending: float | None = None  # submit time of a result not on screen yet
        self._first_view_grid = first_view_grid  # decided when the first model has loaded
        self._drag_press = (0.0, 0.0)

    # -- requests and results

    def request(self) -> RenderRequest | None:
        model = self.source.model
        if model is None:
            return None
        s, t, m = self.seeds, self.trunc, self.stylemix
        layer, layer_opts = self.layers.selection()
        ws_file, ws_stamp = self._projected_ws()
        mix_ws_file = ws_file if self.projected.mix_source else None
        ws_file = ws_file if self.projected.show else None
        return RenderRequest(
            model_key=model.key, x=s.x, y=s.y, grid_w=s.grid_w if s.grid else 1, grid_h=s.grid_h if s.grid else 1,
            psi=t.psi, cutoff=t.effective_cutoff(), noise_mode=t.noise_mode, class_idx=s.class_idx,
            mix_seed=m.seed if m.enabled else None, mix_indices=m.checked(model.num_ws), noise_seed=t.noise_seed,
            layer=layer, layer_opts=layer_opts, ws_file=ws_file, ws_stamp=ws_stamp, mix_ws_file=mix_ws_file,
        )

    def _projected_ws(self) -> tuple[str | None, int]:
        """The projected_w.npz to show or mix in (with its mtime, so a new projection re-renders), if chosen."""
        path = self.projected.ws_file()
        if not (self.projected.show or self.projected.mix_source):
            return None, 0
        try:
            return str(path), path.stat().st_mtime_ns
        except OSError:
            return None, 0

    def submit_if_changed(self) -> None:
        req = self.request()
        if req is not None and req != self.submitted:
            self.submitted = req
            self.renderer.submit(req)

    def poll(self) -> bool:
        """Take finished loads (to the model source) and renders; True if anything arrived."""
        statuses, result = self.renderer.poll()
        for status in statuses:
            self.source.loaded(status)
            if status.model is not None and self._first_view_grid:
                self._first_view_grid = False
                self._open_on_a_grid(status.model.img_resolution)
        if result is not None:
            self.result = result
            if result.error:
                self.message(f"render failed: {result.error}")
            self.perf.render_ms.append(result.render_ms)
            self.latency_pending = result.submitted_at
        self.perf.dropped = self.renderer.dropped
        return bool(statuses) or result is not None

    def _open_on_a_grid(self, resolution: int) -> None:
        """The first view of a small model is a grid of seeds: one 32 px image magnified twenty
        times shows little of what it learned (--grid WxH chooses, --grid 1x1 for one image)."""
        for max_res, (w, h) in FIRST_VIEW_GRIDS:
            if resolution <= max_res:
                self.seeds.grid, self.seeds.grid_w, self.seeds.grid_h = True, w, h
                return

    def bench_step(self) -> None:
        """--benchmark: a new seed once the previous one's image has been presented (like a user
        typing seeds as fast as they appear); latency = seed change to the frame that shows it."""
        shown = self.result is not None and self.result.request == self.submitted
        if self.source.model is not None and shown and self.latency_pending is None:
            self.seeds.set_seed(self.seeds.seed + 1)

    # -- drawing

    def draw(self, ctx: FrameContext, textures: Any) -> None:
        result = self.result
        if result is None or result.image is None:
            msg = "Open a snapshot, a public .pkl or a run directory in the Snapshot panel."
            if self.source.state.loading:
                msg = "loading ..."
            elif self.source.model is not None:
                msg = "rendering ..."
            imgui.text_disabled(msg)
            return
        tex = textures.get("generator", result.image)
        pos, size = fit_image(tex.width, tex.height, ctx)
        imgui.set_cursor_screen_pos(pos)
        imgui.invisible_button("##gen_image", size)
        ctx.rects["gen_image"] = (pos.x, pos.y, pos.x + size.x, pos.y + size.y)
        self._drag(size.x / max(result.request.grid_w, 1))
        dl = imgui.get_window_draw_list()
        dl.add_image(imgui.ImTextureRef(tex.tex_id), pos, imgui.ImVec2(pos.x + size.x, pos.y + size.y))
        if result.error:
            text_colored("error", result.error)

    def _drag(self, cell_px: float) -> None:
        """A drag on the image (the last item) moves the seed lattice."""
        mouse = imgui.get_io().mouse_pos
        if imgui.is_item_activated():
            self.seeds.drag_origin = (self.seeds.x, self.seeds.y)
            self._drag_press = (mouse.x, mouse.y)
        if self.seeds.drag_origin is not None and (imgui.is_item_active() or imgui.is_item_deactivated()):
            # Measured from where the press happened, not frame to frame (a pointer that jumps onto
            # the image and presses within one frame must not move the lattice), and applied on the
            # release frame too (at a low frame rate the last motion arrives with the release).
            drag_lattice(self.seeds, mouse.x - self._drag_press[0], mouse.y - self._drag_press[1], cell_px)
        if not imgui.is_item_active():
            self.seeds.drag_origin = None
        if imgui.is_item_hovered() and not imgui.is_item_active():
            imgui.set_tooltip("drag to browse the seed lattice")


def fit_image(w: int, h: int, ctx: Any) -> tuple[Any, Any]:
    """Where to draw a w x h image in the remaining area: centred, whole-number zoom when enlarging."""
    avail = imgui.get_content_region_avail()
    origin = imgui.get_cursor_screen_pos()
    zoom = min(avail.x / max(w, 1), avail.y / max(h, 1))
    if zoom >= 1:
        zoom = float(int(zoom))  # crisp pixels for small generator outputs
    size = imgui.ImVec2(max(w * zoom, 1.0), max(h * zoom, 1.0))
    pos = imgui.ImVec2(origin.x + (avail.x - size.x) / 2, origin.y + (avail.y - size.y) / 2)
    return pos, size
