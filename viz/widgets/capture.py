"""Capture panel: save the image on screen (generator image or grid, augmentation preview) as PNG."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from imgui_bundle import imgui
from PIL import Image

from core.io.atomic import atomic_write_bytes
from viz.panel import Intent, SaveCapture, Scene, StatePanel
from viz.ui import FrameContext, record_item, text_colored

__all__ = ["CapturePanel", "CaptureState", "draw_capture", "save_png"]


@dataclass
class CaptureState:
    folder: str = "captures"
    prefix: str = "ada"
    last_saved: str | None = None
    error: str | None = None


def draw_capture(state: CaptureState, ctx: FrameContext, what: str | None) -> bool:
    """Draws the panel; True when the user asked to save ``what``."""
    save = False
    imgui.set_next_item_width(-ctx.px(70))
    _, state.folder = imgui.input_text("Folder", state.folder)
    imgui.set_next_item_width(ctx.px(140))
    _, state.prefix = imgui.input_text("Name prefix", state.prefix)
    imgui.begin_disabled(what is None)
    if imgui.button(f"Save {what or 'image'} as PNG"):
        save = True
    record_item(ctx, "capture_button")
    imgui.end_disabled()
    if state.error:
        text_colored("error", state.error)
    elif state.last_saved:
        text_colored("ok", f"saved {state.last_saved}")
    return save


def save_png(state: CaptureState, image: np.ndarray, label: str) -> None:
    """Write ``image`` to ``<folder>/<prefix>-<label>-<time>.png`` (atomically); record the outcome."""
    folder = Path(state.folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = folder / f"{state.prefix}-{label}-{stamp}.png"
        n = 1
        while path.exists():
            n += 1
            path = folder / f"{state.prefix}-{label}-{stamp}-{n}.png"
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG")
        atomic_write_bytes(path, buf.getvalue())
        state.last_saved, state.error = str(path), None
    except OSError as exc:
        state.error = f"could not save into {folder}: {exc.strerror or exc}"


class CapturePanel(StatePanel[CaptureState]):
    name, title, state_type = "capture", "Capture", CaptureState

    def draw(self, ctx: FrameContext, scene: Scene) -> list[Intent]:
        what = scene.capture_label if scene.capture_image is not None else None
        return [SaveCapture()] if draw_capture(self.state, ctx, what) else []
