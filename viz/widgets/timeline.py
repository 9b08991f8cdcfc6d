"""Snapshot timeline: scrub through every fakes and "what D sees" preview of the attached run (its
resumed or forked chain included), open any kept snapshot in the generator view, and compare two
snapshots side by side on the same seeds.

:func:`read_timeline` turns a run directory and its ancestors into one timeline (pure, tested);
:func:`compare_grids` renders two snapshots' images for the same seeds (run off the GUI thread by
:class:`CompareEngine`); the panel only draws and returns intents.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from imgui_bundle import imgui

from core.rundir import RunReader, kept_snapshots, layout
from core.studio.common import StudioError, parse_seeds
from viz.panel import Intent, OpenSource, Scene, StatePanel
from viz.ui import FrameContext, help_marker, record_item, text_colored
from viz.wake import wake

log = logging.getLogger(__name__)

__all__ = [
    "CompareEngine",
    "CompareResult",
    "PreviewFrame",
    "SnapshotMark",
    "Timeline",
    "TimelinePanel",
    "TimelineState",
    "compare_grids",
    "read_timeline",
]

REFRESH_S = 2.0  # how often the run's previews and snapshots are listed again
MAX_COMPARE_SEEDS = 16
COMPARE_COLS = 4
SNAP_COLOUR = (0.95, 0.75, 0.3, 1.0)
TICK_COLOUR = (0.6, 0.6, 0.65, 1.0)
CURSOR_COLOUR = (0.45, 0.7, 1.0, 1.0)


@dataclass(frozen=True)
class PreviewFrame:
    """The previews written at one kimg (either may be missing) and the run directory holding them."""

    kimg: float
    fakes: Path | None
    reals: Path | None  # "what D sees": the augmented reals
    run_dir: Path


@dataclass(frozen=True)
class SnapshotMark:
    kimg: float
    path: Path  # the snapshot's .json (what OpenSource opens)
    run_dir: Path


@dataclass(frozen=True)
class Timeline:
    runs: tuple[Path, ...] = ()  # oldest first; the attached run last
    frames: tuple[PreviewFrame, ...] = ()  # by kimg
    snapshots: tuple[SnapshotMark, ...] = ()  # by kimg

    def nearest_frame(self, kimg: float) -> int:
        """The index of the frame closest to ``kimg`` (0 when there are none)."""
        if not self.frames:
            return 0
        return int(np.argmin([abs(f.kimg - kimg) for f in self.frames]))


def _start_kimg(run_dir: Path) -> float | None:
    """Where a run took over from the one it was resumed from: its first "started" status event."""
    for ev in RunReader(run_dir).poll_events():
        if ev.get("kind") == "status" and ev.get("state") == "started" and isinstance(ev.get("kimg"), int | float):
            return float(ev["kimg"])
    return None


def read_timeline(run_dir: Path, starts: dict[Path, float | None] | None = None) -> Timeline:
    """Every preview and kept snapshot of ``run_dir`` and of the runs it was resumed or forked from.

    A later run of the chain replaces what an earlier one wrote after the later one's start (as the
    training monitor does: one history, what a resume abandoned left out). ``starts`` caches each
    run's start kimg between calls (it never changes once the run has begun)."""
    starts = {} if starts is None else starts
    runs = [*RunReader(run_dir).ancestors(), run_dir]
    frames: dict[float, PreviewFrame] = {}
    snaps: dict[float, SnapshotMark] = {}
    for i, run in enumerate(runs):
        if i > 0:
            if run not in starts or starts[run] is None:
                starts[run] = _start_kimg(run)
            start = starts[run]
            if start is not None:
                frames = {k: f for k, f in frames.items() if k <= start}
                snaps = {k: s for k, s in snaps.items() if k <= start}
        reader = RunReader(run)
        fakes = dict(reader.previews(layout.PREVIEW_FAKES))
        reals = dict(reader.previews(layout.PREVIEW_REALS_AUGMENTED))
        for kimg in sorted(set(fakes) | set(reals)):
            frames[kimg] = PreviewFrame(kimg, fakes.get(kimg), reals.get(kimg), run)
        for kimg, path in kept_snapshots(run):
            snaps[kimg] = SnapshotMark(kimg, path, run)
    return Timeline(tuple(runs), tuple(frames[k] for k in sorted(frames)), tuple(snaps[k] for k in sorted(snaps)))


# --- compare -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompareRequest:
    a: Path
    b: Path
    seeds: tuple[int, ...]
    psi: float


@dataclass(frozen=True)
class CompareResult:
    request: CompareRequest
    grid_a: np.ndarray  # uint8 HxWx3, COMPARE_COLS images a row
    grid_b: np.ndarray


class GeneratorCache:
    """The generators of the last few snapshots compared (used by the worker thread only)."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._loaded: dict[Path, Any] = {}

    def get(self, path: Path) -> Any:
        import torch

        from core.studio.common import load_generator

        if path not in self._loaded:
            self._loaded[path] = load_generator(str(path), torch.device("cpu"))
            while len(self._loaded) > self.size:
                self._loaded.pop(next(iter(self._loaded)))
        return self._loaded[path]


def compare_grids(request: CompareRequest, cache: GeneratorCache | None = None) -> CompareResult:
    """Both snapshots' images for the same seeds (z as the public generate.py draws them, const noise)."""
    from core.io.images import image_grid
    from core.metrics.nearest import generated_images
    from core.studio.common import check_truncation

    cache = cache or GeneratorCache()
    grids = []
    for path in (request.a, request.b):
        G = cache.get(path)
        check_truncation(G, request.psi)
        images = generated_images(G, list(request.seeds), request.psi)
        grids.append(image_grid(images, min(COMPARE_COLS, len(request.seeds)), drange=(0, 255), rgb=True))
    return CompareResult(request, grids[0], grids[1])


class CompareEngine:
    """Renders compare requests on a latest-wins worker thread (started on first use)."""

    def __init__(self) -> None:
        self._worker: Any = None
        self._cache = GeneratorCache()
        self.pending: CompareRequest | None = None

    def submit(self, request: CompareRequest) -> None:
        from core.io.worker import LatestWorker

        if self._worker is None:
            self._worker = LatestWorker("viz-timeline-compare", on_result=wake)
        self.pending = request
        key: Hashable = request
        self._worker.submit(key, lambda: compare_grids(request, self._cache))

    def poll(self) -> tuple[CompareResult | None, str | None] | None:
        """(result, error) of the newest finished request, or None while nothing new finished."""
        if self._worker is None:
            return None
        done = self._worker.poll()
        if done is None:
            return None
        if done.key == self.pending:
            self.pending = None
        return done.value, done.error

    def wait_idle(self, timeout: float) -> bool:
        return self._worker is None or self._worker.wait_idle(timeout)


# --- the panel -----------------------------------------------------------------------------------


@dataclass
class TimelineState:
    timeline: Timeline = field(default_factory=Timeline)
    run_dir: Path | None = None  # the run the timeline was read from
    starts: dict[Path, float | None] = field(default_factory=dict)
    last_read: float = -1e9
    index: int = 0  # the frame the scrubber is on
    follow: bool = True  # keep the scrubber on the newest frame as new previews arrive
    fakes: np.ndarray | None = None
    fakes_path: Path | None = None
    reals: np.ndarray | None = None
    reals_path: Path | None = None
    chosen: int | None = None  # the snapshot last opened from the list
    a: int | None = None  # the snapshots to compare (indices into timeline.snapshots)
    b: int | None = None
    seeds: str = "0-7"
    psi: float = 1.0
    compare: CompareResult | None = None
    compare_error: str | None = None
    form_error: str | None = None

    def frame(self) -> PreviewFrame | None:
        frames = self.timeline.frames
        return frames[min(self.index, len(frames) - 1)] if frames else None


def refresh(state: TimelineState, run_dir: Path | None, now: float, every_s: float = REFRESH_S) -> None:
    """List the run's previews and snapshots again (at most every ``every_s`` s; at once for a new run)."""
    if run_dir != state.run_dir:
        state.run_dir, state.starts, state.last_read = run_dir, {}, -1e9
        state.timeline, state.a, state.b, state.chosen, state.follow = Timeline(), None, None, None, True
        state.compare = state.compare_error = state.form_error = None
    if run_dir is None or now - state.last_read < every_s:
        return
    state.last_read = now
    old = state.timeline
    state.timeline = read_timeline(run_dir, state.starts)
    frames = state.timeline.frames
    if frames and (state.follow or not old.frames):
        state.index = len(frames) - 1
    elif frames and old.frames:  # stay on the same kimg when frames are added before it
        state.index = state.timeline.nearest_frame(old.frames[min(state.index, len(old.frames) - 1)].kimg)
    snaps = state.timeline.snapshots
    if snaps:
        state.a = state.a if state.a is not None and state.a < len(snaps) else 0
        state.b = state.b if state.b is not None and state.b < len(snaps) else len(snaps) - 1


def load_frame(state: TimelineState) -> None:
    """Read the chosen frame's two PNGs (only when the choice changed)."""
    from viz.widgets.training_monitor import load_preview

    frame = state.frame()
    if frame is None:
        state.fakes = state.reals = state.fakes_path = state.reals_path = None
        return
    state.fakes_path, state.fakes = load_preview(frame.fakes, state.fakes_path, state.fakes)
    state.reals_path, state.reals = load_preview(frame.reals, state.reals_path, state.reals)


def compare_request(state: TimelineState) -> CompareRequest | None:
    """The comparison the form describes, or None with ``state.form_error`` saying what to fix."""
    snaps = state.timeline.snapshots
    if state.a is None or state.b is None or not snaps:
        state.form_error = "no kept snapshots in this run yet"
        return None
    try:
        seeds = parse_seeds(state.seeds, MAX_COMPARE_SEEDS)
    except StudioError as exc:
        state.form_error = str(exc)
        return None
    state.form_error = None
    return CompareRequest(snaps[state.a].path, snaps[state.b].path, seeds, state.psi)


def open_snapshot(state: TimelineState, i: int) -> OpenSource:
    """Choose snapshot ``i``: the scrubber moves to its kimg, the generator view opens it."""
    mark = state.timeline.snapshots[i]
    state.chosen, state.follow = i, False
    state.index = state.timeline.nearest_frame(mark.kimg)
    return OpenSource(str(mark.path))


def _col(rgba: tuple[float, float, float, float]) -> int:
    return imgui.get_color_u32(imgui.ImVec4(*rgba))


def _draw_strip(state: TimelineState, ctx: FrameContext) -> None:
    """Ticks for previews, gold marks for kept snapshots, a blue line at the scrubber; click to move."""
    tl = state.timeline
    width, height = imgui.get_content_region_avail().x, ctx.px(22)
    lo = imgui.get_cursor_screen_pos()
    imgui.invisible_button("##timeline_strip", imgui.ImVec2(width, height))
    record_item(ctx, "timeline_strip")
    k0, k1 = tl.frames[0].kimg, tl.frames[-1].kimg
    if tl.snapshots:
        k0, k1 = min(k0, tl.snapshots[0].kimg), max(k1, tl.snapshots[-1].kimg)
    pad = ctx.px(6)

    def x_of(kimg: float) -> float:
        return lo.x + pad + (width - 2 * pad) * ((kimg - k0) / (k1 - k0) if k1 > k0 else 0.5)

    if imgui.is_item_hovered() or imgui.is_item_active():
        mouse = imgui.get_mouse_pos().x
        under = tl.frames[tl.nearest_frame(k0 + (mouse - lo.x - pad) / max(width - 2 * pad, 1.0) * (k1 - k0))]
        marked = any(abs(x_of(s.kimg) - mouse) <= ctx.px(5) for s in tl.snapshots)
        imgui.set_tooltip(f"{under.kimg:g} kimg, {under.run_dir.name}" + ("  (kept snapshot)" if marked else ""))
        if imgui.is_item_active():
            state.index, state.follow = tl.frames.index(under), False
    draw = imgui.get_window_draw_list()
    mid = lo.y + height / 2
    draw.add_line(imgui.ImVec2(lo.x + pad, mid), imgui.ImVec2(lo.x + width - pad, mid), _col(TICK_COLOUR), 1.0)
    for f in tl.frames:
        draw.add_line(imgui.ImVec2(x_of(f.kimg), mid - ctx.px(4)), imgui.ImVec2(x_of(f.kimg), mid + ctx.px(4)),
                      _col(TICK_COLOUR), 1.0)  # fmt: skip
    r = ctx.px(5)
    for s in tl.snapshots:
        x = x_of(s.kimg)
        draw.add_triangle_filled(imgui.ImVec2(x, mid - r), imgui.ImVec2(x + r, mid + r), imgui.ImVec2(x - r, mid + r),
                                 _col(SNAP_COLOUR))  # fmt: skip
    frame = state.frame()
    if frame is not None:
        x = x_of(frame.kimg)
        draw.add_line(imgui.ImVec2(x, lo.y), imgui.ImVec2(x, lo.y + height), _col(CURSOR_COLOUR), ctx.px(2))


def _draw_images(state: TimelineState, ctx: FrameContext, textures: Any) -> None:
    frame = state.frame()
    assert frame is not None
    _two_images(ctx, textures, [("timeline_fakes", "fakes (fixed z)", state.fakes),
                                ("timeline_reals", "what D sees", state.reals)])  # fmt: skip


def _two_images(ctx: FrameContext, textures: Any, items: list[tuple[str, str, np.ndarray | None]]) -> None:
    """Two titled images side by side, each half the panel wide (name: its texture and test rect)."""
    width = (imgui.get_content_region_avail().x - imgui.get_style().item_spacing.x) / 2
    for i, (name, title, image) in enumerate(items):
        imgui.begin_group()
        imgui.text(title)
        if image is None:
            imgui.text_disabled("no preview at this kimg")
        else:
            tex = textures.get(name, image)
            imgui.image(imgui.ImTextureRef(tex.tex_id), imgui.ImVec2(width, width * tex.height / tex.width))
            record_item(ctx, name)
        imgui.end_group()
        if i == 0:
            imgui.same_line()


def _draw_snapshot_list(state: TimelineState, ctx: FrameContext) -> list[Intent]:
    snaps = state.timeline.snapshots
    imgui.text(f"Kept snapshots ({len(snaps)})")
    help_marker("Click a snapshot to open it in the generator view. A and B choose the two to compare.")
    if not snaps:
        imgui.text_disabled("none yet (the trainer keeps one every --snap ticks)")
        return []
    intents: list[Intent] = []
    flags = imgui.TableFlags_.row_bg | imgui.TableFlags_.borders_inner_h | imgui.TableFlags_.scroll_y
    rows_h = min(len(snaps), 6) * imgui.get_frame_height_with_spacing() + ctx.px(4)
    if imgui.begin_table("##timeline_snaps", 3, flags, imgui.ImVec2(0, rows_h)):
        imgui.table_setup_column("snapshot", imgui.TableColumnFlags_.width_stretch)
        imgui.table_setup_column("A", imgui.TableColumnFlags_.width_fixed)
        imgui.table_setup_column("B", imgui.TableColumnFlags_.width_fixed)
        several_runs = len(state.timeline.runs) > 1
        for i, mark in enumerate(snaps):
            imgui.table_next_row()
            imgui.table_next_column()
            label = f"{mark.kimg:g} kimg" + (f"   ({mark.run_dir.name})" if several_runs else "")
            if imgui.selectable(f"{label}##snap{i}", state.chosen == i)[0]:
                intents.append(open_snapshot(state, i))
            record_item(ctx, f"timeline_snap:{i}")
            if imgui.is_item_hovered():
                imgui.set_tooltip(str(mark.path))
            imgui.table_next_column()
            if imgui.radio_button(f"A##a{i}", state.a == i):
                state.a = i
            record_item(ctx, f"timeline_a:{i}")
            imgui.table_next_column()
            if imgui.radio_button(f"B##b{i}", state.b == i):
                state.b = i
            record_item(ctx, f"timeline_b:{i}")
        imgui.end_table()
    return intents


def _draw_compare(state: TimelineState, ctx: FrameContext, engine: CompareEngine, textures: Any) -> None:
    imgui.set_next_item_width(ctx.px(110))
    _, state.seeds = imgui.input_text("Seeds##timeline", state.seeds)
    record_item(ctx, "timeline_seeds")
    imgui.same_line()
    imgui.set_next_item_width(ctx.px(80))
    _, state.psi = imgui.input_float("psi##timeline", state.psi, 0.0, 0.0, "%.2f")
    record_item(ctx, "timeline_psi")
    help_marker("Both snapshots render these seeds (z as generate.py draws them) with this truncation psi.")
    busy = engine.pending is not None
    imgui.begin_disabled(not state.timeline.snapshots)
    if imgui.button("Compare A and B"):
        request = compare_request(state)
        if request is not None:
            engine.submit(request)
    record_item(ctx, "timeline_compare")
    imgui.end_disabled()
    if busy:
        imgui.same_line()
        imgui.text_disabled("rendering ...")
    if state.form_error or state.compare_error:
        text_colored("error", state.form_error or state.compare_error or "")
    result = state.compare
    if result is None:
        return
    items = []
    for name, path, grid in (("a", result.request.a, result.grid_a), ("b", result.request.b, result.grid_b)):
        kimg = layout.snapshot_kimg(path)
        items.append((f"timeline_compare_{name}", f"{name.upper()}: " + (f"{kimg:g} kimg" if kimg is not None
                      else path.name), grid))  # fmt: skip
    _two_images(ctx, textures, items)


def draw_timeline(state: TimelineState, ctx: FrameContext, scene: Scene, engine: CompareEngine,
                  textures: Any) -> list[Intent]:  # fmt: skip
    refresh(state, scene.run_dir, ctx.now)
    polled = engine.poll()
    if polled is not None:
        result, error = polled
        state.compare_error = error
        if result is not None:
            state.compare = result
    if scene.run_dir is None:
        imgui.text_disabled("no run attached (Training control panel)")
        return []
    tl = state.timeline
    if len(tl.runs) > 1:
        imgui.text_wrapped("chain: " + " -> ".join(r.name for r in tl.runs))
    if not tl.frames:
        imgui.text_disabled("no previews yet")
    else:
        imgui.set_next_item_width(-ctx.px(80))
        frame = state.frame()
        assert frame is not None
        changed, index = imgui.slider_int("##timeline_kimg", state.index, 0, len(tl.frames) - 1,
                                          f"{frame.kimg:g} kimg")  # fmt: skip
        record_item(ctx, "timeline_scrubber")
        if changed:
            state.index, state.follow = index, False
        imgui.same_line()
        _, state.follow = imgui.checkbox("newest", state.follow)
        record_item(ctx, "timeline_follow")
        if state.follow:
            state.index = len(tl.frames) - 1
        _draw_strip(state, ctx)
        load_frame(state)
        _draw_images(state, ctx, textures)
    imgui.separator()
    intents = _draw_snapshot_list(state, ctx)
    _draw_compare(state, ctx, engine, textures)
    return intents


def summary(state: TimelineState, engine: CompareEngine) -> dict[str, Any]:
    """What the panel shows, for --debug-state."""
    tl, result = state.timeline, state.compare
    out: dict[str, Any] = {
        "run_dir": str(state.run_dir) if state.run_dir else None,
        "runs": [str(r) for r in tl.runs],
        "frames": [[f.kimg, str(f.fakes) if f.fakes else None, str(f.reals) if f.reals else None] for f in tl.frames],
        "kept": [[s.kimg, str(s.path)] for s in tl.snapshots],
        "index": state.index, "follow": state.follow,
        "shown": [str(state.fakes_path) if state.fakes_path else None,
                  str(state.reals_path) if state.reals_path else None],
        "a": state.a, "b": state.b, "chosen": state.chosen,
        "compare_running": engine.pending is not None, "error": state.form_error or state.compare_error,
        "compare": None,
    }  # fmt: skip
    if result is not None:
        out["compare"] = {
            "a": str(result.request.a), "b": str(result.request.b), "seeds": list(result.request.seeds),
            "psi": result.request.psi, "shape": list(result.grid_a.shape),
            "a_mean": float(result.grid_a.mean()), "b_mean": float(result.grid_b.mean()),
            "differ": bool(np.any(result.grid_a != result.grid_b)),
        }  # fmt: skip
    return out


class TimelinePanel(StatePanel[TimelineState]):
    name, title, state_type = "timeline", "Snapshot timeline", TimelineState

    def __init__(self, state: TimelineState | None = None) -> None:
        super().__init__(state)
        self.engine = CompareEngine()

    def draw(self, ctx: FrameContext, scene: Scene) -> list[Intent]:
        return draw_timeline(self.state, ctx, scene, self.engine, ctx.textures)

    def debug_summary(self) -> dict[str, Any]:
        return summary(self.state, self.engine)
