"""Nearest-neighbour panel (memorization): each fake of the generator on screen beside its k nearest
training images in feature space, with the distances; fakes closer than the copy threshold are
framed red. The search is core.metrics.nearest's (features, distance, copy rule, cache), run off
the GUI thread; the training set is the attached run's (run.json's data), unless one is named.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from imgui_bundle import imgui

from core.studio.common import StudioError, parse_seeds
from viz.panel import Intent, Scene, StatePanel
from viz.ui import FrameContext, action_button, help_marker, record_item, text_colored
from viz.wake import wake

log = logging.getLogger(__name__)

__all__ = ["NearestPanel", "NearestRequest", "NearestResult", "NearestState", "find_nearest", "nearest_request"]

MAX_SEEDS = 64
MAX_K = 8
COPY_COLOUR = (1.0, 0.3, 0.3, 1.0)


@dataclass(frozen=True)
class NearestRequest:
    network: str  # a snapshot, a public .pkl or a run directory (its newest snapshot)
    data: str
    subset: int | None
    subset_seed: int
    seeds: tuple[int, ...]
    k: int
    psi: float
    inception: str | None


@dataclass(frozen=True)
class NearestResult:
    request: NearestRequest
    fakes: list[np.ndarray]  # uint8 HxWx3, one per seed
    neighbours: list[list[np.ndarray]]  # the k nearest training images of each fake, nearest first
    matches: list[Any]  # core.metrics.nearest.Match, one per seed
    threshold: float
    extractor: str  # the extractor's identity
    dataset_size: int

    @property
    def offline(self) -> bool:
        return self.extractor.startswith("offline")

    @property
    def copies(self) -> int:
        return sum(bool(m.copy) for m in self.matches)


def _hwc(image: np.ndarray) -> np.ndarray:
    """uint8 [C, H, W] -> [H, W, 3]."""
    hwc = image.transpose(1, 2, 0)
    return np.ascontiguousarray(np.repeat(hwc, 3, axis=2) if hwc.shape[2] == 1 else hwc[:, :, :3])


def find_nearest(request: NearestRequest) -> NearestResult:
    """The k nearest training images of G's fakes for the request's seeds (core.metrics.nearest)."""
    import torch

    from core.data import DatasetError, ImageDataset
    from core.metrics.extractors import MetricsError
    from core.metrics.nearest import NearestOptions, generated_images, nearest, prepare
    from core.studio.common import check_truncation, load_generator

    try:
        dataset = ImageDataset(request.data, subset=request.subset, seed=request.subset_seed)
    except (DatasetError, OSError) as exc:
        raise StudioError(f"training set {request.data}: {exc}") from None
    if request.k > len(dataset):
        raise StudioError(f"k {request.k}: the training set has only {len(dataset)} images")
    device = torch.device("cpu")
    G = load_generator(request.network, device)
    if (G.img_resolution, G.img_channels) != (dataset.resolution, dataset.num_channels):
        raise StudioError(f"training set {request.data}: {dataset.resolution} px, {dataset.num_channels} channel(s), "
                          f"but the generator makes {G.img_resolution} px, {G.img_channels}")
    check_truncation(G, request.psi)
    # A conditional G gets the all-zero label, as core.metrics.nearest's copy score gives it.
    images = generated_images(G, list(request.seeds), request.psi)
    try:
        search = prepare(dataset, NearestOptions(inception=request.inception))
    except (MetricsError, DatasetError) as exc:
        raise StudioError(str(exc)) from None
    matches = nearest(search, images, list(request.seeds), request.k)
    index = {dataset.file_name(i): i for i in range(len(dataset))}
    neighbours = [[_hwc(dataset.get_image(index[name])) for name in m.names] for m in matches]
    return NearestResult(request, [_hwc(im) for im in images.numpy()], neighbours, matches,
                         search.reference.threshold, search.reference.extractor, len(dataset))  # fmt: skip


def run_dataset(run_dir: Path | None) -> tuple[str, int | None, int] | None:
    """The attached run's training set as it trained on it: (data, subset, subset seed), or None."""
    from core.rundir import RunReader

    if run_dir is None:
        return None
    options = RunReader(run_dir).options() or {}
    data = options.get("data")
    if not isinstance(data, str) or not data:
        return None
    subset = options.get("subset")
    seed = options.get("seed")
    return data, subset if isinstance(subset, int) else None, seed if isinstance(seed, int) else 0


@dataclass
class NearestState:
    seeds: str = "0-7"
    k: int = 3
    psi: float = 1.0
    data: str = ""  # empty: the attached run's training set
    inception: str = ""  # empty: $ADA_INCEPTION_WEIGHTS, else the offline extractor (labelled)
    result: NearestResult | None = None
    error: str | None = None
    running_since: float | None = None
    pending: NearestRequest | None = field(default=None, repr=False)
    run_data_of: Path | None = None  # the run whose training set run_data is (for the field's hint)
    run_data: tuple[str, int | None, int] | None = None


def nearest_request(state: NearestState, scene: Scene) -> NearestRequest | None:
    """The search the form describes, or None with ``state.error`` saying what to fix."""
    if not scene.source:
        state.error = "open a generator first (Snapshot panel, or a snapshot of the timeline)"
        return None
    try:
        seeds = parse_seeds(state.seeds, MAX_SEEDS)
    except StudioError as exc:
        state.error = str(exc)
        return None
    if not 1 <= state.k <= MAX_K:
        state.error = f"k {state.k}: choose 1 to {MAX_K} neighbours"
        return None
    named = state.data.strip()
    found = (named, None, 0) if named else run_dataset(scene.run_dir)
    if found is None:
        state.error = "no training set: attach the run (its run.json names it) or name a dataset here"
        return None
    state.error = None
    data, subset, subset_seed = found
    return NearestRequest(scene.source, data, subset, subset_seed, seeds, state.k, state.psi,
                          state.inception.strip() or None)  # fmt: skip


class NearestEngine:
    """Runs searches on a latest-wins worker thread (started on first use)."""

    def __init__(self) -> None:
        self._worker: Any = None

    def submit(self, request: NearestRequest) -> None:
        from core.io.worker import LatestWorker

        if self._worker is None:
            self._worker = LatestWorker("viz-nearest", on_result=wake)
        self._worker.submit(request, lambda: find_nearest(request))

    def poll(self) -> Any:
        return None if self._worker is None else self._worker.poll()


def _collect(state: NearestState, engine: NearestEngine) -> None:
    done = engine.poll()
    if done is None:
        return
    if done.key == state.pending:
        state.pending, state.running_since = None, None
    if done.error:
        state.error = done.error.removeprefix("StudioError: ")
    elif done.value is not None:
        state.result, state.error = done.value, None


def _draw_form(state: NearestState, ctx: FrameContext, scene: Scene) -> bool:
    imgui.set_next_item_width(ctx.px(110))
    _, state.seeds = imgui.input_text("Seeds##nearest", state.seeds)
    record_item(ctx, "nearest_seeds")
    imgui.same_line()
    imgui.set_next_item_width(ctx.px(80))
    _, state.k = imgui.input_int("k##nearest", state.k)
    record_item(ctx, "nearest_k")
    imgui.set_next_item_width(ctx.px(110))
    _, state.psi = imgui.input_float("psi##nearest", state.psi, 0.0, 0.0, "%.2f")
    record_item(ctx, "nearest_psi")
    if scene.run_dir != state.run_data_of:  # run.json is read once per attached run, not every frame
        state.run_data_of, state.run_data = scene.run_dir, run_dataset(scene.run_dir)
    run_data = state.run_data
    for label, attr, rect, hint, tip in (
        ("Training set##nearest", "data", "nearest_data", f"the run's: {run_data[0]}" if run_data else "folder, zip",
         "Empty: the attached run's training set (run.json's data and subset). Or a folder, zip or builtin:digits."),
        ("Inception file##nearest", "inception", "nearest_inception", "none: offline features",
         "inception-2015-12-05.pt for standard features (or $ADA_INCEPTION_WEIGHTS); never downloaded. "
         "Without it the offline random-conv net is used, and labelled."),
    ):  # fmt: skip
        imgui.set_next_item_width(-ctx.px(110))
        _, value = imgui.input_text_with_hint(label, hint, getattr(state, attr))
        setattr(state, attr, value)
        record_item(ctx, rect)
        help_marker(tip)
    return action_button(ctx, "Find nearest training images", "nearest_run", state.pending is not None)


def _cell(ctx: FrameContext, textures: Any, name: str, image: np.ndarray, side: float, caption: str,
          copy: bool) -> None:  # fmt: skip
    imgui.begin_group()
    tex = textures.get(name, image)
    imgui.image(imgui.ImTextureRef(tex.tex_id), imgui.ImVec2(side, side))
    lo, hi = imgui.get_item_rect_min(), imgui.get_item_rect_max()
    if copy:
        colour = imgui.get_color_u32(imgui.ImVec4(*COPY_COLOUR))
        imgui.get_window_draw_list().add_rect(lo, hi, colour, 0.0, ctx.px(3))
        imgui.push_style_color(imgui.Col_.text, imgui.ImVec4(*COPY_COLOUR))
    imgui.text(caption)
    if copy:
        imgui.pop_style_color()
    imgui.end_group()


def shown_order(result: NearestResult) -> list[int]:
    """Rows as shown: flagged copies first, then the closest to the training set (the ones to look at)."""
    matches = result.matches
    return sorted(range(len(matches)), key=lambda i: (not matches[i].copy, matches[i].distances[0]))


def _draw_result(result: NearestResult, ctx: FrameContext, textures: Any) -> None:
    req = result.request
    imgui.text_wrapped(f"{len(result.matches)} fakes of {Path(req.network).name}, their {req.k} nearest among "
                       f"{result.dataset_size} training images ({req.data})")  # fmt: skip
    if result.offline:
        text_colored("warn", "offline random-conv features: distances compare within this run only "
                             "(name the Inception file for standard features)")  # fmt: skip
    else:
        text_colored("info", f"features: {result.extractor}")
    kind = "error" if result.copies else "ok"
    text_colored(kind, f"copies: {result.copies} of {len(result.matches)} "
                       f"(nearest distance below {result.threshold:.4f})")  # fmt: skip
    spacing = imgui.get_style().item_spacing.x
    side = min(ctx.px(64), (imgui.get_content_region_avail().x - spacing * req.k) / (req.k + 1))
    for r in shown_order(result):
        fake, match, near = result.fakes[r], result.matches[r], result.neighbours[r]
        x0 = imgui.get_cursor_pos_x()
        _cell(ctx, textures, f"nearest_fake{r}", fake, side, f"seed {match.image}" + ("\nCOPY" if match.copy else ""),
              match.copy)  # fmt: skip
        record_item(ctx, f"nearest_row:{r}")
        for j, (image, distance) in enumerate(zip(near, match.distances, strict=True)):
            imgui.same_line(x0 + (j + 1) * (side + spacing))  # columns stay aligned whatever the captions
            _cell(ctx, textures, f"nearest_nn{r}_{j}", image, side, f"{distance:.4f}", False)
            if imgui.is_item_hovered():
                imgui.set_tooltip(match.names[j])


def draw_nearest(state: NearestState, ctx: FrameContext, scene: Scene, engine: NearestEngine,
                 textures: Any) -> None:  # fmt: skip
    _collect(state, engine)
    if _draw_form(state, ctx, scene):
        request = nearest_request(state, scene)
        if request is not None:
            state.pending, state.running_since = request, ctx.now
            engine.submit(request)
    if state.running_since is not None:
        imgui.same_line()
        imgui.text_disabled(f"computing ... {ctx.now - state.running_since:.0f} s")
    if state.error:
        text_colored("error", state.error)
    if state.result is not None:
        _draw_result(state.result, ctx, textures)
    elif state.running_since is None and not state.error:
        imgui.text_disabled("the first search of a training set also computes its features (cached after)")


def summary(state: NearestState) -> dict[str, Any]:
    """What the panel shows, for --debug-state."""
    out: dict[str, Any] = {"running": state.pending is not None, "error": state.error, "result": None}
    res = state.result
    if res is not None:
        out["result"] = {
            "network": res.request.network, "data": res.request.data, "k": res.request.k,
            "extractor": res.extractor, "offline": res.offline, "threshold": res.threshold,
            "matches": [m.to_record() for m in res.matches],
        }  # fmt: skip
    return out


class NearestPanel(StatePanel[NearestState]):
    name, title, state_type = "nearest", "Nearest training images", NearestState

    def __init__(self, state: NearestState | None = None) -> None:
        super().__init__(state)
        self.engine = NearestEngine()

    def draw(self, ctx: FrameContext, scene: Scene) -> list[Intent]:
        draw_nearest(self.state, ctx, scene, self.engine, ctx.textures)
        return []

    def debug_summary(self) -> dict[str, Any]:
        return summary(self.state)
