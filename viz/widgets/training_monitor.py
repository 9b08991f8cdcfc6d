"""Training monitor: live plots of p, r_t (with its target), losses, penalties and speed, and the
quality metrics measured at snapshots (FD/FID, KID, precision & recall, copy score, leak indicators)
with the best snapshot marked; newest fakes and "what D sees" previews; run status with the log's
last lines when something went wrong. Other run directories can be overlaid (noaug vs ADA vs APA):
each is a read-only RunReader polled in :func:`refresh`, one colour per run.

:func:`ingest` turns run events into plot series (pure, tested); the draw functions only read.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from imgui_bundle import imgui, implot
from PIL import Image

from core.rundir import RunReader, RunStatus, is_run_dir, layout, list_run_dirs, schema
from core.rundir.layout import run_dir_of_snapshot
from viz.panel import Intent, Scene, StatePanel
from viz.ui import FrameContext, fit_path, help_marker, record_item, text_colored, wrapped_tooltip
from viz.widgets.monitor_metrics import (
    GROUP_BY_NAME,
    METRIC_GROUPS,
    BestSnapshot,
    MetricSeries,
    Series,
    add_metric_event,
    best_snapshot,
    group_keys,
    key_label,
)

__all__ = [
    "PLOTS",
    "ComparedRun",
    "MonitorPanel",
    "MonitorState",
    "add_compared",
    "compare_candidates",
    "debug_summary",
    "draw_monitor_panel",
    "draw_monitor_view",
    "ingest",
    "load_preview",
    "plot_pages",
    "refresh",
]

log = logging.getLogger(__name__)

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
    metrics: dict[str, MetricSeries] = field(default_factory=dict)  # result key -> values at snapshots
    # What the user chose, kept when the run's data is cleared (attach, detach, a rewritten events file):
    compared: list[ComparedRun] = field(default_factory=list)  # runs overlaid on this one, read-only
    compare_input: str = ""
    compare_error: str | None = None
    compare_choices: list[str] = field(default_factory=list)  # run directories offered by "runs nearby"
    page: str = "auto"  # which plots: one of PAGES
    show_previews: bool = True
    last_compare_poll: float = -math.inf

    def clear(self) -> None:
        """Forget the run's data; keep the compared runs and the view choices."""
        keep = {name: getattr(self, name) for name in KEPT_ON_CLEAR}
        self.__dict__.update(MonitorState().__dict__, **keep)

    def points(self) -> int:
        return sum(len(s.kimg) for s in self.series.values()) + sum(len(s.kimg) for s in self.metrics.values())

    def best(self) -> BestSnapshot | None:
        return best_snapshot(self.metrics)


KEPT_ON_CLEAR = ("compared", "compare_input", "compare_error", "compare_choices", "page", "show_previews",
                 "last_compare_poll")


@dataclass
class ComparedRun:
    """A run directory overlaid on the monitor's plots: its own reader and series, never written to."""

    run_dir: Path
    reader: RunReader
    state: MonitorState = field(default_factory=MonitorState)
    ancestors_read: bool = False

    @property
    def label(self) -> str:
        return self.run_dir.name


def add_compared(state: MonitorState, path: str, attached: Path | None) -> bool:
    """Overlay the run directory ``path``; False (and ``compare_error`` says why) when it is not one, is
    the attached run or is already overlaid."""
    text = path.strip()
    run_dir = Path(text).expanduser()
    state.compare_error = None
    if not text or not is_run_dir(run_dir):
        state.compare_error = f"{text or '(empty)'}: not a run directory (pick <outdir>/<NNNNN>-<desc>)"
        return False
    shown = [attached] if attached is not None else []
    shown += [run.run_dir for run in state.compared]
    if any(run_dir.resolve() == other.resolve() for other in shown):
        state.compare_error = f"{run_dir.name} is already shown"
        return False
    state.compared.append(ComparedRun(run_dir, RunReader(run_dir)))
    state.compare_input = ""
    log.info("monitor: overlaying %s", run_dir)
    return True


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
        elif kind == "metric":
            add_metric_event(state.metrics, ev)
        elif kind == "control":
            state.controls.append(ev)
            applied = ev.get("applied") or {}
            if isinstance(applied.get("target"), int | float):
                state.target.add(float(kimg), float(applied["target"]))


def _resume_point(state: MonitorState, kimg: float) -> None:
    """A launch that continued the run from ``kimg``: one timeline, whatever came after it is replaced."""
    for series in (*state.series.values(), state.target, *state.metrics.values()):
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


# -- what is plotted (pure: built from the states, tested without a window)

PAGES = {"auto": "auto", "training": "training", "metrics": "quality metrics", "all": "all"}


@dataclass(frozen=True)
class PlotSpec:
    """One plot: stat lines (legend, stat key), or every result key of a metric group."""

    title: str
    lines: tuple[tuple[str, str], ...] = ()
    group: str | None = None


@dataclass(frozen=True)
class PlotRun:
    """A run as drawn: its legend label, its colour (a colormap index) and its series."""

    label: str
    colour: int
    state: MonitorState


@dataclass(frozen=True)
class PlotLine:
    label: str  # what the line is: its key's legend (one run), else the run's name (and the key's legend)
    legend: str  # its key's legend
    colour: int | None  # colormap index; None: implot picks (one run: one colour per key)
    index: int  # which of the plot's keys (a marker shape, a shade)
    kimg: list[float]
    values: list[float]


STAT_PLOTS = tuple(PlotSpec(title, lines) for title, lines in PLOTS)


def plot_runs(state: MonitorState, run_dir: Path | None) -> list[PlotRun]:
    """The attached run (colour 0) and the compared ones (colours 1, 2, ...), as the plots draw them."""
    shown = ([(run_dir, 0, state)] if run_dir is not None else []) + [
        (run.run_dir, i + 1, run.state) for i, run in enumerate(state.compared)]
    names = [path.name for path, _, _ in shown]
    # Runs of the same name in different output folders: say which folder.
    return [PlotRun(path.name if names.count(path.name) == 1 else f"{path.parent.name}/{path.name}", colour, st)
            for path, colour, st in shown]


def overlaid(runs: list[PlotRun]) -> bool:
    """Whether compared runs are drawn (then each run has its colour; alone, each key has one)."""
    return len(runs) > 1 or any(run.colour != 0 for run in runs)


def plot_pages(page: str, runs: list[PlotRun]) -> list[PlotSpec]:
    """The plots of a page: "training" the six stat plots, "metrics" p and r_t with one plot per metric
    group any run has, "all" both; "auto" is "metrics" once a metric arrived, else "training"."""
    present: set[str] = set()
    for run in runs:
        present.update(group_keys(run.state.metrics))
    groups = [PlotSpec(g.title, group=g.name) for g in METRIC_GROUPS if g.name in present]
    if page == "auto":
        page = "metrics" if groups else "training"
    if page == "training":
        return list(STAT_PLOTS)
    if page == "metrics":
        return [*STAT_PLOTS[:2], *groups]
    return [*STAT_PLOTS, *groups]


def plot_lines(plot: PlotSpec, runs: list[PlotRun]) -> list[PlotLine]:
    """The lines of ``plot`` for every run: with one run one entry per key, with several one colour per
    run (legend: the run, and the key where the plot has several)."""
    per_run: list[tuple[PlotRun, list[tuple[str, Series]]]] = []
    for run in runs:
        if plot.group is None:
            entries = [(legend, run.state.series[key]) for legend, key in plot.lines]
        else:
            metrics = run.state.metrics
            entries = [(key_label(metrics[k].metric, k), metrics[k]) for k in group_keys(metrics).get(plot.group, [])]
        per_run.append((run, [(legend, s) for legend, s in entries if s.kimg]))
    legends = sorted({legend for _, entries in per_run for legend, _ in entries}, key=_legend_order(plot))
    compare = overlaid(runs)
    out = []
    for run, entries in per_run:
        for legend, s in entries:
            label = legend if not compare else (run.label if len(legends) == 1 else f"{run.label} {legend}")
            colour = run.colour if compare else None
            out.append(PlotLine(label, legend, colour, legends.index(legend), s.kimg, s.values))
    return out


def _legend_order(plot: PlotSpec) -> Any:
    order = [legend for legend, _ in plot.lines]
    return lambda legend: (order.index(legend) if legend in order else len(order), legend)


# -- drawing

MARKERS = ("circle", "square", "diamond", "up", "down", "left", "right", "cross", "plus", "asterisk")
SHADES = (1.0, 0.6, 0.4, 0.8, 0.5)  # a run's second, third ... line: its colour, lighter
BEST_COLOUR = (1.0, 0.86, 0.3, 0.95)


def draw_monitor_panel(state: MonitorState, ctx: FrameContext, run_dir: Path | None) -> None:
    if run_dir is None:
        imgui.text_disabled("no run attached (Training control panel)")
    else:
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
    _draw_compare(state, ctx, run_dir)
    if imgui.tree_node("How to read the metrics"):
        for group in METRIC_GROUPS[:-1]:
            imgui.text(group.title)
            imgui.indent()
            imgui.text_wrapped(group.help)
            imgui.unindent()
        imgui.tree_pop()


def _draw_compare(state: MonitorState, ctx: FrameContext, run_dir: Path | None) -> None:
    """Runs overlaid on the plots: a path (or a run next to the shown ones), each with a Remove button."""
    flags = imgui.TreeNodeFlags_.default_open if state.compared else 0
    opened = imgui.tree_node_ex("Compare runs", flags)
    record_item(ctx, "monitor_compare")
    if not opened:
        return
    imgui.set_next_item_width(imgui.get_content_region_avail().x - ctx.px(80))
    entered, state.compare_input = imgui.input_text_with_hint(
        "##compare_path", "run directory to overlay", state.compare_input, imgui.InputTextFlags_.enter_returns_true
    )
    record_item(ctx, "monitor_compare_path")
    imgui.same_line()
    if imgui.button("Add##compare") or entered:
        add_compared(state, state.compare_input, run_dir)
    record_item(ctx, "monitor_compare_add")
    help_marker("Overlay another run directory's p, r_t and metrics on the plots (e.g. noaug vs ADA vs APA "
                "on the same data), one colour per run. Compared runs are only read, never controlled.")
    imgui.set_next_item_width(imgui.get_content_region_avail().x)
    if imgui.begin_combo("##compare_nearby", "runs nearby or recent ..."):
        if imgui.is_window_appearing():
            state.compare_choices = compare_candidates(state, run_dir)
        if not state.compare_choices:
            imgui.text_disabled("no other run directory beside the shown ones or recently opened")
        for path in state.compare_choices:
            clicked = imgui.selectable(fit_path(path, ctx.px(340), imgui.calc_text_size), False)[0]
            record_item(ctx, f"monitor_compare_choice:{Path(path).name}")
            if clicked:
                add_compared(state, path, run_dir)
        imgui.end_combo()
    record_item(ctx, "monitor_compare_nearby")
    if state.compare_error:
        text_colored("error", state.compare_error)
    removed = None
    for i, run in enumerate(state.compared):
        imgui.color_button(f"##colour{i}", _colour(i + 1), imgui.ColorEditFlags_.no_tooltip,
                           imgui.ImVec2(ctx.px(12), ctx.px(12)))
        imgui.same_line()
        if imgui.small_button(f"Remove##compare{i}"):
            removed = i
        record_item(ctx, f"monitor_compare_remove:{i}")
        imgui.same_line()
        st = run.state.status
        imgui.text(f"{run.label}: {st.state if st else '...'}, {run.state.kimg:.1f} kimg")
        best = run.state.best()
        if best is not None:
            imgui.indent(ctx.px(18))
            imgui.push_style_color(imgui.Col_.text, imgui.get_style_color_vec4(imgui.Col_.text_disabled))
            imgui.text_wrapped(best.label())
            imgui.pop_style_color()
            imgui.unindent(ctx.px(18))
    if removed is not None:
        log.info("monitor: no longer overlaying %s", state.compared[removed].run_dir)
        del state.compared[removed]
    imgui.tree_pop()


def compare_candidates(state: MonitorState, run_dir: Path | None) -> list[str]:
    """Run directories to offer for comparison, not shown yet (read when the list opens): those beside
    the attached and the compared runs, then the recently opened ones (a snapshot's run directory)."""
    from viz.settings import load_recent, load_session

    shown = ([run_dir] if run_dir is not None else []) + [run.run_dir for run in state.compared]
    candidates: list[Path] = []
    for parent in dict.fromkeys(p.resolve().parent for p in shown):
        candidates += list_run_dirs(parent)
    recent = [Path(p) for p in load_recent()] + [Path(p) for p in [load_session().last_run_dir] if p]
    candidates += [p if p.is_dir() else run_dir_of_snapshot(p) or p for p in recent]
    seen = {p.resolve() for p in shown}
    found: list[str] = []
    for path in candidates:
        if path.resolve() not in seen and is_run_dir(path):
            seen.add(path.resolve())
            found.append(str(path))
    return found


def _draw_status_line(state: MonitorState) -> None:
    st = state.status
    if st is None:
        imgui.text_disabled("status: waiting for the first event")
    else:
        text = f"status: {st.state}" + (f" - {st.message}" if st.message else "")
        if st.stale:
            text_colored("error", f"{text} (stale: {st.stale_reason})")
        else:
            text_colored(STATE_KIND.get(st.state, "info"), text)
    best = state.best()
    if best is not None:
        imgui.push_style_color(imgui.Col_.text, imgui.ImVec4(*BEST_COLOUR))
        imgui.text_wrapped(best.label())
        imgui.pop_style_color()


def draw_monitor_view(state: MonitorState, ctx: FrameContext, textures: Any, run_dir: Path | None) -> None:
    if run_dir is None and not state.compared:
        imgui.text_disabled("Attach to a run directory or start a run in the Training control panel "
                            "(or compare finished runs: Training monitor > Compare runs).")
        return
    runs = plot_runs(state, run_dir)
    if run_dir is not None:
        _draw_status_line(state)
    plots = plot_pages(state.page, runs)
    has_previews = run_dir is not None and (state.fakes is not None or state.reals_aug is not None)
    _draw_toolbar(state, ctx, plots, has_previews)
    if overlaid(runs):
        _draw_run_legend(runs)
    avail = imgui.get_content_region_avail()
    show_previews = state.show_previews and has_previews
    preview_w = min(avail.x * 0.3, avail.y * 0.5) if show_previews else 0.0
    plots_w = avail.x - preview_w - (ctx.px(8) if show_previews else 0.0)
    lo = imgui.get_cursor_screen_pos()
    _draw_plots(runs, plots, ctx, imgui.ImVec2(plots_w, avail.y))
    ctx.rects["monitor_plots"] = (lo.x, lo.y, lo.x + plots_w, lo.y + avail.y)
    if not show_previews:
        return
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


def _draw_toolbar(state: MonitorState, ctx: FrameContext, plots: list[PlotSpec], has_previews: bool) -> None:
    right = imgui.get_cursor_screen_pos().x + imgui.get_content_region_avail().x
    imgui.text("plots:")
    for page, title in PAGES.items():
        imgui.same_line()
        if imgui.radio_button(f"{title}##page", state.page == page):
            state.page = page
        record_item(ctx, f"monitor_page:{page}")
    if has_previews:
        imgui.same_line(0, ctx.px(16))
        _, state.show_previews = imgui.checkbox("show previews", state.show_previews)
    groups = [plot.group for plot in plots if plot.group is not None and plot.group != "other"]
    if not groups:
        return
    _same_line_if_fits("how to read:", right, ctx.px(16))
    imgui.text_disabled("how to read:")
    for name in groups:
        text = f"{HELP_NAMES[name]} (?)"
        _same_line_if_fits(text, right, imgui.get_style().item_spacing.x)
        imgui.text_disabled(text)
        record_item(ctx, f"monitor_help:{name}")
        if imgui.is_item_hovered():
            wrapped_tooltip(GROUP_BY_NAME[name].help)


def _same_line_if_fits(text: str, right: float, spacing: float) -> None:
    """Stay on the line when ``text`` still fits left of ``right``, else start a new one."""
    if imgui.get_item_rect_max().x + spacing + imgui.calc_text_size(text).x <= right:
        imgui.same_line(0, spacing)


HELP_NAMES = {"distances": "FD", "kid": "KID", "pr": "P&R", "copies": "copies", "leaks": "leaks"}


def _draw_run_legend(runs: list[PlotRun]) -> None:
    """One line per run: its colour, its name and its best snapshot."""
    for run in runs:
        imgui.color_button(f"##legend{run.colour}", _colour(run.colour), imgui.ColorEditFlags_.no_tooltip,
                           imgui.ImVec2(imgui.get_text_line_height(), imgui.get_text_line_height()))
        imgui.same_line()
        best = run.state.best()
        imgui.text(run.label + (f"    {best.label()}" if best is not None else ""))


# Auto-fit leaves this fraction of the range free above and below (and a little at the ends), so a
# flat line (p at a constant, r_t at the target) never hides under the plot's border.
FIT_PADDING = (0.02, 0.12)


def plot_grid(n: int, width: float, height: float, aspect: float = 1.5) -> tuple[int, int]:
    """Rows and columns for ``n`` plots in ``width`` x ``height``: cells close to ``aspect`` (w/h), few
    left empty."""
    def misfit(cols: int) -> float:
        rows = math.ceil(n / cols)
        return abs(math.log((width / cols) / max(height / rows, 1.0) / aspect)) + 0.15 * (rows * cols - n)

    cols = min(range(1, max(n, 1) + 1), key=misfit)
    return max(1, math.ceil(n / cols)), cols


def _draw_plots(runs: list[PlotRun], plots: list[PlotSpec], ctx: FrameContext, size: Any) -> None:
    rows, cols = plot_grid(len(plots), size.x, size.y)
    if not implot.begin_subplots("##monitor", rows, cols, size):
        return
    compare = overlaid(runs)
    for plot in plots:
        lines = plot_lines(plot, runs)
        legends = {line.legend: line for line in lines}
        # Several runs: their colours are named above the plots; a legend here names the keys only.
        flags = implot.Flags_.no_menus | (implot.Flags_.no_legend if compare and len(legends) < 2 else 0)
        if not implot.begin_plot(plot.title, imgui.ImVec2(-1, -1), flags):
            continue
        implot.setup_axes("kimg", "", implot.AxisFlags_.auto_fit, implot.AxisFlags_.auto_fit)
        markers = plot.group is not None
        if compare:
            for legend, line in legends.items():  # legend entries only: grey, the key's marker or shade
                implot.plot_line(legend, np.zeros(0), np.zeros(0), _line_spec(line, ctx, markers, grey=True))
        for line in lines:
            implot.plot_line(("##" if compare else "") + line.label, np.asarray(line.kimg),
                             np.asarray(line.values), _line_spec(line, ctx, markers))
        if plot.lines and plot.lines[0][1] == schema.STAT_RT:
            for run in runs:
                if run.state.target.kimg:
                    _plot_target(run.state, run.colour if compare else None)
        for run in runs:
            if run.state.resume_points:  # where a later launch continued the run: one timeline, marked
                implot.plot_inf_lines("resumed", np.asarray(run.state.resume_points, dtype=np.float64),
                                      _colour_spec(run.colour if compare else None, 0.5))
        _plot_best(runs, plot, compare, ctx)
        plot_lo, plot_size = implot.get_plot_pos(), implot.get_plot_size()
        ctx.rects[f"monitor_plot:{plot.group or plot.title}"] = (
            plot_lo.x, plot_lo.y, plot_lo.x + plot_size.x, plot_lo.y + plot_size.y)
        implot.end_plot()
    implot.end_subplots()


def _plot_best(runs: list[PlotRun], plot: PlotSpec, compare: bool, ctx: FrameContext) -> None:
    """A vertical line at each run's best snapshot; on the distance plot, its kimg beside the point."""
    for run in runs:
        best = run.state.best()
        if best is None:
            continue
        colour = _colour(run.colour) if compare else imgui.ImVec4(*BEST_COLOUR)
        spec = implot.Spec()
        spec.line_color = colour
        spec.line_weight = ctx.px(1.5)
        label = f"##best{run.colour}" if compare else "best"  # the run legend above says whose
        implot.plot_inf_lines(label, np.asarray([best.kimg], dtype=np.float64), spec)
        if plot.group == "distances" and not compare:
            text = f"best {best.kimg:g} kimg".replace("%", "%%")
            implot.annotation(best.kimg, best.value, colour, imgui.ImVec2(ctx.px(10), -ctx.px(10)), True, text)


def _colour(index: int, alpha: float = 1.0) -> imgui.ImVec4:
    c = implot.get_colormap_color(index)
    return imgui.ImVec4(c.x, c.y, c.z, c.w * alpha)


def _colour_spec(index: int | None, alpha: float) -> implot.Spec:
    spec = implot.Spec()
    if index is not None:
        spec.line_color = _colour(index, alpha)
    return spec


def _line_spec(line: PlotLine, ctx: FrameContext, markers: bool, grey: bool = False) -> implot.Spec:
    spec = _colour_spec(line.colour, SHADES[line.index % len(SHADES)])
    if grey:
        spec.line_color = imgui.ImVec4(0.8, 0.8, 0.8, SHADES[line.index % len(SHADES)])
    if markers:  # metrics come at snapshots: a few points, each worth seeing
        spec.marker = getattr(implot.Marker_, MARKERS[line.index % len(MARKERS)])
        spec.marker_size = ctx.px(3.5)
    return spec


def _plot_target(state: MonitorState, colour: int | None) -> None:
    # The target holds until changed: draw it as steps reaching to the newest kimg.
    xs = np.asarray(state.target.kimg + [max(state.kimg, state.target.kimg[-1])])
    ys = np.asarray(state.target.values + [state.target.values[-1]])
    implot.plot_stairs("target", xs, ys, _colour_spec(colour, 0.55))


def refresh(
    state: MonitorState, reader: RunReader | None, now: float, poll_s: float = 0.25, log_s: float = 2.0,
    compare_s: float = 1.0,
) -> list[dict[str, Any]]:
    """Read what the attached run wrote since the last call (at most every ``poll_s`` seconds) into
    ``state``; it touches nothing else. Returns the new events (the app also looks for its control
    requests among them). The compared runs are read too (every ``compare_s`` seconds)."""
    if now - state.last_compare_poll >= compare_s:
        state.last_compare_poll = now
        if reader is not None:  # a compared run that got attached is drawn once, as the attached run
            state.compared = [run for run in state.compared if not _same_dir(run.run_dir, reader.run_dir)]
        for run in state.compared:
            refresh_compared(run)
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


def debug_summary(state: MonitorState, run_dir: Path | None) -> dict[str, Any]:
    """The metrics part of the app's --debug-state: points per result key, the best snapshot, the plots
    of the page shown and the compared runs (for tests and bug reports)."""

    def metrics(st: MonitorState) -> dict[str, Any]:
        best = st.best()
        return {"metrics": {k: len(s.kimg) for k, s in st.metrics.items()},
                "best": None if best is None else {"snapshot": best.snapshot, "kimg": best.kimg, "key": best.key,
                                                   "value": best.value, "label": best.label()}}

    runs = plot_runs(state, run_dir)
    return {
        **metrics(state),
        "page": state.page,
        "plots": [plot.group or plot.title for plot in plot_pages(state.page, runs)],
        "compared": [{"run_dir": str(run.run_dir), "events": run.state.events, **metrics(run.state)}
                     for run in state.compared],
        "compare_error": state.compare_error,
    }


def _same_dir(a: Path, b: Path) -> bool:
    return a.name == b.name and a.resolve() == b.resolve()


def refresh_compared(run: ComparedRun) -> None:
    """Read what a compared run wrote since the last call (its forked-from chain first, once)."""
    reader, state = run.reader, run.state
    if reader.resets != state.resets:
        state.clear()
        state.resets, run.ancestors_read = reader.resets, False
    if not run.ancestors_read:
        ingest_ancestors(state, reader)
        run.ancestors_read = True
    ingest(state, reader.poll_events(), reader.options())
    state.status = reader.status()


class MonitorPanel(StatePanel[MonitorState]):
    name, title, state_type = "monitor", "Training monitor", MonitorState

    def draw(self, ctx: FrameContext, scene: Scene) -> list[Intent]:
        draw_monitor_panel(self.state, ctx, scene.run_dir)
        return []
