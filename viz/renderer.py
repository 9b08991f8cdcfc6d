"""Generator rendering off the GUI thread: the newest request wins, stale results are dropped.

The GUI thread calls :meth:`Renderer.submit` / :meth:`Renderer.load` (both return at once) and
:meth:`Renderer.poll` once per frame. One worker thread (a :class:`core.io.worker.LatestWorker`) owns
every torch call; a model load runs before any waiting render and every finished load is
reported. While it renders, newer requests replace the pending one (so nothing queues up). A
finished result whose request was superseded is dropped unless it is an intermediate step of the
same view (same model, same grid shape, same layer): then it is strictly closer to what the user asked for
than what is on screen, which keeps a drag across the seed lattice moving instead of freezing
until the mouse stops.

Seed lattice: integer lattice point (ix, iy) has seed ``iy * LATTICE_WIDTH + ix`` with ix taken
modulo LATTICE_WIDTH; its z is ``np.random.RandomState(seed).randn(z_dim)`` (as the public
generate.py does). A fractional point blends the z of its four neighbours bilinearly.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.io.images import image_grid, tile
from core.io.worker import LatestWorker, NoResult
from viz.layer_view import LayerOptions, LayerView, capture_layers, channel_stats, layer_image
from viz.wake import wake

log = logging.getLogger(__name__)

__all__ = [
    "LATTICE_WIDTH",
    "LoadedModel",
    "ModelStatus",
    "RenderRequest",
    "RenderResult",
    "RenderedView",
    "Renderer",
    "lattice_point",
    "lattice_seed",
    "lattice_z",
    "load_model",
    "mix_ws",
    "render_images",
    "render_view",
    "seed_blend_z",
]

LATTICE_WIDTH = 1000
SEED_MAX = 2**32 - 1
NOISE_MODES = ("const", "random", "none")


def lattice_seed(ix: int, iy: int) -> int:
    """The seed at integer lattice point (ix, iy): ``iy * 1000 + ix`` with ix wrapped into [0, 1000)."""
    return (int(iy) * LATTICE_WIDTH + int(ix) % LATTICE_WIDTH) % (SEED_MAX + 1)


def lattice_point(seed: int) -> tuple[float, float]:
    """Inverse of :func:`lattice_seed` for a whole seed."""
    return float(seed % LATTICE_WIDTH), float(seed // LATTICE_WIDTH)


def seed_z(seed: int, z_dim: int) -> np.ndarray:
    return np.random.RandomState(seed).randn(z_dim)


def seed_blend_z(seed: float, z_dim: int) -> np.ndarray:
    """z of a fractional seed: the linear blend of its two whole neighbours (as along a lattice row)."""
    s0 = math.floor(seed)
    f = seed - s0
    z = (1 - f) * seed_z(s0 % (SEED_MAX + 1), z_dim)
    if f > 0:
        z += f * seed_z((s0 + 1) % (SEED_MAX + 1), z_dim)
    return z


def mix_ws(ws: torch.Tensor, ws_mix: torch.Tensor, indices: tuple[int, ...]) -> torch.Tensor:
    """ws [N, num_ws, w_dim] with the checked ``indices`` taken from ``ws_mix`` ([1 or N, num_ws, w_dim])."""
    out = ws.clone()
    picked = [i for i in indices if 0 <= i < ws.shape[1]]
    if picked:
        out[:, picked] = ws_mix[:, picked].expand(ws.shape[0], -1, -1)
    return out


def lattice_z(x: float, y: float, z_dim: int) -> np.ndarray:
    """z at a fractional lattice point: bilinear blend of the four neighbouring seeds' z."""
    x0, y0 = math.floor(x), math.floor(y)
    fx, fy = x - x0, y - y0
    z = np.zeros(z_dim, dtype=np.float64)
    for dx, dy, weight in (
        (0, 0, (1 - fx) * (1 - fy)),
        (1, 0, fx * (1 - fy)),
        (0, 1, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        if weight > 0:
            z += weight * seed_z(lattice_seed(x0 + dx, y0 + dy), z_dim)
    return z


@dataclass(frozen=True)
class RenderRequest:
    """Everything that determines the generator image; equal requests give equal images."""

    model_key: str
    x: float = 0.0
    y: float = 0.0
    grid_w: int = 1
    grid_h: int = 1
    psi: float = 1.0
    cutoff: int | None = None
    noise_mode: str = "const"
    class_idx: int = 0
    mix_seed: float | None = None  # fractional while the mix seed is animated
    mix_indices: tuple[int, ...] = ()  # ws indices taken from the mix seed
    noise_seed: int = 0  # random noise is drawn from this seed, so a request still gives one image
    layer: str | None = None  # a synthesis layer to show instead of the output
    ws_file: str | None = None  # a projected_w.npz whose ws replace the seed lattice's
    ws_stamp: int = 0  # its modification time: a rewritten file is a new request
    mix_ws_file: str | None = None  # a projected_w.npz that gives the checked indices instead of the mix seed
    layer_opts: LayerOptions = LayerOptions()

    def shape_key(self) -> tuple[str, int, int, str | None]:
        # A render of another layer is not a step towards this one: it must not flash up.
        return (self.model_key, self.grid_w, self.grid_h, self.layer)

    def seeds(self) -> list[int]:
        """Seeds of the grid cells (row-major); cell (i, j) is lattice point (x + i, y + j)."""
        ix, iy = math.floor(self.x), math.floor(self.y)
        return [lattice_seed(ix + i, iy + j) for j in range(self.grid_h) for i in range(self.grid_w)]


@dataclass
class RenderResult:
    request: RenderRequest
    image: np.ndarray | None  # HxWx3 uint8 grid
    render_ms: float
    error: str | None = None
    submitted_at: float = 0.0  # perf_counter() of the submit that asked for it
    finished_at: float = 0.0
    layers: LayerView | None = None


@dataclass
class RenderedView:
    """A render's image (the output, or the chosen layer's channels) and what it saw of the layers."""

    image: np.ndarray
    layers: LayerView


@dataclass
class LoadedModel:
    """A generator ready to render, and what the panels need to know about it."""

    G: torch.nn.Module
    path: str
    key: str
    z_dim: int
    c_dim: int
    w_dim: int
    num_ws: int
    img_resolution: int
    img_channels: int
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelStatus:
    """What the GUI shows about loading: the newest finished load (model or error)."""

    path: str
    model: LoadedModel | None
    error: str | None
    load_ms: float


Loader = Callable[[str], LoadedModel]


def load_model(path: str) -> LoadedModel:
    """Load G_ema (else G) from a snapshot, a public .pkl or a run directory, for rendering on CPU."""
    from core.networks.sources import load_any

    ckpt = load_any(path, torch.device("cpu"))
    G = ckpt.G_ema if ckpt.G_ema is not None else ckpt.G
    if G is None:
        raise ValueError(f"{path}: the checkpoint holds no generator (neither G_ema nor G)")
    meta = dict(getattr(ckpt, "meta", None) or {})
    return model_from_generator(G, path, meta=meta)


def newest_run_weights(run_dir: Path) -> tuple[str, str, Callable[[], LoadedModel]] | None:
    """The newest generator weights of a run: (identity, path, loader), or None if it has none yet.

    live/ (refreshed every few seconds by the trainer) wins over the latest snapshot unless the
    snapshot file is newer; the identity changes whenever either is rewritten, so callers reload
    on change.
    """
    from core.rundir import RunReader

    reader = RunReader(run_dir)
    live_id = reader.live_version()
    live_path = reader.live_tensors_path
    snap = reader.latest_snapshot()
    if live_id and (snap is None or _mtime(live_path) >= _mtime(snap)):
        return f"live:{live_id}", str(live_path), lambda: _load_live(reader)
    if snap is not None:
        return f"snapshot:{snap}@{_mtime(snap)}", str(snap), lambda: load_model(str(snap))
    return None


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _load_live(reader: Any) -> LoadedModel:
    from core.networks.stylegan2 import Generator

    live = reader.live_weights()
    if live is None:
        raise ValueError(f"{reader.live_tensors_path}: the live weights vanished; waiting for the next ones")
    G = Generator(**live.kwargs)
    G.load_state_dict(live.state_dict)
    path = reader.live_tensors_path
    version = reader.live_version() or "?"
    return model_from_generator(G, str(path), meta={"kimg": live.kimg}, key=f"{path}@{version}")


def model_from_generator(
    G: torch.nn.Module, path: str, meta: dict[str, Any] | None = None, key: str | None = None
) -> LoadedModel:
    G = G.eval().requires_grad_(False).to(torch.float32)
    p = Path(path)
    stamp = p.stat().st_mtime_ns if p.exists() else 0
    meta = dict(meta or {})
    kimg = meta.get("kimg")
    desc = f"{p.name}: {G.img_resolution}px, z {G.z_dim}, c {G.c_dim}, {G.num_ws} ws"
    if kimg is not None:
        desc += f", {float(kimg):.1f} kimg"
    return LoadedModel(
        G=G,
        path=str(path),
        key=key or f"{p.resolve()}@{stamp}",
        z_dim=G.z_dim,
        c_dim=G.c_dim,
        w_dim=G.w_dim,
        num_ws=G.num_ws,
        img_resolution=G.img_resolution,
        img_channels=G.img_channels,
        description=desc,
        meta=meta,
    )


def render_images(model: LoadedModel, req: RenderRequest) -> np.ndarray:
    """Run the generator for one request (worker thread only); returns the uint8 grid shown."""
    return render_view(model, req).image


def render_view(model: LoadedModel, req: RenderRequest) -> RenderedView:
    """The image for one request (the output, or ``req.layer``'s channels) and the layer list."""
    G = model.G
    ws = _request_ws(model, req)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(req.noise_seed)  # random noise: reproducible per request
        images, infos, act = capture_layers(
            G.synthesis, lambda: G.synthesis(ws, noise_mode=req.noise_mode), req.layer
        )
    view = LayerView(layers=infos)
    if req.layer is None:
        return RenderedView(image_grid(images, req.grid_w, rgb=True), view)
    if act is None:
        names = ", ".join(i.name for i in infos[:6])
        view.error = f"layer {req.layer!r} is not in this generator (it has {names}, ...): showing the output"
        return RenderedView(image_grid(images, req.grid_w, rgb=True), view)
    acts = act.cpu().numpy()
    opts = req.layer_opts
    shown = opts.shown(acts.shape[1])
    view.name, view.shown_channels = req.layer, shown
    view.all_channels, view.selected = channel_stats(acts[0]), channel_stats(acts[0][shown])
    cells = [layer_image(a, opts) for a in acts]
    return RenderedView(tile(cells, req.grid_w), view)


def _request_ws(model: LoadedModel, req: RenderRequest) -> torch.Tensor:
    """ws of the grid cells: lattice z (or a projected w) through the mapping, then the checked indices mixed in."""
    G = model.G
    if req.ws_file is not None:
        ws = _file_ws(model, req.ws_file).expand(req.grid_w * req.grid_h, -1, -1)
        return _mixed(model, req, ws)
    fx, fy = req.x - math.floor(req.x), req.y - math.floor(req.y)
    zs = np.stack(
        [
            lattice_z(math.floor(req.x) + i + fx, math.floor(req.y) + j + fy, model.z_dim)
            for j in range(req.grid_h)
            for i in range(req.grid_w)
        ]
    )
    z = torch.from_numpy(zs).to(torch.float32)
    c = _class_vector(model, req.class_idx, len(zs))
    cutoff = req.cutoff if req.cutoff else None
    ws = G.mapping(z, c, truncation_psi=req.psi, truncation_cutoff=cutoff, skip_w_avg_update=True)
    return _mixed(model, req, ws)


def _mixed(model: LoadedModel, req: RenderRequest, ws: torch.Tensor) -> torch.Tensor:
    if req.mix_seed is None or not req.mix_indices:
        return ws
    if req.mix_ws_file is not None:  # a projected w mixes into the seeds as a mix seed would
        return mix_ws(ws, _file_ws(model, req.mix_ws_file), req.mix_indices)
    c = _class_vector(model, req.class_idx, 1)
    cutoff = req.cutoff if req.cutoff else None
    z_mix = torch.from_numpy(seed_blend_z(req.mix_seed, model.z_dim)).to(torch.float32)[None]
    ws_mix = model.G.mapping(z_mix, c, truncation_psi=req.psi, truncation_cutoff=cutoff, skip_w_avg_update=True)
    return mix_ws(ws, ws_mix, req.mix_indices)


def _file_ws(model: LoadedModel, path: str) -> torch.Tensor:
    """The first ws [1, num_ws, w_dim] of a projected_w.npz (checked against the generator by core.studio)."""
    from core.studio.common import load_ws_file

    return torch.from_numpy(load_ws_file(Path(path), model.G, "projected w")[:1]).to(torch.float32)


def _class_vector(model: LoadedModel, class_idx: int, n: int) -> torch.Tensor:
    c = torch.zeros([n, model.c_dim])
    if model.c_dim > 0:
        c[:, int(class_idx) % model.c_dim] = 1
    return c


class Renderer:
    """Loading and rendering on one worker thread; all methods are for the GUI thread.

    Loads go through the worker's priority lane (a newer load replaces one still waiting, and
    every finished load is reported); renders go through its latest-wins lane, keeping a
    superseded result only when it shows the same view as the newest request.
    """

    def __init__(self, loader: Loader | None = None) -> None:
        self._loader = loader
        self._model: LoadedModel | None = None  # worker thread only
        self._worker = LatestWorker("viz-renderer", keep=_same_view, priority_backlog=1, on_result=wake)

    @property
    def dropped(self) -> int:
        """Stale results dropped so far (shown by the performance panel)."""
        return self._worker.dropped

    def load(self, path: str, fn: Callable[[], LoadedModel] | None = None) -> None:
        """Load ``path`` with the renderer's loader (or with ``fn``, e.g. a run's live weights)."""
        self._worker.submit_priority(path, lambda: self._do_load(path, fn))

    def submit(self, request: RenderRequest) -> None:
        self._worker.submit(request, lambda: self._do_render(request))

    def poll(self) -> tuple[list[ModelStatus], RenderResult | None]:
        """Finished loads (oldest first) and the newest finished render not yet seen, if any."""
        loads, render = self._worker.poll_all()
        statuses = [ModelStatus(str(job.key), job.value, job.error, job.ms) for job in loads]
        if render is None:
            return statuses, None
        view = render.value
        result = RenderResult(
            render.key,
            view.image if view is not None else None,
            render.ms,
            render.error,
            render.submitted_at,
            render.finished_at,
            layers=view.layers if view is not None else None,
        )
        return statuses, result

    def idle(self) -> bool:
        return self._worker.idle()

    def wait_idle(self, timeout: float) -> bool:
        return self._worker.wait_idle(timeout)

    def close(self) -> None:
        self._worker.close()

    def _do_load(self, path: str, fn: Callable[[], LoadedModel] | None) -> LoadedModel:
        model = fn() if fn is not None else (self._loader or load_model)(path)
        self._model = model
        return model

    def _do_render(self, req: RenderRequest) -> RenderedView:
        model = self._model
        if model is None or model.key != req.model_key:
            raise NoResult  # asked for a model that is not (or no longer) loaded: nothing to show
        with torch.inference_mode():
            return render_view(model, req)


def _same_view(result_req: Any, newest_req: Any) -> bool:
    """A superseded render of the same model and grid shape is an intermediate step worth showing."""
    return bool(result_req.shape_key() == newest_req.shape_key())
