"""The New run form draws for every mechanism (no window needed: imgui builds frames without a
renderer), and what it holds becomes a command the trainer accepts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from imgui_bundle import imgui

from core.training.cli import parse_options
from core.training.config import check_options
from viz.run_client import trainer_command
from viz.ui import FrameContext
from viz.widgets.training_control import TRAIN_AUG_MODES, TrainingControlState, draw_training_control


@pytest.fixture
def frame() -> Iterator[None]:
    context = imgui.create_context()
    io = imgui.get_io()
    io.set_ini_filename(None)  # no imgui.ini left in the folder the tests run from
    io.display_size = imgui.ImVec2(800, 600)
    io.backend_flags |= imgui.BackendFlags_.renderer_has_textures.value  # no font texture to upload
    yield
    imgui.destroy_context(context)


@pytest.mark.parametrize("aug", TRAIN_AUG_MODES)
def test_the_form_draws_for_every_mechanism(frame: None, aug: str) -> None:
    state = TrainingControlState()
    state.start.aug = aug
    imgui.new_frame()
    imgui.begin("form")
    action = draw_training_control(state, FrameContext(), None, "none", False)
    imgui.end()
    imgui.end_frame()
    assert not action.any() and state.start.aug == aug
    opts, _, _ = parse_options(trainer_command(state.start)[2:])
    check_options(opts)
    assert opts.aug == aug
