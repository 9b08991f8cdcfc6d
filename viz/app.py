"""The visualizer: window (or offscreen target), frame loop and layout.

``python launch_viz.py [snapshot | run directory | public .pkl]`` opens one window with a control
pane on the left (collapsible panels, one file each in ``viz/widgets``), an image area on the right
(generator, augmentation preview, training monitor) and a status bar. ``--offscreen N --out DIR``
renders N frames to PNG files through EGL without any X server.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from core.io.atomic import atomic_write_bytes, atomic_write_json
from core.io.cli import OneLineParser
from viz.panel import (
    ExportVideo,
    Intent,
    Message,
    OpenSource,
    Panel,
    Project,
    RunAction,
    SaveCapture,
    Scene,
    SendAugment,
)
from viz.wake import set_wake_hook

# The demo generator shipped with the package (see docs/demo.md for how it was trained).
DEMO_SNAPSHOT = Path(__file__).resolve().parent / "demo" / "digits32-demo"

log = logging.getLogger(__name__)

__all__ = ["AppOptions", "main", "parse_args"]

FONT_PATH = Path(__file__).parent / "fonts" / "DejaVuSans.ttf"
FONT_SIZE = 15.0
VIEWS = ("generator", "augment", "training")
DEFAULT_PANELS = ("snapshot", "seeds", "trunc_noise")
# An untouched window redraws this often (live plots, progress bars) instead of at the cap: on a
# machine without a GPU every frame is drawn by the CPU, beside the training it watches.
DEFAULT_FPS_IDLE = 4.0
WAKE_BUSY_S = 0.25  # frames at full rate after a worker's result, so its layout settles at once


@dataclass
class AppOptions:
    target: str | None = None
    offscreen: int = 0
    out: Path | None = None
    width: int = 1280
    height: int = 800
    scale: float | None = None
    view: str = "generator"
    panels: tuple[str, ...] = DEFAULT_PANELS
    seed: int = 0
    grid: tuple[int, int] | None = None
    psi: float = 1.0
    layer: str | None = None
    mix_styles: tuple[int, ...] | None = None
    dataset: str | None = None
    run_dir: str | None = None
    compare: tuple[str, ...] = ()
    debug_state: Path | None = None
    debug_every: int = 5
    debug_screenshot: Path | None = None
    max_frames: int = 0
    fps_cap: float = 60.0
    fps_idle: float = DEFAULT_FPS_IDLE
    torch_threads: int = 0
    attach_last: bool = True
    benchmark: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def parse_args(argv: list[str] | None) -> AppOptions:
    p = OneLineParser(
        prog="launch_viz.py",
        description="ADA Studio visualizer: browse a generator's seeds, preview augmentations, "
        "start, watch and steer trainings.",
    )
    p.add_argument("target", nargs="?", help="snapshot (.safetensors/.json), public .pkl, or run directory")
    p.add_argument(
        "--offscreen",
        type=int,
        default=0,
        metavar="N",
        help="render N frames to PNG without a display (EGL), then exit",
    )
    p.add_argument("--out", type=Path, help="folder for --offscreen frames")
    p.add_argument("--size", default="1280x800", help="window or offscreen size, WxH (default 1280x800)")
    p.add_argument("--scale", type=float, help="UI scale (default: the monitor's content scale)")
    p.add_argument("--view", choices=VIEWS, default="generator", help="image area shown first")
    p.add_argument(
        "--panels",
        default=",".join(DEFAULT_PANELS),
        help="control panels open at start, comma-separated (snapshot, seeds, trunc_noise, stylemix, layers, "
        "augment, monitor, control, performance, capture, video, projection, timeline, nearest)",
    )
    p.add_argument("--seed", type=int, default=0, help="first seed shown")
    p.add_argument("--grid", help="WxH seeds at start, e.g. 4x3 (default: a grid for models up to 256 px; "
                   "1x1: one image)")
    p.add_argument("--psi", type=float, default=1.0, help="truncation psi at start")
    p.add_argument("--layer", help="show this synthesis layer's channels at start (names: the Layers panel)")
    p.add_argument(
        "--mix-styles", help="start with style mixing on for these ws indices, comma-separated, e.g. 0,1,2"
    )
    p.add_argument("--dataset", help="dataset for the augmentation preview (folder, zip, builtin:digits)")
    p.add_argument("--run", dest="run_dir", help="run directory to monitor and control")
    p.add_argument("--compare", action="append", default=[], metavar="RUN_DIR",
                   help="overlay this run directory's curves on the monitor (repeat for more runs)")
    p.add_argument(
        "--no-attach-last",
        dest="attach_last",
        action="store_false",
        help="do not re-attach to the run the previous session watched",
    )
    p.add_argument("--debug-state", type=Path, help="write the app state as JSON to this file (for tests)")
    p.add_argument("--debug-every", type=int, default=5, help="frames between --debug-state writes")
    p.add_argument("--debug-screenshot", type=Path, help="with --debug-state: also save the frame as PNG")
    p.add_argument(
        "--max-frames", type=int, default=0, help="quit after this many frames (0: run until closed)"
    )
    p.add_argument("--fps-cap", type=float, default=60.0, help="frame rate limit (0: none)")
    p.add_argument(
        "--fps-idle",
        type=float,
        default=DEFAULT_FPS_IDLE,
        help=f"frame rate while nobody touches the window and nothing animates (default {DEFAULT_FPS_IDLE:g}; "
        "input and finished renders redraw at once; 0: always draw at --fps-cap)",
    )
    p.add_argument(
        "--torch-threads",
        type=int,
        default=0,
        help="torch CPU threads for rendering (default: cores - 1, so the GUI keeps one)",
    )
    p.add_argument(
        "--benchmark",
        action="store_true",
        help="step the seed as soon as each new image is on screen; print timing medians as JSON at exit",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    a = p.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if a.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    width, height = _parse_wh(p, "--size", a.size)
    panels = tuple(x.strip() for x in a.panels.split(",") if x.strip())  # checked against the panels in main
    if a.offscreen < 0:
        p.error("--offscreen: give the number of frames to render, e.g. --offscreen 3")
    if a.offscreen and a.out is None:
        p.error("--offscreen needs --out DIR (the folder for the PNG frames)")
    from core.rundir import is_run_dir

    for path in a.compare:
        if not is_run_dir(Path(path).expanduser()):
            p.error(f"--compare {path}: not a run directory (give <outdir>/<NNNNN>-<desc>, the folder with run.json)")
    return AppOptions(
        target=a.target,
        offscreen=a.offscreen,
        out=a.out,
        width=width,
        height=height,
        scale=a.scale,
        view=a.view,
        panels=panels,
        seed=max(0, a.seed),
        grid=_parse_wh(p, "--grid", a.grid) if a.grid else None,
        psi=a.psi,
        layer=a.layer,
        mix_styles=_parse_indices(p, a.mix_styles) if a.mix_styles else None,
        dataset=a.dataset,
        run_dir=a.run_dir,
        compare=tuple(a.compare),
        debug_state=a.debug_state,
        debug_every=max(1, a.debug_every),
        debug_screenshot=a.debug_screenshot,
        max_frames=max(0, a.max_frames),
        fps_cap=a.fps_cap,
        fps_idle=max(0.0, a.fps_idle),
        torch_threads=a.torch_threads,
        attach_last=a.attach_last,
        benchmark=a.benchmark,
    )


def _parse_wh(p: argparse.ArgumentParser, name: str, text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
        if w > 0 and h > 0:
            return w, h
    except ValueError:
        pass
    p.error(f"{name}: expected WxH with positive integers, e.g. 4x3, got {text!r}")
    raise AssertionError  # p.error exits


def _parse_indices(p: argparse.ArgumentParser, text: str) -> tuple[int, ...]:
    try:
        return tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    except ValueError:
        p.error(f"--mix-styles: expected ws indices like 0,1,2, got {text!r}")
        raise AssertionError from None  # p.error exits


def _keep_triton_out() -> None:
    """Stop torch from loading Triton into the GUI process.

    Triton's library carries its own LLVM; Mesa's software OpenGL (llvmpipe, what headless machines
    and VMs render with) carries the system's. With both in one process the GUI crashed (SIGSEGV) as
    soon as torch loaded Triton: creating an optimizer (the projection's) imports torch._dynamo, which
    imports Triton whenever it is installed, as it is with every CUDA build of torch. Mesa's
    hardware drivers for AMD and Intel GPUs use LLVM too. The GUI needs no Triton (its ops take the
    reference path); a trainer it starts is another process and keeps the fused kernels.
    """
    if "triton" not in sys.modules:
        sys.modules["triton"] = None  # type: ignore[assignment]  # `import triton` now raises ImportError


def main(argv: list[str] | None = None) -> int:
    _keep_triton_out()
    opts = parse_args(argv)
    from viz.host import HostError, select_gl_platform

    known = [panel.name for panel in build_panels(opts)]
    bad = [name for name in opts.panels if name not in known]
    if bad:
        print(f"launch_viz.py: error: --panels: unknown panel(s) {', '.join(bad)}; choose from {', '.join(known)}",
              file=sys.stderr)
        return 2
    select_gl_platform(offscreen=opts.offscreen > 0)
    _limit_torch_threads(opts.torch_threads)
    try:
        app = App(opts)
    except HostError as exc:
        print(f"launch_viz: {exc}", file=sys.stderr)
        return 2
    try:
        return app.run()
    except KeyboardInterrupt:
        return 130
    finally:
        app.close()


def _limit_torch_threads(requested: int) -> None:
    import torch

    # The GUI thread needs a core of its own to stay smooth while the generator renders.
    n = requested if requested > 0 else max(1, (os.cpu_count() or 2) - 1)
    torch.set_num_threads(n)
    log.debug("torch uses %d CPU threads", n)


def frame_time_left(frame_start: float, fps: float) -> float:
    """Seconds until the next frame is due at ``fps`` frames a second (0 when it is already late)."""
    return max(0.0, 1.0 / fps - (time.perf_counter() - frame_start))


def frame_loop_sleep(frame_start: float, fps_cap: float) -> None:
    if fps_cap > 0 and (left := frame_time_left(frame_start, fps_cap)) > 0:
        time.sleep(left)


def build_panels(opts: AppOptions) -> list[Panel]:
    """The control panels, in the order they are drawn; each owns its state (a new panel: one line here)."""
    from viz.settings import load_recent
    from viz.widgets.augment_preview import AugmentPanel
    from viz.widgets.capture import CapturePanel
    from viz.widgets.layers import LayersPanel, LayersState
    from viz.widgets.nearest import NearestPanel
    from viz.widgets.performance import PerformancePanel, PerfState
    from viz.widgets.projection import ProjectionPanel
    from viz.widgets.seeds import SeedsPanel
    from viz.widgets.snapshot import SnapshotPanel, SnapshotState
    from viz.widgets.stylemix import StyleMixPanel
    from viz.widgets.timeline import TimelinePanel
    from viz.widgets.training_control import TrainingControlPanel
    from viz.widgets.training_monitor import MonitorPanel
    from viz.widgets.trunc_noise import TruncNoisePanel, TruncNoiseState
    from viz.widgets.video import VideoPanel

    return [
        SnapshotPanel(SnapshotState(recent=load_recent())),
        SeedsPanel(),
        TruncNoisePanel(TruncNoiseState(psi=opts.psi)),
        StyleMixPanel(_stylemix_state(opts)),
        LayersPanel(LayersState(enabled=opts.layer is not None, layer=opts.layer)),
        AugmentPanel(),
        MonitorPanel(),
        TrainingControlPanel(),
        PerformancePanel(PerfState(fps_cap=opts.fps_cap)),
        CapturePanel(),
        VideoPanel(),
        ProjectionPanel(),
        TimelinePanel(),
        NearestPanel(),
    ]


def _stylemix_state(opts: AppOptions) -> Any:
    from viz.widgets.stylemix import StyleMixState

    if opts.mix_styles is None:
        return StyleMixState()
    return StyleMixState(enabled=True, indices=list(opts.mix_styles))


class App:
    """Owns the host (window or offscreen target), the panels' states and the frame loop."""

    def __init__(self, opts: AppOptions) -> None:
        from imgui_bundle import imgui, implot

        from viz.generator_view import GeneratorView
        from viz.host import EglHost, GlfwHost
        from viz.model_source import ModelSource
        from viz.renderer import Renderer
        from viz.run_session import RunSession
        from viz.widgets.augment_preview import AugmentEngine

        self.opts = opts
        self._imgui_ctx = imgui.create_context()
        self._implot_ctx = implot.create_context()
        imgui.get_io().set_ini_filename(None)  # layout is ours; no imgui.ini in the working folder
        if opts.offscreen:
            self.host: Any = EglHost(opts.width, opts.height, scale=opts.scale or 1.0)
        else:
            self.host = GlfwHost(opts.width, opts.height, "ADA Studio", vsync=False)
        self.scale = opts.scale or self.host.ui_scale()
        _setup_style(self.scale)
        from viz.gl import TextureCache

        self.textures = TextureCache()
        self.renderer = Renderer()
        self.panels = build_panels(opts)
        p = {panel.name: panel for panel in self.panels}
        # The states other parts of the app read (the render request, the engines, debug_state).
        self.snapshot, self.seeds, self.trunc = p["snapshot"].state, p["seeds"].state, p["trunc_noise"].state
        self.stylemix, self.augment, self.monitor = p["stylemix"].state, p["augment"].state, p["monitor"].state
        self.control, self.perf, self.capture = p["control"].state, p["performance"].state, p["capture"].state
        self.layers, self.projected = p["layers"].state, p["projection"].state
        self.seeds.set_seed(opts.seed)
        if opts.grid:  # 1x1: one image, grid view off
            self.seeds.grid, (self.seeds.grid_w, self.seeds.grid_h) = opts.grid != (1, 1), opts.grid
        if opts.dataset:
            self.augment.dataset = self.augment.dataset_input = opts.dataset
        self.aug_engine = AugmentEngine()
        from viz.studio_jobs import StudioJob

        self.video, self.projection = StudioJob("video export"), StudioJob("projection")
        self._messages: list[str] = []
        self.session = RunSession(self.monitor, self.control, self.augment, self.message)
        self.client = self.session.client
        self.source = ModelSource(self.renderer, self.snapshot, lambda path: self.session.attach(path, quiet=True),
                                  self.message)
        self.gen = GeneratorView(self.renderer, self.source, self.seeds, self.trunc, self.stylemix, self.layers,
                                 self.projected, self.perf, self.message, first_view_grid=opts.grid is None)
        self.view = opts.view
        self._view_request: str | None = opts.view if opts.view != VIEWS[0] else None
        self._frame = 0
        self.idle = False  # the frame just drawn is followed by an idle wait (shown as "idle")
        self._woken = False  # a worker finished something since the last frame (set on its thread)
        self._busy_until = 0.0  # perf_counter() until which frames come at full rate after a wake
        set_wake_hook(self._wake)
        self._open_panel: str | None = None  # a panel to unfold in the next frame
        self._rects: dict[str, tuple[float, float, float, float]] = {}
        self._last_update: float | None = None
        if opts.target:
            self.source.open(opts.target)
        elif DEMO_SNAPSHOT.with_suffix(".json").is_file():
            # No argument: open on the bundled demo generator (trained by our trainer on builtin:digits).
            self.source.open(str(DEMO_SNAPSHOT.with_suffix(".json")))
        self.session.attach_at_start(opts.run_dir, opts.attach_last)
        from viz.widgets.training_monitor import add_compared

        for path in opts.compare:
            if not add_compared(self.monitor, path, self.client.run_dir):
                self.message(self.monitor.compare_error or f"--compare {path}: not overlaid")

    @property
    def model(self) -> Any:
        return self.source.model

    @property
    def frame(self) -> int:
        """Frames drawn so far."""
        return self._frame

    @property
    def rects(self) -> dict[str, tuple[float, float, float, float]]:
        """Where the last frame drew its named controls (x0, y0, x1, y1), for tests."""
        return self._rects

    @property
    def status_message(self) -> str:
        """The newest status-bar line ("" before the first)."""
        return self._messages[-1] if self._messages else ""

    # ----------------------------------------------------------------- messages
    def message(self, text: str) -> None:
        """A line for the status bar (newest shown); the window, not stderr, is where users look."""
        log.debug("%s", text)
        self._messages.append(text)
        del self._messages[:-50]

    # ----------------------------------------------------------------- generator
    def _animate(self, now: float) -> None:
        """Seed, mix seed and noise animations: each moves by its speed times the time since the last frame."""
        dt = 0.0 if self._last_update is None else min(now - self._last_update, 0.25)
        self._last_update = now
        self.seeds.advance(dt)
        self.stylemix.advance(dt)
        self.trunc.advance()

    # ----------------------------------------------------------------- intents
    def _carry_out(self, intent: Intent) -> None:
        """Do what a panel asked for (after all panels have drawn)."""
        match intent:
            case OpenSource(path):
                self.source.open(path)
            case SendAugment():
                self.session.send_augment(intent)
            case RunAction(action):
                self.session.perform(action)
            case SaveCapture():
                self._save_capture()
            case ExportVideo():
                self._export_video(intent)
            case Project():
                self._project(intent)
            case Message(text):
                self.message(text)

    def _export_video(self, intent: ExportVideo) -> None:
        """The walk is the command-line tool's, on the source shown, with the panels' psi, noise and class."""
        from core.studio.video import VideoOptions
        from viz.studio_jobs import video_job

        if self.model is None or not self.snapshot.source:
            return
        opts = VideoOptions(
            network=self.snapshot.source, device="cpu", trunc=self.trunc.psi, noise_mode=self.trunc.noise_mode,
            class_idx=self.seeds.class_idx if self.model.c_dim else None, out=intent.out, seeds=intent.seeds,
            grid=intent.grid, seconds=intent.seconds, fps=intent.fps, loop=intent.loop, kind=intent.kind,
            keyframes=intent.keyframes,
        )  # fmt: skip
        if self.video.start(f"writing {intent.out}", video_job(opts)):
            self.message(f"exporting a video to {intent.out}")

    def _project(self, intent: Project) -> None:
        """core.studio.project on the source shown; the panel switches the view to the result when done."""
        from core.studio.project import ProjectConfig, ProjectOptions
        from viz.studio_jobs import project_job

        if self.model is None or not self.snapshot.source:
            return
        opts = ProjectOptions(
            network=self.snapshot.source, device="cpu", class_idx=self.seeds.class_idx if self.model.c_dim else None,
            target=intent.target, outdir=intent.outdir, seed=intent.seed, vgg=intent.vgg,
            config=ProjectConfig(num_steps=intent.steps),
        )  # fmt: skip
        if self.projection.start(f"projecting {intent.target} ({intent.steps} steps)", project_job(opts)):
            self.message(f"projecting {intent.target} into {intent.outdir}")

    def _save_capture(self) -> None:
        from viz.widgets.capture import save_png

        image, label = self._capture_source()
        if image is None:
            return
        save_png(self.capture, image, label)
        if self.capture.last_saved:
            self.message(f"saved {self.capture.last_saved}")

    # ----------------------------------------------------------------- per frame
    def update(self) -> None:
        """Per-frame bookkeeping before drawing: collect worker results, send new requests."""
        now = time.monotonic()
        self._take_drops()
        self.source.follow(now)
        self._animate(now)
        self.gen.poll()
        if self.opts.benchmark:
            self.gen.bench_step()
        self.gen.submit_if_changed()
        self.session.update(now)
        if self.view == "augment":
            self.aug_engine.request(self.augment.spec())
        self.aug_engine.poll(self.augment)
        if self.opts.offscreen:
            # Offscreen frames are for tests and documentation: show finished work, not progress.
            self.aug_engine.wait_idle(60.0)
            self.aug_engine.poll(self.augment)
            for _ in range(4):
                self.renderer.wait_idle(timeout=60.0)
                if not self.gen.poll():
                    break
                self.gen.submit_if_changed()

    def _take_drops(self) -> None:
        """Files dropped on the window: an image is the projection's target (its panel opens), a
        snapshot, .pkl or run directory opens in the generator view (viz.drops decides which)."""
        from viz.drops import classify_drop

        for drop in map(classify_drop, self.host.take_dropped()):
            if drop.kind == "image":
                self.projected.target, self.projected.error = drop.path, None
                self._open_panel = "projection"
            elif drop.kind == "model":
                self.source.open(drop.path)
            self.message(drop.message)

    # ----------------------------------------------------------------- frame
    def draw(self) -> None:
        from imgui_bundle import imgui

        from viz.ui import FrameContext

        ctx = FrameContext(scale=self.scale, log=self.message, textures=self.textures)
        vp = imgui.get_main_viewport()
        imgui.set_next_window_pos(vp.work_pos)
        imgui.set_next_window_size(vp.work_size)
        flags = (
            imgui.WindowFlags_.no_decoration
            | imgui.WindowFlags_.no_move
            | imgui.WindowFlags_.no_saved_settings
            | imgui.WindowFlags_.no_bring_to_front_on_focus
            | imgui.WindowFlags_.no_background  # the host clears to the same colour: no full-window blend
        )
        imgui.push_style_var(imgui.StyleVar_.window_rounding, 0.0)
        imgui.begin("##root", None, flags)
        imgui.pop_style_var()
        status_h = imgui.get_frame_height_with_spacing() + ctx.px(4)
        avail = imgui.get_content_region_avail()
        body_h = max(avail.y - status_h, 10.0)
        imgui.begin_child("##controls", imgui.ImVec2(ctx.px(380), body_h), imgui.ChildFlags_.borders)
        self._draw_panels(ctx)
        imgui.end_child()
        imgui.same_line()
        imgui.begin_child("##view", imgui.ImVec2(0, body_h), imgui.ChildFlags_.borders)
        self._draw_views(ctx)
        imgui.end_child()
        self._draw_status_bar(ctx)
        imgui.end()
        self._rects = ctx.rects

    def _scene(self) -> Scene:
        st = self.monitor.status
        image, label = self._capture_source()
        return Scene(
            num_ws=self.model.num_ws if self.model else 1, c_dim=self.model.c_dim if self.model else 0,
            run_dir=self.client.run_dir, run_state=st.state if st else "unknown", run_starting=self.client.starting,
            capture_image=image, capture_label=label,
            layer_view=self.gen.result.layers if self.gen.result is not None else None,
            model_loaded=self.model is not None, source=self.snapshot.source,
            jobs={"video": self.video.status(), "projection": self.projection.status()},
            seed=self.seeds.seed if self.model is not None else None,
            projected_w=str(self.projected.ws_file()) if self.projected.ws_file().is_file() else None,
        )

    def _draw_panels(self, ctx: Any) -> None:
        from imgui_bundle import imgui

        from viz.ui import record_item

        scene = self._scene()
        intents: list[Intent] = []
        for panel in self.panels:
            flags = imgui.TreeNodeFlags_.default_open if panel.name in self.opts.panels else 0
            if panel.name == self._open_panel:  # e.g. the Projection panel after an image was dropped
                imgui.set_next_item_open(True)
                self._open_panel = None
            opened = imgui.collapsing_header(panel.title, flags)
            record_item(ctx, f"panel:{panel.name}")  # tests open and close panels by their header
            if opened:
                intents += panel.draw(ctx, scene)
        for intent in intents:
            self._carry_out(intent)

    def _capture_source(self) -> tuple[Any, str]:
        if self.view == "generator" and self.gen.result is not None and self.gen.result.image is not None:
            req = self.gen.result.request
            label = ("projected" if req.ws_file else f"seed{req.seeds()[0]}") + (
                f"-grid{req.grid_w}x{req.grid_h}" if req.grid_w * req.grid_h > 1 else ""
            ) + (f"-{req.layer}".replace(":", "-") if req.layer else "")
            return self.gen.result.image, label
        if self.view == "augment" and self.augment.preview is not None:
            return self.augment.preview.composite, f"augment-seed{self.augment.seed}"
        if self.view == "training" and self.monitor.fakes is not None:
            return self.monitor.fakes, f"fakes-{self.monitor.kimg:.0f}kimg"
        return None, "image"

    def _draw_views(self, ctx: Any) -> None:
        from imgui_bundle import imgui

        if imgui.begin_tab_bar("##views"):
            for name, title in (
                ("generator", "Generator"),
                ("augment", "Augmentation"),
                ("training", "Training"),
            ):
                # Select the requested view until it shows (tab bars apply a selection one frame late).
                flags = imgui.TabItemFlags_.set_selected if name == self._view_request else 0
                selected, _ = imgui.begin_tab_item(title, None, flags)
                if selected and name == self._view_request:
                    self._view_request = None
                lo, hi = imgui.get_item_rect_min(), imgui.get_item_rect_max()
                ctx.rects[f"tab_{name}"] = (lo.x, lo.y, hi.x, hi.y)
                if selected:
                    self.view = name
                    self._draw_view(name, ctx)
                    imgui.end_tab_item()
            imgui.end_tab_bar()

    def _draw_view(self, name: str, ctx: Any) -> None:
        from viz.widgets.augment_preview import draw_augment_view
        from viz.widgets.training_monitor import draw_monitor_view

        if name == "generator":
            self.gen.draw(ctx, self.textures)
        elif name == "augment":

            draw_augment_view(self.augment, ctx, self.textures)
        elif name == "training":

            draw_monitor_view(self.monitor, ctx, self.textures, self.client.run_dir)

    def _draw_status_bar(self, ctx: Any) -> None:
        from imgui_bundle import imgui

        from viz.ui import fit_text, record_item

        imgui.separator()
        right = "offscreen" if self.opts.offscreen else "idle" if self.idle else f"{self.perf.fps:5.1f} fps"
        if self.model is not None:
            right = f"seed {self.seeds.seed}   |   " + right
        run = self.session.status_text()
        if run is not None:
            right = run + "   |   " + right
        w = imgui.calc_text_size(right).x
        # The message gets what the right part leaves; a long one is cut, and shown whole on hover.
        text = self._messages[-1] if self._messages else "ready"
        shown = fit_text(text, imgui.get_window_width() - w - ctx.px(36), imgui.calc_text_size)
        imgui.text(shown)
        record_item(ctx, "status_message")
        if shown != text and imgui.is_item_hovered():
            imgui.set_tooltip(text)
        imgui.same_line(imgui.get_window_width() - w - ctx.px(12))
        imgui.text_disabled(right)

    # ----------------------------------------------------------------- loop
    def run(self) -> int:
        from imgui_bundle import imgui

        opts = self.opts
        frames = opts.offscreen or opts.max_frames
        if opts.offscreen:
            self.renderer.wait_idle(timeout=120.0)  # the model's load: no frames of a target that fails
            self.gen.poll()
            if opts.target and self.snapshot.error:
                print(f"launch_viz: {self.snapshot.error}", file=sys.stderr)
                return 2
            opts.out.mkdir(parents=True, exist_ok=True)
        last = time.perf_counter()
        while not self.host.should_close() and (frames == 0 or self._frame < frames):
            t0 = time.perf_counter()
            self.host.begin_frame()
            self.update()
            imgui.new_frame()
            self.draw()
            imgui.render()
            self.host.end_frame(imgui.get_draw_data())
            self._decide_idle()  # before the debug state, which reports it
            self._after_render()
            self.host.present()
            now = time.perf_counter()
            if self.gen.latency_pending is not None:
                self.perf.latency_ms.append((now - self.gen.latency_pending) * 1e3)
                self.gen.latency_pending = None
            self.perf.add_frame((now - t0) * 1e3, (t0 - last) * 1e3 if self._frame else None)
            last = t0
            self._frame += 1
            if not opts.offscreen:
                self._pace(t0)
        if opts.benchmark:
            print(
                json.dumps(
                    {**self.perf.summary(), "frames": self._frame, "images": len(self.perf.latency_ms)}
                )
            )
        return 0

    def _decide_idle(self) -> None:
        now = time.perf_counter()
        if self._woken:
            self._woken = False
            self._busy_until = now + WAKE_BUSY_S  # the result's frame and a few to settle its layout
        self.idle = not self.opts.offscreen and self._may_idle(now)

    def _pace(self, frame_start: float) -> None:
        """Wait before the next frame: the frame cap while the user is at it or something moves; while
        idle, until input, a worker's result or 1/fps_idle s (live plots and progress still update)."""
        if self.idle:
            self.host.wait(frame_time_left(frame_start, self.opts.fps_idle))
        else:
            frame_loop_sleep(frame_start, self.perf.fps_cap)

    def _may_idle(self, now: float) -> bool:
        if self.opts.fps_idle <= 0 or self.opts.benchmark or now < self._busy_until:
            return False
        if self.host.input_active(now):  # a render in flight needs no frames: its result wakes the loop
            return False
        animating = self.seeds.anim or (self.stylemix.enabled and self.stylemix.animate)
        return not (animating or (self.trunc.noise_anim and self.trunc.noise_mode == "random"))

    def _wake(self) -> None:
        """A worker finished: draw now (called on the worker's thread)."""
        self._woken = True
        self.host.wake()

    def _after_render(self) -> None:
        opts = self.opts
        if opts.offscreen:
            _save_png(self.host.read_frame(), opts.out / f"frame-{self._frame:04d}.png")
        if opts.debug_state and self._frame % opts.debug_every == 0:
            if opts.debug_screenshot:
                _save_png(self.host.read_frame(), opts.debug_screenshot)

            atomic_write_json(opts.debug_state, self.debug_state())

    def debug_state(self) -> dict[str, Any]:
        """A JSON-able picture of what is on screen, for tests and bug reports (viz.debug_state)."""
        from viz.debug_state import describe_app

        return describe_app(self)

    def close(self) -> None:
        from imgui_bundle import imgui, implot

        self._say_goodbye()
        set_wake_hook(None)
        self.renderer.close()
        self.aug_engine.close()
        self.textures.clear()
        self.host.close()
        implot.destroy_context(self._implot_ctx)
        imgui.destroy_context(self._imgui_ctx)

    def _say_goodbye(self) -> None:
        """Closing the GUI never stops a training: say where it goes on and how to come back."""
        text = self.session.goodbye()
        if text is not None:
            print(text, file=sys.stderr)


def _setup_style(scale: float) -> None:
    from imgui_bundle import imgui, implot

    from viz.widgets.training_monitor import FIT_PADDING

    io = imgui.get_io()
    io.fonts.add_font_from_file_ttf(str(FONT_PATH), FONT_SIZE)
    style = imgui.get_style()
    imgui.style_colors_dark(style)
    style.window_padding = imgui.ImVec2(8, 8)
    style.frame_rounding = 3.0
    style.grab_rounding = 3.0
    style.scale_all_sizes(scale)
    style.font_scale_dpi = scale
    implot.get_style().fit_padding = imgui.ImVec2(*FIT_PADDING)


def _save_png(image: Any, path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
