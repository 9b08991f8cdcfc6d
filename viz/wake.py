"""Waking the GUI's frame loop from another thread.

An idle window waits for input instead of drawing (see ``App.run``); a background worker that
finishes a render, a preview or a comparison calls :func:`wake` so the result is on screen at once
rather than at the next idle frame. The app installs the hook; without one (tests, scripts) waking
does nothing.
"""

from __future__ import annotations

from collections.abc import Callable

_hook: Callable[[], None] | None = None


def set_wake_hook(fn: Callable[[], None] | None) -> None:
    global _hook
    _hook = fn


def wake() -> None:
    """Safe from any thread."""
    hook = _hook
    if hook is not None:
        hook()
