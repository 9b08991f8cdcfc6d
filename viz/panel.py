"""The one panel protocol: each panel draws from its own typed state and returns what it wants done.

A panel is a small class with a ``name`` (the key ``--panels`` opens by default), a ``title`` and
``draw(ctx, scene) -> list[Intent]``. It reads the app's world only through :class:`Scene` (facts
built once per frame) and changes it only through the intents it returns, which the app carries
out after drawing. A new panel is one file in viz/widgets/ plus one line in the app's panel list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

if TYPE_CHECKING:  # kept light: the launcher imports this before it knows it will open a window
    import numpy as np

    from viz.layer_view import LayerView
    from viz.studio_jobs import JobStatus
    from viz.ui import FrameContext

__all__ = [
    "ExportVideo",
    "FormPanel",
    "Intent",
    "Message",
    "OpenSource",
    "Panel",
    "Project",
    "RunAction",
    "SaveCapture",
    "Scene",
    "SendAugment",
]


@dataclass(frozen=True)
class Scene:
    """What panels may know about the rest of the app during one frame (read-only)."""

    num_ws: int = 1  # of the loaded generator (1 while none is loaded)
    c_dim: int = 0
    run_dir: Path | None = None  # the attached run
    run_state: str = "unknown"  # running / paused / finished / failed / stopped / unknown
    run_starting: bool = False  # a trainer this GUI started has not made its run directory yet
    capture_image: np.ndarray | None = None  # what Capture would save, and its file label
    capture_label: str = "image"
    layer_view: LayerView | None = None  # what the newest render saw of the synthesis layers
    model_loaded: bool = False
    source: str | None = None  # what the generator view shows (snapshot, .pkl or run directory)
    jobs: Mapping[str, JobStatus] = field(default_factory=dict)  # "video", "projection": their status
    seed: int | None = None  # the seed on screen (a video keyframe can be taken from it)
    projected_w: str | None = None  # the Projection panel's projected_w.npz, once it exists

    @property
    def run_attached(self) -> bool:
        return self.run_dir is not None


@dataclass(frozen=True)
class OpenSource:
    """Open a snapshot, a public .pkl or a run directory in the generator view."""

    path: str


@dataclass(frozen=True)
class SendAugment:
    """Send augmentation settings to the attached run (control.json)."""

    multipliers: dict[str, float]
    mode: str  # a PMode value
    target: float
    p: float


@dataclass(frozen=True)
class RunAction:
    """Start, attach, detach, pause, resume, stop or snapshot (viz.widgets.training_control.ControlAction)."""

    action: Any


@dataclass(frozen=True)
class SaveCapture:
    """Save the scene's capture image as a PNG."""


@dataclass(frozen=True)
class ExportVideo:
    """Write a latent walk between seeds of the generator on screen (core.studio.video's options)."""

    out: str
    seeds: tuple[int, ...]
    grid: str = "1x1"
    seconds: float = 8.0
    fps: float = 30.0
    loop: bool = True
    kind: str = "lerp"
    keyframes: tuple[str, ...] = ()  # instead of seeds: seeds ("12") and projected_w files, in order


@dataclass(frozen=True)
class Project:
    """Find the w of a target image with the generator on screen (core.studio.project's options)."""

    target: str
    outdir: str
    steps: int = 1000
    seed: int = 303
    vgg: str | None = None


@dataclass(frozen=True)
class Message:
    """A line for the status bar."""

    text: str


Intent = OpenSource | SendAugment | RunAction | SaveCapture | ExportVideo | Project | Message


S = TypeVar("S")


class StatePanel(Generic[S]):
    """The usual panel: it owns one typed state (made fresh unless given) and draws from it.

    A subclass sets ``name``, ``title`` and ``state_type`` and writes ``draw``."""

    name: ClassVar[str]
    title: ClassVar[str]
    state_type: ClassVar[type]

    def __init__(self, state: S | None = None) -> None:
        self.state: S = state if state is not None else self.state_type()


class FormPanel(StatePanel[S]):
    """A panel that is a form: drawn by ``draw_form`` (True when its button was pressed), then
    ``submit`` turns the form into one intent, or None with the form's error set."""

    def draw_form(self, ctx: FrameContext, scene: Scene) -> bool:
        raise NotImplementedError

    def submit(self) -> Intent | None:
        raise NotImplementedError

    def draw(self, ctx: FrameContext, scene: Scene) -> list[Intent]:
        if not self.draw_form(ctx, scene):
            return []
        intent = self.submit()
        return [intent] if intent is not None else []


class Panel(Protocol):
    name: ClassVar[str]
    title: ClassVar[str]

    def draw(self, ctx: FrameContext, scene: Scene) -> list[Intent]: ...
