"""The snapshot timeline and the nearest-neighbour panel in the real app under Xvfb, clicked with
xdotool, on a recorded chain (run A, run B forked from A's snapshot at 8 kimg) whose training set
holds one planted copy of the demo generator's fake for seed 3.

Set ADA_STUDIO_SHOTS to a folder to keep the screenshots (docs/images/timeline.png, nearest.png are
made so)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.viz.conftest import app_env, xvfb_display
from tests.viz.recorded_chain import Chain, planted_training_set, write_chain
from tests.viz.test_gui_xvfb import STATE_TIMEOUT, RunningApp, _crop, running_app

COPY_SEED = 3
WINDOW = "1280x960"


@pytest.fixture(scope="module")
def tall_xvfb() -> Iterator[str]:
    """A private Xvfb taller than the usual one: both panels' images fit under the folded headers."""
    with xvfb_display(f"{WINDOW}x24") as display:
        yield display


@pytest.fixture(scope="module")
def chain_app(tall_xvfb: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningApp, Chain]]:
    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed (scripts/test.sh installs it with apt-get when run as root)")
    xvfb = tall_xvfb
    tmp = tmp_path_factory.mktemp("gui_timeline")
    data = planted_training_set(tmp / "train", COPY_SEED)
    chain = write_chain(tmp / "runs", data=str(data), subset=None)
    env = app_env(tmp, xvfb)
    env["ADA_STUDIO_CACHE"] = str(tmp / "cache")
    env.pop("ADA_INCEPTION_WEIGHTS", None)
    args = ["--run", str(chain.run_b), "--no-attach-last", "--size", WINDOW, "--fps-cap", "30",
            "--panels", "timeline", "--grid", "4x2"]  # fmt: skip
    with running_app(xvfb, tmp, args, env=env, ready=lambda st: st["frame"] >= 6 and st["timeline"]["frames"],
                     what="the first frames and the timeline") as app:  # fmt: skip
        yield app, chain


def _keep_shot(shot: np.ndarray, name: str) -> None:
    folder = os.environ.get("ADA_STUDIO_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(shot).save(Path(folder) / name)


def _click_until(app: RunningApp, rect: str, predicate, what: str, tries: int = 3) -> dict:  # type: ignore[no-untyped-def]
    """Click the item ``rect`` until ``predicate(state)`` (a click can fall between two slow frames)."""
    for attempt in range(tries):
        app.click(app.fresh_state()["rects"][rect], fx=0.3)
        try:
            return app.until(predicate, what, timeout=20 if attempt < tries - 1 else STATE_TIMEOUT)
        except (pytest.fail.Exception, AssertionError):
            if attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


def test_the_timeline_lists_the_chain_opens_a_snapshot_and_compares_two(chain_app: tuple[RunningApp, Chain]) -> None:
    app, chain = chain_app
    st = app.state()
    tl = st["timeline"]
    assert tl["runs"] == [str(chain.run_a), str(chain.run_b)]
    assert [f[0] for f in tl["frames"]] == [0.0, 4.0, 8.0, 10.0, 14.0]  # A's 12 kimg was abandoned by the fork
    assert [Path(f[1]).parent.parent for f in tl["frames"]] == [chain.run_a] * 3 + [chain.run_b] * 2
    assert [s[1] for s in tl["kept"]] == [str(p) for p in chain.snapshots]
    assert tl["shown"][0] == tl["frames"][-1][1]  # the newest preview is on screen
    # A click on the strip at 30 % of its width scrubs to the preview nearest that kimg (4 of 0-14).
    st = _click_until(app, "timeline_strip", lambda s: s["timeline"]["index"] == 1, "the scrubber to move")
    assert not st["timeline"]["follow"]
    app.until(lambda s: s["timeline"]["shown"] == s["timeline"]["frames"][1][1:], "the 4 kimg previews")
    # Choosing the snapshot at 8 kimg opens it in the generator view and moves the scrubber there.
    target = str(chain.snapshots[1])
    st = _click_until(app, "timeline_snap:1", lambda s: s["snapshot"]["source"] == target, "the snapshot to open")
    st = app.until(lambda s: s["model"] is not None and s["model"]["path"] == target and s["generator_image"],
                   "the snapshot's images")  # fmt: skip
    assert st["timeline"]["chosen"] == 1 and st["timeline"]["shown"][0] == st["timeline"]["frames"][2][1]
    # Compare A (4 kimg) with B (14 kimg) on seeds 0-7.
    st = _click_until(app, "timeline_compare", lambda s: s["timeline"]["compare"] is not None, "the comparison")
    cmp = st["timeline"]["compare"]
    assert (cmp["a"], cmp["b"], cmp["seeds"]) == (str(chain.snapshots[0]), str(chain.snapshots[2]), list(range(8)))
    assert cmp["shape"] == [64, 128, 3] and cmp["differ"]
    st = app.fresh_state()
    shot = app.screenshot()
    for name in ("timeline_fakes", "timeline_reals", "timeline_compare_a", "timeline_compare_b"):
        assert _crop(shot, st["rects"][name]).std() > 10, f"{name} is blank"
    _keep_shot(shot, "timeline.png")
    # Leave the newest snapshot (the planted copy's generator) on screen for the nearest panel.
    newest = str(chain.snapshots[2])
    _click_until(app, "timeline_snap:2", lambda s: s["model"] is not None and s["model"]["path"] == newest,
                 "the newest snapshot")  # fmt: skip


def test_the_nearest_panel_shows_k_neighbours_and_flags_the_planted_copy(chain_app: tuple[RunningApp, Chain]) -> None:
    app, chain = chain_app
    newest = str(chain.snapshots[2])
    app.until(lambda s: s["model"] is not None and s["model"]["path"] == newest, "the newest snapshot")
    _click_until(app, "panel:timeline", lambda s: "timeline_scrubber" not in s["rects"], "the timeline to fold")
    _click_until(app, "panel:nearest", lambda s: "nearest_run" in s["rects"], "the nearest panel")
    st = _click_until(app, "nearest_run", lambda s: s["nearest"]["running"] or s["nearest"]["result"],
                      "the search to start")  # fmt: skip
    st = app.until(lambda s: s["nearest"]["result"] is not None and not s["nearest"]["running"], "the search",
                   timeout=240)  # fmt: skip
    res = st["nearest"]["result"]
    assert st["nearest"]["error"] is None and res["network"] == newest and res["offline"]
    matches = res["matches"]
    assert [m["image"] for m in matches] == list(range(8))
    assert all(len(m["neighbours"]) == 3 for m in matches)
    assert [m["copy"] for m in matches] == [m["image"] == COPY_SEED for m in matches]
    assert matches[COPY_SEED]["neighbours"][0]["name"] == "planted.png"
    st = app.fresh_state()
    shot = app.screenshot()
    row = _crop(shot, st["rects"][f"nearest_row:{COPY_SEED}"])
    assert row.std() > 10
    _keep_shot(shot, "nearest.png")
