"""Augmentation preview: real images beside their augmented versions, with per-op sliders.

The pipeline is ``core.augment.AugmentPipe``, run off the GUI thread. The same dataset, image
choice, seed and settings give the same picture (the pipe draws from its own seeded streams), so
moving one slider changes only what that op does. Hovering an augmented image lists the ops that
fired on it with their parameters. "Send to training" writes the multipliers, the p mode and the
ADA target to the attached run's control.json.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from imgui_bundle import imgui

from core.augment import BAND_NAMES, OP_NAMES, PRESETS, AugmentPipe
from core.augment.modes import PMode, choices
from core.io.images import from_uint8, to_hwc
from core.io.worker import LatestWorker
from viz.panel import Intent, Scene, SendAugment, StatePanel
from viz.ui import FrameContext, help_marker, record_item, text_colored
from viz.wake import wake

__all__ = [
    "AugmentEngine",
    "AugmentPreview",
    "AugmentPreviewState",
    "PreviewSpec",
    "compute_preview",
    "draw_augment_panel",
    "draw_augment_view",
]

DEFAULT_DATASET = "builtin:digits"
PAIR_GAP = 2  # pixels between a real and its augmented copy
CELL_GAP = 6  # pixels between pairs
OP_HELP = {
    "xflip": "mirror left-right",
    "rotate90": "quarter turns",
    "xint": "integer translation",
    "scale": "isotropic scaling",
    "rotate": "arbitrary rotation",
    "aniso": "anisotropic scaling",
    "xfrac": "fractional translation",
    "brightness": "add to luma",
    "contrast": "scale around mean",
    "lumaflip": "invert luma",
    "hue": "rotate hue",
    "saturation": "scale saturation",
    "imgfilter": "boost/cut frequency bands",
    "noise": "additive gaussian noise",
    "cutout": "erase a square",
}


@dataclass(frozen=True)
class PreviewSpec:
    """Everything that determines the preview picture."""

    dataset: str
    image_seed: int
    count: int
    p: float
    multipliers: tuple[tuple[str, float], ...]
    seed: int


@dataclass
class AugmentPreview:
    spec: PreviewSpec
    reals: np.ndarray  # [N, H, W, 3] uint8
    augmented: np.ndarray  # [N, H, W, 3] uint8
    explain: list[dict[str, dict[str, Any]]]
    composite: np.ndarray  # pairs laid out in a grid, uint8 HxWx3
    cols: int
    resolution: int


@dataclass
class AugmentPreviewState:
    dataset_input: str = DEFAULT_DATASET
    dataset: str = DEFAULT_DATASET
    count: int = 16
    image_seed: int = 0
    seed: int = 0
    p: float = 0.5
    preset: str = "bgc"
    multipliers: dict[str, float] = field(
        default_factory=lambda: dict(PRESETS["bgc"]) | dict.fromkeys(BAND_NAMES, 1.0)
    )
    # Sent to a training run with the multipliers.
    aug_mode: str = PMode.ADAPTIVE.value
    target: float = 0.6
    preview: AugmentPreview | None = None
    error: str | None = None
    compute_ms: float = 0.0
    sent_seq: int | None = None
    sent_kimg: float | None = None
    hovered: int | None = None  # index of the image under the mouse (for tooltips and tests)

    def spec(self) -> PreviewSpec:
        mult = tuple(sorted((k, float(v)) for k, v in self.multipliers.items()))
        return PreviewSpec(self.dataset, self.image_seed, self.count, float(self.p), mult, self.seed)

    def apply_preset(self, name: str) -> None:
        self.preset = name
        self.multipliers.update(PRESETS[name])


class AugmentEngine:
    """Runs previews in a worker thread; datasets stay open there between previews."""

    def __init__(self) -> None:
        self._worker = LatestWorker("viz-augment", on_result=wake)
        self._datasets: dict[str, Any] = {}  # touched by the worker thread only
        self._submitted: PreviewSpec | None = None

    def request(self, spec: PreviewSpec) -> None:
        if spec != self._submitted:
            self._submitted = spec
            self._worker.submit(spec, lambda: compute_preview(spec, self._dataset(spec.dataset)))

    def poll(self, state: AugmentPreviewState) -> bool:
        result = self._worker.poll()
        if result is None:
            return False
        state.compute_ms = result.ms
        if result.error:
            state.error = result.error
        else:
            state.preview, state.error = result.value, None
        return True

    def wait_idle(self, timeout: float) -> bool:
        return self._worker.wait_idle(timeout)

    def close(self) -> None:
        self._worker.close()

    def _dataset(self, spec: str) -> Any:
        from core.data.dataset import ImageDataset

        if spec not in self._datasets:
            self._datasets = {spec: ImageDataset(spec)}  # keep one open: previews switch rarely
        return self._datasets[spec]


def compute_preview(spec: PreviewSpec, dataset: Any) -> AugmentPreview:
    """Pick ``count`` images with ``image_seed`` and augment them with a generator seeded by ``seed``."""
    n = min(spec.count, len(dataset))
    idx = np.sort(np.random.RandomState(spec.image_seed).choice(len(dataset), size=n, replace=False))
    images, _ = dataset.load_batch(idx)
    x = from_uint8(images)
    mult = dict(spec.multipliers)
    pipe = AugmentPipe(**{op: mult.get(op, 0.0) for op in OP_NAMES}, p=spec.p)
    pipe.set_multipliers({b: mult.get(b, 1.0) for b in BAND_NAMES})
    with torch.inference_mode():
        out, explain = pipe(x, generator=torch.Generator().manual_seed(spec.seed), explain=True)
    reals, augmented = to_hwc(x, rgb=True), to_hwc(out, rgb=True)
    cols = max(1, math.ceil(math.sqrt(n)))  # pairs are twice as wide as tall: suits a wide view
    return AugmentPreview(
        spec, reals, augmented, explain, _composite(reals, augmented, cols), cols, x.shape[-1]
    )


def _pair_origin(i: int, cols: int, res: int) -> tuple[int, int]:
    """Top-left pixel (x, y) of pair ``i`` in the composite."""
    pair_w = 2 * res + PAIR_GAP
    return (i % cols) * (pair_w + CELL_GAP), (i // cols) * (res + CELL_GAP)


def _composite(reals: np.ndarray, augmented: np.ndarray, cols: int) -> np.ndarray:
    n, res = reals.shape[0], reals.shape[1]
    rows = math.ceil(n / cols)
    width = cols * (2 * res + PAIR_GAP) + (cols - 1) * CELL_GAP
    height = rows * res + (rows - 1) * CELL_GAP
    out = np.full((height, width, 3), 24, dtype=np.uint8)
    for i in range(n):
        x, y = _pair_origin(i, cols, res)
        out[y : y + res, x : x + res] = reals[i]
        out[y : y + res, x + res + PAIR_GAP : x + 2 * res + PAIR_GAP] = augmented[i]
    return out


def hit_test(preview: AugmentPreview, u: float, v: float) -> tuple[int, bool] | None:
    """(image index, is the augmented copy) at composite pixel (u, v), or None between images."""
    res, cols = preview.resolution, preview.cols
    for i in range(len(preview.explain)):
        x, y = _pair_origin(i, cols, res)
        if y <= v < y + res:
            if x <= u < x + res:
                return i, False
            if x + res + PAIR_GAP <= u < x + 2 * res + PAIR_GAP:
                return i, True
    return None


def describe_ops(fired: dict[str, dict[str, Any]]) -> list[str]:
    """Tooltip lines: one per op that fired, with its parameters."""
    if not fired:
        return ["no op fired on this image"]
    lines = []
    for op, params in fired.items():
        parts = [f"{k}={_fmt(v)}" for k, v in params.items()]
        lines.append(f"{op}: {', '.join(parts)}" if parts else op)
    return lines


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(e) for e in v) + "]"
    return str(v)


def draw_augment_panel(state: AugmentPreviewState, ctx: FrameContext, run_attached: bool) -> bool:
    """Draws the panel; True when the user asked to send the settings to the attached run."""
    imgui.set_next_item_width(-ctx.px(95))
    entered, state.dataset_input = imgui.input_text(
        "##aug_dataset", state.dataset_input, imgui.InputTextFlags_.enter_returns_true
    )
    imgui.same_line()
    if (imgui.button("Load##aug") or entered) and state.dataset_input.strip():
        state.dataset = state.dataset_input.strip()
    help_marker("A folder or zip of images, or builtin:digits (32 px digits shipped with ADA Studio).")
    if state.error:
        text_colored("error", state.error)
    _draw_global(state, ctx)
    if imgui.tree_node("Op multipliers"):
        for op in OP_NAMES:
            _multiplier_slider(state, ctx, op, OP_HELP[op])
        imgui.tree_pop()
    if imgui.tree_node("Filter bands"):
        for i, band in enumerate(BAND_NAMES):
            _multiplier_slider(state, ctx, band, f"imgfilter octave band {i} (low to high frequencies)")
        imgui.tree_pop()
    imgui.separator()
    return _draw_send(state, ctx, run_attached)


def _draw_global(state: AugmentPreviewState, ctx: FrameContext) -> None:
    imgui.set_next_item_width(ctx.px(180))
    _, state.p = imgui.slider_float("p##aug", state.p, 0.0, 1.0, "%.3f")
    record_item(ctx, "aug_p_slider")
    help_marker("Each op fires on each image with probability p x its multiplier.")
    names = list(PRESETS)
    imgui.set_next_item_width(ctx.px(180))
    changed, idx = imgui.combo(
        "Preset##aug", names.index(state.preset) if state.preset in names else 0, names
    )
    if changed:
        state.apply_preset(names[idx])
    if imgui.button("Re-roll"):
        state.seed += 1
    record_item(ctx, "aug_reroll")
    imgui.same_line()
    if imgui.button("Other images"):
        state.image_seed += 1
    imgui.same_line()
    imgui.text_disabled(f"seed {state.seed}  ({state.compute_ms:.0f} ms)")


def _multiplier_slider(state: AugmentPreviewState, ctx: FrameContext, name: str, tip: str) -> None:
    imgui.set_next_item_width(ctx.px(160))
    changed, value = imgui.slider_float(f"{name}##mult", state.multipliers.get(name, 0.0), 0.0, 1.0, "%.2f")
    record_item(ctx, f"mult_{name}")
    if changed:
        state.multipliers[name] = max(0.0, value)
    if imgui.is_item_hovered():
        imgui.set_tooltip(f"{tip} (ctrl+click to type a value above 1)")


def _draw_send(state: AugmentPreviewState, ctx: FrameContext, run_attached: bool) -> bool:
    imgui.set_next_item_width(ctx.px(120))
    modes = list(choices(PMode))
    changed, idx = imgui.combo("p mode##aug", modes.index(state.aug_mode), modes)
    if changed:
        state.aug_mode = modes[idx]
    help_marker(
        "ada: p adapts to keep r_t at the target; fixed: p stays at the slider's value; noaug: p = 0."
    )
    if state.aug_mode == PMode.ADAPTIVE:
        imgui.set_next_item_width(ctx.px(120))
        _, state.target = imgui.slider_float("target r_t##aug", state.target, 0.0, 1.0, "%.2f")
    imgui.begin_disabled(not run_attached)
    send = imgui.button("Send to training")
    record_item(ctx, "aug_send")
    imgui.end_disabled()
    if not run_attached:
        imgui.same_line()
        imgui.text_disabled("(attach a run first)")
    if state.sent_seq is not None:
        if state.sent_kimg is None:
            text_colored("warn", f"sent as request {state.sent_seq}; waiting for the trainer's next tick")
        else:
            text_colored(
                "ok", f"request {state.sent_seq} applied by the trainer at {state.sent_kimg:.1f} kimg"
            )
    return send


class AugmentPanel(StatePanel[AugmentPreviewState]):
    name, title, state_type = "augment", "Augmentation", AugmentPreviewState

    def draw(self, ctx: FrameContext, scene: Scene) -> list[Intent]:
        s = self.state
        if draw_augment_panel(s, ctx, scene.run_attached):
            return [SendAugment(dict(s.multipliers), s.aug_mode, s.target, s.p)]
        return []


def draw_augment_view(state: AugmentPreviewState, ctx: FrameContext, textures: Any) -> None:
    preview = state.preview
    if preview is None:
        if state.error is None:
            imgui.text_disabled("computing the preview ...")
        else:
            text_colored("error", state.error)  # wrapped: the fix a message names must stay readable
        return
    imgui.text_disabled("left: real image, right: augmented (hover for the ops that fired)")
    tex = textures.get("augment", preview.composite)
    avail = imgui.get_content_region_avail()
    origin = imgui.get_cursor_screen_pos()
    zoom = min(avail.x / tex.width, avail.y / tex.height)
    zoom = float(int(zoom)) if zoom >= 1 else zoom
    size = imgui.ImVec2(tex.width * zoom, tex.height * zoom)
    pos = imgui.ImVec2(origin.x + (avail.x - size.x) / 2, origin.y)
    imgui.set_cursor_screen_pos(pos)
    imgui.image(imgui.ImTextureRef(tex.tex_id), size)
    ctx.rects["aug_image"] = (pos.x, pos.y, pos.x + size.x, pos.y + size.y)
    state.hovered = None
    if imgui.is_item_hovered():
        mouse = imgui.get_mouse_pos()
        hit = hit_test(preview, (mouse.x - pos.x) / zoom, (mouse.y - pos.y) / zoom)
        if hit is not None:
            i, augmented = hit
            state.hovered = i
            lines = (
                describe_ops(preview.explain[i]) if augmented else ["real image (hover its right neighbour)"]
            )
            imgui.set_tooltip(f"image {i}\n" + "\n".join(lines))
