"""Training control: start a run in the background, attach to a run directory, pause/resume/stop."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from imgui_bundle import imgui

from core.augment import PRESETS, Mechanism
from core.augment.modes import choices
from core.networks.presets import CFG_NAMES, ada_kimg_default
from viz.panel import Intent, RunAction, Scene, StatePanel
from viz.run_client import StartOptions
from viz.ui import FrameContext, help_marker, record_item, text_colored

__all__ = ["CONFIGS", "ControlAction", "TrainingControlPanel", "TrainingControlState", "draw_training_control"]

# The laptop preset first: a run started from the GUI most often trains on this machine.
CONFIGS = ("cpu32", *(name for name in CFG_NAMES if name != "cpu32"))
TRAIN_AUG_MODES = choices(Mechanism)


def ada_speed_help(cfg: str) -> str:
    """How fast p may move in a run of this preset (its --ada-kimg default), for the form's help."""
    return (f"p moves towards the target by at most 1 per {ada_kimg_default(cfg):g} kimg with {cfg} "
            "(--ada-kimg, default from the preset: 100 for cpu32, 500 for the paper presets); "
            "set another in More options, e.g. --ada-kimg 50")


# What the comparison with the public pipe found (docs/training.md, "Our pipe or the public one").
PRESET_HELP = (
    "--augpipe: which ops the ADA pipe may use. bgc (default, as the public code): flips, 90-degree turns "
    "and shifts, then scale, rotation, anisotropy, then colour. On data whose meaning changes when flipped "
    "or turned (digits, letters, text) a small model drifts to what survives a flip (8s and 0s on the "
    "digits, with the public pipe as with ours): pick color, or keep bgc and add --aug-mult "
    "xflip=0,rotate90=0,rotate=0 in More options, or train with APA."
)

FIXED_P_HELP = (
    "--p: every image D sees is augmented with this probability from the first minibatch on, with no "
    "controller, so it fits a data set only by luck. At 0.25 on 500 images r_t sat at 0.64-0.74 on the "
    "digits (D still memorising; G collapsed onto one digit) and at 0.35-0.46 on colour emoji (more than "
    "D needed; grainy fakes in several runs, coming and going between 16 and 40 kimg), with the public "
    "pipe as with ours. For limited data start with ada, which moves p with r_t, and judge a run by "
    "several snapshots."
)


@dataclass
class ControlAction:
    """What the user clicked this frame; the app performs it with its RunClient."""

    start: bool = False
    attach: str | None = None
    detach: bool = False
    pause: bool = False
    resume: bool = False
    stop: bool = False
    snapshot: bool = False

    def any(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))


@dataclass
class TrainingControlState:
    start: StartOptions = field(default_factory=StartOptions)
    attach_input: str = ""
    confirm_stop: bool = False
    message: str | None = None
    error: str | None = None


def draw_training_control(
    state: TrainingControlState, ctx: FrameContext, attached: str | None, state_name: str, starting: bool
) -> ControlAction:
    act = ControlAction()
    if imgui.tree_node_ex("New run", imgui.TreeNodeFlags_.default_open if attached is None else 0):
        _draw_start_form(state, ctx, act, starting)
        imgui.tree_pop()
    imgui.set_next_item_width(-ctx.px(95))
    entered, state.attach_input = imgui.input_text(
        "##attach", state.attach_input, imgui.InputTextFlags_.enter_returns_true
    )
    imgui.same_line()
    if (imgui.button("Attach") or entered) and state.attach_input.strip():
        act.attach = state.attach_input.strip()
    help_marker("A run directory <outdir>/<NNNNN>-<desc>, also one written by a trainer on another machine.")
    if attached:
        _draw_run_buttons(state, ctx, act, state_name)
    if state.error:
        text_colored("error", state.error)
    elif state.message:
        text_colored("info", state.message)
    return act


def _draw_start_form(
    state: TrainingControlState, ctx: FrameContext, act: ControlAction, starting: bool
) -> None:
    s = state.start
    w = ctx.px(190)
    imgui.set_next_item_width(w)
    _, s.data = imgui.input_text("Dataset##train", s.data)
    imgui.set_next_item_width(w)
    _, s.outdir = imgui.input_text("Output folder##train", s.outdir)
    imgui.set_next_item_width(w)
    _, idx = imgui.combo("Config##train", CONFIGS.index(s.cfg) if s.cfg in CONFIGS else 0, list(CONFIGS))
    s.cfg = CONFIGS[idx]
    imgui.set_next_item_width(w)
    _, idx = imgui.combo("Augment##train", TRAIN_AUG_MODES.index(s.aug), list(TRAIN_AUG_MODES))
    s.aug = TRAIN_AUG_MODES[idx]
    if s.aug == Mechanism.APA:
        _, s.with_dataaug = imgui.checkbox("With the ADA pipe##train", s.with_dataaug)
        help_marker("--with-dataaug: the ADA pipe on everything D sees, besides APA")
    presets = list(PRESETS)
    imgui.begin_disabled(not s.uses_pipe)  # the trainer refuses a preset it would not use
    imgui.set_next_item_width(w)
    _, idx = imgui.combo(
        "Pipe preset##train", presets.index(s.augpipe) if s.augpipe in presets else 0, presets
    )
    s.augpipe = presets[idx]
    imgui.end_disabled()
    help_marker(PRESET_HELP)
    imgui.set_next_item_width(w)
    if s.aug == Mechanism.DIFFAUG:
        _, s.diffaug_policy = imgui.input_text("DiffAugment ops##train", s.diffaug_policy)
        help_marker("--diffaug-policy: a comma list of color, translation, cutout (the DiffAugment paper's "
                    "ops), applied to every image D sees; no p, r_t is still measured")
    elif s.aug == Mechanism.FIXED:
        _, s.p = imgui.slider_float("p##train", s.p, 0.0, 1.0, "%.3f")
        help_marker(FIXED_P_HELP)
    else:
        imgui.begin_disabled(s.aug == Mechanism.NOAUG)
        _, s.target = imgui.slider_float("Target r_t##train", s.target, 0.0, 1.0, "%.2f")
        imgui.end_disabled()
        if s.aug != Mechanism.NOAUG:
            help_marker(ada_speed_help(s.cfg))
    imgui.set_next_item_width(w)
    _, s.kimg = imgui.input_float("Length (kimg)##train", s.kimg, 1.0, 10.0, "%.1f")
    s.kimg = max(s.kimg, 0.1)
    imgui.set_next_item_width(w)
    _, s.extra_args = imgui.input_text("More options##train", s.extra_args)
    help_marker("Extra train_headless.py options, e.g. --batch 8 --snap 5")
    imgui.begin_disabled(starting)
    if imgui.button("Start training"):
        act.start = True
    record_item(ctx, "train_start")
    imgui.end_disabled()
    if starting:
        imgui.same_line()
        imgui.text_disabled("starting ...")


def _draw_run_buttons(
    state: TrainingControlState, ctx: FrameContext, act: ControlAction, state_name: str
) -> None:
    live = state_name in ("running", "paused", "unknown")
    imgui.begin_disabled(not live)
    if state_name == "paused":
        act.resume = imgui.button("Resume")
    else:
        act.pause = imgui.button("Pause")
    record_item(ctx, "train_pause")
    imgui.same_line()
    act.snapshot = imgui.button("Snapshot now")
    imgui.same_line()
    if not state.confirm_stop:
        state.confirm_stop = imgui.button("Stop...")
    else:
        act.stop = imgui.button("Really stop")
        imgui.same_line()
        if imgui.button("Cancel"):
            state.confirm_stop = False
        if act.stop:
            state.confirm_stop = False
    imgui.end_disabled()
    imgui.same_line()
    act.detach = imgui.button("Detach")
    if live:
        imgui.text_disabled("Closing this window leaves the training running.")


class TrainingControlPanel(StatePanel[TrainingControlState]):
    name, title, state_type = "control", "Training control", TrainingControlState

    def draw(self, ctx: FrameContext, scene: Scene) -> list[Intent]:
        run = str(scene.run_dir) if scene.run_dir else None
        act = draw_training_control(self.state, ctx, run, scene.run_state, scene.run_starting)
        return [RunAction(act)] if act.any() else []
