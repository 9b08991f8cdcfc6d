"""Panel logic without a window: monitor series, augmentation previews, seeds, settings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.augment import BAND_NAMES, PRESETS
from core.data.dataset import ImageDataset
from tests.viz.conftest import REPO
from viz.widgets.augment_preview import (
    AugmentPreviewState,
    compute_preview,
    describe_ops,
    hit_test,
)
from viz.widgets.seeds import SeedsState, drag_lattice
from viz.widgets.training_monitor import STAT_KEYS, MonitorState, ingest

RECORDED_RUN = REPO / "tests" / "fixtures" / "recorded_run" / "00000-digits-demo"


def _events(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "events.jsonl").read_text().splitlines() if ln.strip()]


def test_ingest_plots_every_stats_event_and_the_target() -> None:
    events = _events(RECORDED_RUN)
    options = json.loads((RECORDED_RUN / "run.json").read_text())["options"]
    state = MonitorState()
    ingest(state, events[:50], options)
    ingest(state, events[50:], options)  # incremental, as RunReader.poll_events delivers them
    stats = [e for e in events if e["kind"] == "stats"]
    for key in STAT_KEYS:  # a real stats line carries the losses only when their phase ran in its window
        carrying = [e for e in stats if isinstance(e.get(key), int | float) and np.isfinite(e[key])]
        assert len(carrying) >= len(stats) // 2
        assert state.series[key].kimg == [e["kimg"] for e in carrying]
        assert state.series[key].values == [e[key] for e in carrying]
    controls = [e for e in events if e["kind"] == "control"]
    changed = [(c["kimg"], c["applied"]["target"]) for c in controls if "target" in c["applied"]]
    assert len(changed) == 1  # the recording moved the target once, through control.json
    plotted_target = list(zip(state.target.kimg, state.target.values, strict=True))
    assert plotted_target == [(0.0, options["target"]), *changed]
    assert [c["seq"] for c in state.controls] == [c["seq"] for c in controls] == [1, 2, 3]
    assert state.kimg == max(e["kimg"] for e in events) > 0 and state.events == len(events)


@pytest.mark.parametrize(
    ("options", "target"),
    [
        ({"target": 0.7, "resolved": {"augment": {"target": 0.7}}}, [0.7]),
        ({"target": None, "resolved": {"augment": {"target": 0.6}}}, [0.6]),  # --target left at its default
        ({"target": None, "resolved": {"augment": {"target": None}}}, []),  # fixed p: no target
        (None, []),
    ],
)
def test_the_target_line_comes_from_the_option_or_the_resolved_default(options: dict | None, target: list) -> None:
    state = MonitorState()
    ingest(state, [{"kind": "stats", "kimg": 1.0, "Loss/signs/real": 0.5}], options)
    assert state.target.values == target


def test_ingest_uses_ticks_only_without_stats_and_follows_target_changes() -> None:
    state = MonitorState()
    ticks = [{"kind": "tick", "kimg": k, "Progress/augment": 0.1 * k} for k in (4.0, 8.0)]
    ingest(state, ticks, {"target": 0.6})
    assert state.series["Progress/augment"].kimg == [4.0, 8.0]
    ingest(state, [{"kind": "control", "kimg": 9.0, "seq": 3, "applied": {"target": 0.7}}], {"target": 0.6})
    assert list(zip(state.target.kimg, state.target.values, strict=True)) == [(0.0, 0.6), (9.0, 0.7)]
    bad = [{"kind": "stats", "kimg": 10.0, "Progress/augment": float("nan")}, {"kind": "stats"}]
    ingest(state, bad, None)
    assert state.series["Progress/augment"].kimg == [4.0, 8.0]  # NaN and kimg-less events skipped


@pytest.fixture(scope="module")
def digits() -> ImageDataset:
    return ImageDataset("builtin:digits")


def test_augment_preview_is_reproducible_and_responds_to_settings(digits: ImageDataset) -> None:
    state = AugmentPreviewState(count=8, p=0.8)
    a = compute_preview(state.spec(), digits)
    b = compute_preview(state.spec(), digits)
    np.testing.assert_array_equal(a.composite, b.composite)
    assert a.explain == b.explain
    state.multipliers["rotate90"] = 0.0
    c = compute_preview(state.spec(), digits)
    np.testing.assert_array_equal(c.reals, a.reals)  # same images ...
    assert not np.array_equal(c.augmented, a.augmented)  # ... augmented differently
    assert all("rotate90" not in fired for fired in c.explain)
    state.seed += 1
    d = compute_preview(state.spec(), digits)
    assert d.explain != c.explain


def test_augment_preview_with_p_zero_is_the_identity(digits: ImageDataset) -> None:
    state = AugmentPreviewState(count=6, p=0.0)
    pv = compute_preview(state.spec(), digits)
    np.testing.assert_array_equal(pv.augmented, pv.reals)
    assert all(fired == {} for fired in pv.explain)


def test_presets_and_bands_cover_all_multipliers() -> None:
    state = AugmentPreviewState()
    state.apply_preset("bgcfnc")
    assert {k for k, v in state.multipliers.items() if v > 0} == set(PRESETS["bgcfnc"]) | set(BAND_NAMES)
    state.apply_preset("blit")
    assert {k for k, v in state.multipliers.items() if v > 0} == {"xflip", "rotate90", "xint"} | set(
        BAND_NAMES
    )


def test_hit_test_and_tooltip_text(digits: ImageDataset) -> None:
    pv = compute_preview(AugmentPreviewState(count=5, p=1.0).spec(), digits)
    res = pv.resolution
    assert hit_test(pv, 1, 1) == (0, False)
    assert hit_test(pv, res + 2 + 1, 1) == (0, True)
    assert hit_test(pv, res + 0.5, 1) is None  # the gap between a real and its copy
    x_second = 2 * res + 2 + 6
    assert hit_test(pv, x_second + 1, 1) == (1, False)
    lines = describe_ops(pv.explain[0])
    assert len(lines) == len(pv.explain[0]) and all(":" in ln or ln in pv.explain[0] for ln in lines)
    assert describe_ops({}) == ["no op fired on this image"]


def test_drag_is_measured_from_the_press() -> None:
    s = SeedsState()
    s.set_seed(3005)
    assert (s.x, s.y, s.seed) == (5.0, 3.0, 3005)
    s.drag_origin = (s.x, s.y)
    drag_lattice(s, -100, 0, 400)  # a quarter image width to the left
    drag_lattice(s, -200, 50, 400)  # later in the same drag: still relative to the press
    assert (s.x, s.y) == pytest.approx((5.0 + 2.0, 3.0 - 0.5))
    s.drag_origin = None
    s.snap()
    assert s.seed == 2007


def test_recent_list_and_session_roundtrip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from viz import settings

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert settings.load_recent() == []
    for i in range(settings.RECENT_MAX + 3):
        settings.push_recent(f"/snap/{i}")
    recent = settings.push_recent("/snap/2")
    assert recent[0] == "/snap/2" and len(recent) == settings.RECENT_MAX and recent.count("/snap/2") == 1
    assert settings.load_recent() == recent
    (tmp_path / "ada-studio" / "session.json").write_text("{not json")
    assert settings.load_session().last_run_dir is None  # unreadable: ignored, not fatal
    settings.save_session(settings.Session(last_run_dir="/runs/00001-x"))
    assert settings.load_session().last_run_dir == "/runs/00001-x"


def test_newest_run_weights_prefers_the_newer_of_live_and_snapshot(tmp_path: Path) -> None:
    import os

    from viz.renderer import newest_run_weights

    run = tmp_path / "run"
    shutil.copytree(RECORDED_RUN, run)
    ident, path, load = newest_run_weights(run)
    assert ident.startswith("live:") and path.endswith("G_ema.safetensors")
    model = load()
    final_kimg = [e for e in _events(RECORDED_RUN) if e["kind"] == "status"][-1]["kimg"]
    assert model.img_resolution == 32 and model.meta["kimg"] == final_kimg > 0
    shutil.rmtree(run / "live")
    assert newest_run_weights(run) is None  # no snapshot in the recording either
    os.makedirs(run / "live")
    assert newest_run_weights(run) is None


def test_capture_saves_unique_pngs_and_reports_unwritable_folders(tmp_path: Path) -> None:
    from PIL import Image

    from viz.widgets.capture import CaptureState, save_png

    img = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    state = CaptureState(folder=str(tmp_path / "caps"), prefix="t")
    save_png(state, img, "seed7")
    first = Path(state.last_saved)
    save_png(state, img, "seed7")
    second = Path(state.last_saved)
    assert first != second and first.parent == second.parent == tmp_path / "caps"
    np.testing.assert_array_equal(np.asarray(Image.open(second)), img)
    assert state.error is None
    blocker = tmp_path / "file"
    blocker.write_text("x")
    state.folder = str(blocker / "sub")
    save_png(state, img, "seed7")
    assert state.error is not None and "could not save" in state.error


def test_class_selects_the_label_of_a_conditional_generator() -> None:
    import torch

    from core.networks.stylegan2 import Generator
    from viz.renderer import RenderRequest, model_from_generator, render_images

    torch.manual_seed(0)
    G = Generator(
        z_dim=8,
        c_dim=3,
        w_dim=8,
        img_resolution=8,
        img_channels=3,
        mapping_kwargs={"num_layers": 1},
        synthesis_kwargs={"channel_base": 64, "channel_max": 8},
    )
    model = model_from_generator(G, "cond")
    with torch.inference_mode():
        images = [render_images(model, RenderRequest(model.key, x=3, class_idx=k)) for k in (0, 1, 1)]
    assert not np.array_equal(images[0], images[1])
    np.testing.assert_array_equal(images[1], images[2])


def test_long_texts_are_cut_to_fit_with_an_ellipsis() -> None:
    from types import SimpleNamespace

    from viz.ui import ELLIPSIS, fit_path, fit_text

    def measure(s: str) -> SimpleNamespace:  # 7 px a character, like the UI font
        return SimpleNamespace(x=7.0 * len(s))

    assert fit_text("short", 100, measure) == "short"
    cut = fit_text("a status message far too long for the bar", 70, measure)
    assert cut.endswith(ELLIPSIS) and measure(cut).x <= 70 and "a status message".startswith(cut[:-1])
    path = "/home/user/training-runs/00042-ffhq256-mirror-paper256-target0.7-bgcfnc"
    end = fit_path(path, 140, measure)
    assert end.startswith(ELLIPSIS) and path.endswith(end[1:]) and measure(end).x <= 140
    assert fit_path(path, 1000, measure) == path
