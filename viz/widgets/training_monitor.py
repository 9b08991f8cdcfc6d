"""Training monitor: live plots of p, r_t (with its target), losses, penalties and speed; newest
fakes and "what D sees" previews; run status with the log's last lines when something went wrong.

:func:`ingest` turns run events into plot series (pure, tested); the draw functions only read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from imgui_bundle import imgui, implot
from PIL import Image

from core.rundir import RunReader, RunStatus, layout, schema
from viz.panel import Intent, Scene, StatePanel
from viz.ui import FrameContext, text_colored

__all__ = ["PLOTS", "MonitorPanel", "MonitorState", "draw_monitor_panel", "draw_monitor_view", "ingest", "load_preview"]

# (plot title, [(legend, stat key)]); r_t's plot also draws the ADA target.
PLOTS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("augmentation p", (("p", schema.STAT_P),)),
    ("r_t = E[sign D(real)]", (("r_t", schema.STAT_RT),)),
    ("losses", (("G", schema.STAT_LOSS_G), ("D", schema.STAT_LOSS_D))),
    ("R1 penalty", (("R1", schema.STAT_R1),)),
    ("path-length penalty", (("PL", schema.STAT_PL),)),
    ("seconds per kimg", (("s/kimg", schema.STAT_SEC_PER_KIMG),)),
)
STAT_KEYS = tuple(key for _, lines in PLOTS for _, key in lines)
STATE_KIND = {"running": "ok", "paused": "warn", "finished": "info", "stopped": "info", "failed": "error"}


@dataclass
class Series:
    kimg: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def add(self, kimg: float, value: float) -> None:
        self.kimg.append(kimg)
        self.values.append(value)

    def cut_after(self, kimg: float) -> None:
        """Forget the points past ``kimg`` (a resume from an earlier snapshot abandons them)."""
        keep = next((i for i, k in enumerate(self.kimg) if k > kimg), len(self.kimg))
        del self.kimg[keep:], self.values[keep:]


@dataclass
class MonitorState:
    series: dict[str, Series] = field(default_factory=lambda: {k: Series() for k in STAT_KEYS})
    target: Series = field(default_factory=Series)  # ADA target over kimg (steps when changed)
    events: int = 0
    kimg: float = 0.0
    saw_stats: bool = False
    controls: list[dict[str, Any]] = field(default_factory=list)
    status: RunStatus | None = None
    log_tail: list[str] = field(default_factory=list)
    fakes: np.ndarray | None = None
    fakes_path: Path | None = None
    reals_aug: np.ndarray | None = None
    reals_aug_path: Path | None = None
    last_poll: float = 0.0
    last_log: float = 0.0
    resets: int = 0
    resume_points: list[float] = field(default_factory=list)  # kimg where a later launch took over
    forked_from: list[Path] = field(default_factory=list)  # the run directories this run continues
    awaiting_fork: bool = False  # the next "started" event is where this directory took over

    def clear(self) -> None:
        fresh = MonitorState()
        self.__dict__.update(fresh.__dict__)

    def points(self) -> int:
        return sum(len(s.kimg) for s in self.series.values())


def ingest(state: MonitorState, events: list[dict[str, Any]], options: dict[str, Any] | None) -> None:
    """Add run events to the plot series. "stats" events make the curves; "tick" events carry the
    same numbers at tick ends and are used only for runs that log no "stats"."""
    target = _run_target(options)
    if not state.target.kimg and target is not None:
        state.target.add(0.0, target)
    for ev in events:
        state.events += 1
        kind, kimg = ev.get("kind"), ev.get("kimg")
        if not isinstance(kimg, int | float):
            continue
        if kind == "status" and ev.get("state") == "started" and (ev.get("segment") or state.awaiting_fork):
            state.awaiting_fork = False
            _resume_point(state, float(kimg))
        state.kimg = max(state.kimg, float(kimg))
        if kind == "stats" or (kind == "tick" and not state.saw_stats):
            state.saw_stats |= kind == "stats"
            for key in STAT_KEYS:
                value = ev.get(key)
                if isinstance(value, int | float) and np.isfinite(value):
                    state.series[key].add(float(kimg), float(value))
        elif kind == "control":
            state.controls.append(ev)
            applied = ev.get("applied") or {}
            if isinstance(applied.get("target"), int | float):
                state.target.add(float(kimg), float(applied["target"]))


def _resume_point(state: MonitorState, kimg: float) -> None:
    """A launch that continued the run from ``kimg``: one timeline, whatever came after it is replaced."""
    for series in (*state.series.values(), state.target):
        series.cut_after(kimg)
    state.kimg = kimg
    state.resume_points.append(kimg)


def ingest_ancestors(state: MonitorState, reader: RunReader) -> None:
    """Start the timeline with the run directories this run was forked from (oldest first; a resume
    with another --outdir, or any resume before runs continued in place): one timeline, the point
    where each later directory took over marked, what it replaced cut."""
    for run_dir in reader.ancestors():
        older = RunReader(run_dir)
        state.awaiting_fork = bool(state.forked_from)
        ingest(state, older.poll_events(), older.options())
        state.forked_from.append(run_dir)
    state.awaiting_fork = bool(state.forked_from)


def _run_target(options: dict[str, Any] | None) -> float | None:
    """The r_t target the run started with: the --target given, else the one the trainer resolved
    (the 0.6 default of ada/apa); None when p does not adapt."""
    if not options:
        return None
    given = options.get("target")
    if isinstance(given, int | float):
        return float(given)
    resolved = ((options.get("resolved") or {}).get("augment") or {}).get("target")
    return float(resolved) if isinstance(resolved, int | float) else None


def load_preview(
    path: Path | None, current: Path | None, image: np.ndarray | None
) -> tuple[Path | None, np.ndarray | None]:
    """Read a preview PNG if it is new; keep the old image if the new one is unreadable."""
    if path is None or path == current:
        return current, image
    try:
        with Image.open(path) as im:
            return path, np.asarray(im.convert("RGB"))
    except (OSError, ValueError):
        return current, image


def draw_monitor_panel(state: MonitorState, ctx: FrameContext, run_dir: Path | None) -> None:
    if run_dir is None:
        imgui.text_disabled("no run attached (Training control panel)")
        return
    imgui.text_wrapped(f"run {run_dir.name}")
    _draw_status_line(state)
    imgui.text(f"{state.kimg:.1f} kimg, {state.events} events, {state.points()} plotted points")
    if state.controls:
        last = state.controls[-1]
        imgui.text_disabled(
            f"last control applied: request {last.get('seq')} at {last.get('kimg', 0):.1f} kimg"
        )
    show_log = state.status is not None and (state.status.state == "failed" or state.status.stale)
    if show_log or imgui.tree_node("Log (last lines)"):
        for line in state.log_tail[-12:]:
            imgui.text_wrapped(line)
        if not show_log:
            imgui.tree_pop()


def _draw_status_line(state: MonitorState) -> None:
    st = state.status
    if st is None:
        imgui.text_disabled("status: waiting for the first event")
        return
    text = f"status: {st.state}" + (f" - {st.message}" if st.message else "")
    if st.stale:
        text_colored("error", f"{text} (stale: {st.stale_reason})")
    else:
        text_colored(STATE_KIND.get(st.state, "info"), text)


def draw_monitor_view(state: MonitorState, ctx: FrameContext, textures: Any, run_dir: Path | None) -> None:
    if run_dir is None:
        imgui.text_disabled("Attach to a run directory or start a run in the Training control panel.")
        return
    _draw_status_line(state)
    avail = imgui.get_content_region_avail()
    preview_w = min(avail.x * 0.34, avail.y * 0.5)
    plots_w = avail.x - preview_w - ctx.px(8)
    lo = imgui.get_cursor_screen_pos()
    _draw_plots(state, ctx, imgui.ImVec2(plots_w, avail.y))
    ctx.rects["monitor_plots"] = (lo.x, lo.y, lo.x + plots_w, lo.y + avail.y)
    imgui.same_line()
    imgui.begin_group()
    for name, title, image in (
        ("fakes", "newest fakes (fixed z)", state.fakes),
        ("reals_aug", "what D sees (augmented reals)", state.reals_aug),
    ):
        imgui.text(title)
        if image is None:
            imgui.text_disabled("no preview yet")
            continue
        tex = textures.get(f"monitor_{name}", image)
        side = min(preview_w, (avail.y - ctx.px(60)) / 2)
        imgui.image(imgui.ImTextureRef(tex.tex_id), imgui.ImVec2(side, side * tex.height / tex.width))
    imgui.end_group()


# Auto-fit leaves this fraction of the range free above and below (and a little at the ends), so a
# flat line (p at a constant, r_t at the target) never hides under the plot's border.
FIT_PADDING = (0.02, 0.12)


def _draw_plots(state: MonitorState, ctx: FrameContext, size: Any) -> None:
    if not implot.begin_subplots("##monitor", 3, 2, size):
        return
    for title, lines in PLOTS:
        if implot.begin_plot(title, imgui.ImVec2(-1, -1), implot.Flags_.no_menus):
            implot.setup_axes("kimg", "", implot.AxisFlags_.auto_fit, implot.AxisFlags_.auto_fit)
            for legend, key in lines:
                s = state.series[key]
                if s.kimg:
                    implot.plot_line(legend, np.asarray(s.kimg), np.asarray(s.values))
            if lines[0][1] == schema.STAT_RT and state.target.kimg:
                _plot_target(state)
            if state.resume_points:  # where a later launch continued the run: one timeline, marked
                implot.plot_inf_lines("resumed", np.asarray(state.resume_points, dtype=np.float64))
            implot.end_plot()
    implot.end_subplots()


def _plot_target(state: MonitorState) -> None:
    # The target holds until changed: draw it as steps reaching to the newest kimg.
    xs = np.asarray(state.target.kimg + [max(state.kimg, state.target.kimg[-1])])
    ys = np.asarray(state.target.values + [state.target.values[-1]])
    implot.plot_stairs("target", xs, ys)


def refresh(
    state: MonitorState, reader: RunReader | None, now: float, poll_s: float = 0.25, log_s: float = 2.0
) -> list[dict[str, Any]]:
    """Read what the attached run wrote since the last call (at most every ``poll_s`` seconds) into
    ``state``; it touches nothing else. Returns the new events (the app also looks for its control
    requests among them)."""
    if reader is None or now - state.last_poll < poll_s:
        return []
    state.last_poll = now
    if reader.resets != state.resets:
        state.clear()
        state.resets = reader.resets
    events = reader.poll_events()
    ingest(state, events, reader.options())
    state.status = reader.status()
    state.fakes_path, state.fakes = load_preview(
        reader.latest_preview(layout.PREVIEW_FAKES), state.fakes_path, state.fakes
    )
    state.reals_aug_path, state.reals_aug = load_preview(
        reader.latest_preview(layout.PREVIEW_REALS_AUGMENTED), state.reals_aug_path, state.reals_aug
    )
    if now - state.last_log >= log_s or (state.status and state.status.state == "failed"):
        state.last_log = now
        state.log_tail = reader.log_tail(40)
    return events


class MonitorPanel(StatePanel[MonitorState]):
    name, title, state_type = "monitor", "Training monitor", MonitorState

    def draw(self, ctx: FrameContext, scene: Scene) -> list[Intent]:
        draw_monitor_panel(self.state, ctx, scene.run_dir)
        return []
