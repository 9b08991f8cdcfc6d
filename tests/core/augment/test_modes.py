"""The augmentation vocabulary: one Mechanism (--aug) and one PMode (the p controller), both plain strings."""

from __future__ import annotations

import json

import pytest

from core.augment import AdaController, Mechanism, PMode
from core.training.config import AUG_MODES, uses_ada_pipe


def test_members_are_the_strings_files_have_always_held() -> None:
    assert AUG_MODES == ("ada", "apa", "fixed", "noaug", "diffaug")
    assert [m.value for m in PMode] == ["ada", "fixed", "noaug"]
    assert Mechanism("apa") is Mechanism.APA and Mechanism.ADA == "ada"
    assert json.dumps({"aug": Mechanism.FIXED}) == '{"aug": "fixed"}'


@pytest.mark.parametrize(("mechanism", "adaptive", "p_mode", "pipe", "pipe_with_dataaug"), [
    ("ada", True, "ada", True, True),
    ("apa", True, "ada", False, True),
    ("fixed", False, "fixed", True, True),
    ("noaug", False, "noaug", False, False),
    ("diffaug", False, "noaug", False, False),  # DiffAugment has no p: the controller only measures r_t
])
def test_what_each_mechanism_means(mechanism: str, adaptive: bool, p_mode: str, pipe: bool,
                                   pipe_with_dataaug: bool) -> None:
    m = Mechanism(mechanism)
    assert m.adaptive is adaptive and m.p_mode == p_mode
    assert uses_ada_pipe(mechanism, False) is pipe and uses_ada_pipe(mechanism, True) is pipe_with_dataaug


def test_the_controller_keeps_plain_strings_in_its_state() -> None:
    ctrl = AdaController(mode=PMode.FIXED, p=0.3)
    assert type(ctrl.state_dict()["mode"]) is str and ctrl.state_dict()["mode"] == "fixed"
    with pytest.raises(ValueError, match="mode must be one of ada, fixed, noaug"):
        ctrl.mode = "apa"  # a mechanism, not a controller mode
