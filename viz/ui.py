"""Small shared pieces for the panels: the per-frame context and a few imgui helpers."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from imgui_bundle import imgui

__all__ = [
    "FrameContext",
    "Rect",
    "fit_path",
    "fit_text",
    "action_button",
    "help_marker",
    "wrapped_tooltip",
    "job_progress_bar",
    "job_status_line",
    "record_item",
    "reset_button",
    "reset_state",
    "status_color",
    "text_colored",
]

Rect = tuple[float, float, float, float]


@dataclass
class FrameContext:
    """What every panel may use during one frame (built by the app; panels never keep it)."""

    scale: float = 1.0
    now: float = field(default_factory=time.monotonic)
    # Screen rectangles of named items; written to --debug-state so tests can click real widgets.
    rects: dict[str, Rect] = field(default_factory=dict)
    log: Callable[[str], None] = lambda message: None
    textures: Any = None  # the app's viz.gl.TextureCache, for panels that show an image (None in form tests)

    def px(self, value: float) -> float:
        """A size in logical pixels scaled for the display's DPI."""
        return value * self.scale


def record_item(ctx: FrameContext, name: str) -> None:
    """Remember the last item's screen rectangle under ``name``."""
    lo, hi = imgui.get_item_rect_min(), imgui.get_item_rect_max()
    ctx.rects[name] = (lo.x, lo.y, hi.x, hi.y)


def wrapped_tooltip(text: str, width: int = 72) -> None:
    """A tooltip broken into lines of at most ``width`` characters (its own line breaks kept), so a
    long help text stays inside the window instead of running off its edge on one line."""
    imgui.set_tooltip("\n".join(textwrap.fill(line, width) for line in text.split("\n")))


def help_marker(text: str) -> None:
    imgui.same_line()
    imgui.text_disabled("(?)")
    if imgui.is_item_hovered():
        wrapped_tooltip(text)


STATUS_COLORS = {
    "ok": (0.45, 0.85, 0.45, 1.0),
    "warn": (0.95, 0.75, 0.3, 1.0),
    "error": (1.0, 0.4, 0.4, 1.0),
    "info": (0.6, 0.75, 1.0, 1.0),
}


def status_color(kind: str) -> imgui.ImVec4:
    return imgui.ImVec4(*STATUS_COLORS.get(kind, STATUS_COLORS["info"]))


def text_colored(kind: str, text: str) -> None:
    imgui.push_style_color(imgui.Col_.text, status_color(kind))
    imgui.text_wrapped(text)
    imgui.pop_style_color()


ELLIPSIS = "\u2026"


def _longest_fitting(n: int, fits: Callable[[int], bool]) -> int:
    """The largest k in 0..n with fits(k) (fits is monotone: true up to some k, false after)."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def fit_text(text: str, width: float, measure: Callable[[str], Any]) -> str:
    """``text`` cut at the end with an ellipsis to fit ``width`` pixels (``measure(s).x`` is its width)."""
    if measure(text).x <= width:
        return text
    keep = _longest_fitting(len(text), lambda k: measure(text[:k] + ELLIPSIS).x <= width)
    return text[:keep] + ELLIPSIS


def fit_path(path: str, width: float, measure: Callable[[str], Any]) -> str:
    """A path cut at its start to fit ``width`` pixels: the end (the file or run name) is what matters."""
    if measure(path).x <= width:
        return path
    keep = _longest_fitting(len(path), lambda k: measure(ELLIPSIS + path[len(path) - k:]).x <= width)
    return ELLIPSIS + path[len(path) - keep:]


def reset_state(state: Any) -> None:
    """Put a panel state back to its dataclass defaults, in place (the app keeps a reference to it)."""
    default = type(state)()
    for f in fields(state):
        setattr(state, f.name, getattr(default, f.name))


def reset_button(ctx: FrameContext, state: Any, panel: str) -> bool:
    """A Reset button (rect ``<panel>_reset``) that restores ``state``'s defaults; True when clicked."""
    clicked = imgui.button(f"Reset##{panel}")
    record_item(ctx, f"{panel}_reset")
    if clicked:
        reset_state(state)
    return bool(clicked)


def action_button(ctx: FrameContext, label: str, rect: str, disabled: bool) -> bool:
    """A button that can be greyed out (a job running, nothing loaded); True when clicked."""
    imgui.begin_disabled(disabled)
    clicked = imgui.button(label)
    record_item(ctx, rect)
    imgui.end_disabled()
    return bool(clicked)


def job_status_line(form_error: str | None, message: str, failed: bool, running: bool) -> None:
    """A form's error, else a background job's last message, coloured by how it went."""
    if form_error:
        text_colored("error", form_error)
    elif message:
        text_colored("error" if failed else ("info" if running else "ok"), message)


def job_progress_bar(ctx: FrameContext, progress: Any, rect: str, waiting: str) -> None:
    """A running job's progress bar (viz.studio_jobs.JobProgress: ``done / total unit, N s left``),
    or ``waiting`` across an empty bar before its first report."""
    # A muted bar: the default yellow fill makes the white count on it hard to read.
    imgui.push_style_color(imgui.Col_.plot_histogram, imgui.ImVec4(0.26, 0.45, 0.72, 1.0))
    if progress is None:
        imgui.progress_bar(0.0, imgui.ImVec2(-1, 0), waiting)
    else:
        imgui.progress_bar(progress.fraction, imgui.ImVec2(-1, 0), progress.line(time.monotonic()))
    imgui.pop_style_color()
    record_item(ctx, rect)
