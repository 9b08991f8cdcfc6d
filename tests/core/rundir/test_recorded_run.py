"""The recorded run the GUI tests use (a real train_headless.py run made by scripts/record_demo_run.py),
read back whole through RunReader: its events must tell the story a real ADA run tells.

The recording is frozen, so most tests here exercise RunReader only; the last test runs today's
trainer briefly and checks that it still writes what the recording holds (event kinds and keys),
so a trainer that drifted from the recording the GUI tests rely on fails here."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from core.io.images import image_grid
from core.networks import Generator
from core.rundir import RunReader, kimg_tag
from core.rundir.schema import STAT_P, STAT_RT
from core.training.loop import PREVIEW_GRID

RUN = Path(__file__).resolve().parents[2] / "fixtures" / "recorded_run" / "00000-digits-demo"


@pytest.fixture(scope="module")
def reader() -> RunReader:
    assert RUN.is_dir(), f"{RUN} is missing; run scripts/record_demo_run.py"
    return RunReader(RUN)


@pytest.fixture(scope="module")
def events(reader: RunReader) -> list[dict[str, Any]]:
    return reader.poll_events()


@pytest.fixture(scope="module")
def resolved(reader: RunReader) -> dict[str, Any]:
    options = reader.options()
    assert options is not None
    return options["resolved"]


def _of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == kind]


def test_fixture_is_small_pruned_and_has_no_temp_files(reader: RunReader) -> None:
    files = [p for p in RUN.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 300 * 1024
    assert not [p for p in files if p.name.startswith(".")]
    # Snapshots were pruned with their latest.json: nothing points at a missing file.
    assert not (RUN / "snapshots").exists() and reader.latest_snapshot() is None


def test_every_line_is_an_event_and_the_log_agrees(reader: RunReader, events: list[dict[str, Any]]) -> None:
    lines = [ln for ln in (RUN / "events.jsonl").read_text().splitlines() if ln.strip()]
    assert len(events) == len(lines) and {e["kind"] for e in events} >= {"stats", "tick", "status", "control"}
    t = [e["t"] for e in events]
    assert t == sorted(t)
    log_ticks = [ln for ln in reader.log_tail(10_000) if "core.training.loop: tick " in ln]
    assert len(log_ticks) == len(_of(events, "tick")) > 0
    assert reader.options()["data"] == "builtin:digits" and reader.options()["aug"] == "ada"


def test_ticks_cover_the_run_at_the_tick_interval(
    events: list[dict[str, Any]], resolved: dict[str, Any]
) -> None:
    ticks = _of(events, "tick")
    total, per_tick, batch_kimg = resolved["total_kimg"], resolved["kimg_per_tick"], resolved["batch"] / 1000
    assert [e["tick"] for e in ticks] == list(range(len(ticks)))
    kimg = np.array([e["kimg"] for e in ticks])
    assert kimg[0] == pytest.approx(batch_kimg)  # tick 0 ends after the first minibatch
    steps = np.diff(kimg)
    assert np.all(steps[:-1] >= per_tick - 1e-9) and np.all(steps <= per_tick + batch_kimg + 1e-9)
    assert total <= kimg[-1] < total + batch_kimg
    assert len(ticks) >= 10


def test_p_rises_from_zero_in_ada_steps(events: list[dict[str, Any]], resolved: dict[str, Any]) -> None:
    stats = _of(events, "stats")
    kimg = np.array([e["kimg"] for e in stats])
    p = np.array([e[STAT_P] for e in stats])
    ada = resolved["augment"]
    step = resolved["batch"] * ada["interval"] / (ada["kimg"] * 1000)  # p's one ADA move
    assert np.all(np.diff(kimg) >= 0) and kimg[-1] == pytest.approx(_of(events, "tick")[-1]["kimg"])
    assert p[0] == 0.0 and p.max() > 0.2 and np.all((p >= 0) & (p <= ada["p_max"]))
    np.testing.assert_allclose(p / step, np.round(p / step), atol=1e-6)  # whole ADA moves only
    # p moves at most one step per `interval` minibatches (a stats line may race one update).
    assert np.all(np.abs(np.diff(p)) <= np.diff(kimg) / ada["kimg"] + 2 * step + 1e-9)
    assert all(STAT_RT in e for e in stats if e["kimg"] > 0)  # from the first minibatch on
    r_t = np.array([e[STAT_RT] for e in stats if STAT_RT in e])
    assert np.all(np.abs(r_t) <= 1)
    assert r_t.mean() > ada["target"]  # why p rose: D was overfitting (r_t above the target)


def test_pause_resume_and_target_change_came_through_control_json(
    reader: RunReader, events: list[dict[str, Any]]
) -> None:
    states = [(e["state"], e["kimg"]) for e in _of(events, "status")]
    assert [s for s, _ in states] == ["started", "paused", "resumed", "finished"]
    paused_at = states[1][1]
    assert states[2][1] == paused_at  # no training while paused
    i0 = next(i for i, e in enumerate(events) if e.get("state") == "paused")
    i1 = next(i for i, e in enumerate(events) if e.get("state") == "resumed")
    assert all(e["kimg"] == paused_at for e in events[i0:i1])
    controls = _of(events, "control")
    assert [c["seq"] for c in controls] == [1, 2, 3]
    assert controls[0]["applied"] == {"pause": True} and controls[1]["applied"] == {"pause": False}
    assert controls[0]["kimg"] == paused_at
    control = json.loads((RUN / "control.json").read_text())
    assert control["seq"] == 3 and controls[2]["applied"] == {"target": control["target"]}
    assert control["target"] != reader.options()["target"]
    assert reader.control_applied(3) and not reader.control_applied(4)
    final = reader.status()
    assert final.state == "finished" and not final.stale and final.kimg == _of(events, "tick")[-1]["kimg"]


def test_metrics_ran_on_the_final_snapshot(reader: RunReader, events: list[dict[str, Any]]) -> None:
    metrics = reader.metrics()
    assert [m["metric"] for m in metrics] == reader.options()["metrics"] == ["fd_offline", "kid_offline"]
    final_kimg = _of(events, "tick")[-1]["kimg"]
    for m in metrics:
        value = m["results"][m["metric"]]
        assert math.isfinite(value) and value >= 0 and m["kimg"] == final_kimg
        assert m["snapshot"] == f"network-snapshot-{kimg_tag(final_kimg)}"
    records = [json.loads(ln) for ln in (RUN / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    assert [(r["metric"], r["results"]) for r in records] == [(m["metric"], m["results"]) for m in metrics]


def test_previews_at_preview_ticks_load(
    reader: RunReader, events: list[dict[str, Any]], resolved: dict[str, Any]
) -> None:
    ticks = _of(events, "tick")
    every = resolved["preview_ticks"]
    expected = sorted({kimg_tag(e["kimg"]) for e in ticks if e["tick"] % every == 0 or e is ticks[-1]})
    previews = _of(events, "preview")
    cols = PREVIEW_GRID[0]
    shown = min(cols * PREVIEW_GRID[1], resolved["data"]["num_images"])
    size = (cols * 32, -(-shown // cols) * 32)
    for kind in ("fakes", "reals-augmented"):
        files = [e["file"] for e in previews if e["image"] == kind]
        assert sorted(Path(f).stem.rsplit("-", 1)[1] for f in files) == expected
        on_disk = sorted(p.name for p in (RUN / "previews").glob(f"{kind}-*.png"))
        assert on_disk == sorted(Path(f).name for f in files)
        latest = reader.latest_preview(kind)
        assert latest is not None and latest.name == f"{kind}-{expected[-1]}.png"
        for f in files:
            with Image.open(RUN / f) as im:
                assert im.size == size and np.asarray(im.convert("L")).std() > 5


def test_live_weights_are_the_final_g_ema_and_render(
    reader: RunReader, events: list[dict[str, Any]], resolved: dict[str, Any]
) -> None:
    live = reader.live_weights()
    assert live is not None and live.kimg == _of(events, "tick")[-1]["kimg"]
    assert live.kwargs == resolved["G_kwargs"]
    G = Generator(**live.kwargs).eval()
    G.load_state_dict(live.state_dict, strict=True)
    # The trainer rendered its last fakes preview from the final G_ema with the fixed z grid
    # (RandomState(seed), const noise): the live weights must redraw that very image. Random
    # weights differ by ~85 grey levels on average.
    n = min(PREVIEW_GRID[0] * PREVIEW_GRID[1], resolved["data"]["num_images"])
    z = torch.from_numpy(np.random.RandomState(resolved["seed"]).randn(n, G.z_dim)).float()
    with torch.no_grad():
        img = G(z, None, noise_mode="const")
    assert img.shape == (n, 3, 32, 32) and torch.isfinite(img).all()
    drawn = np.asarray(image_grid(img, PREVIEW_GRID[0])).astype(int)
    latest = reader.latest_preview("fakes")
    assert latest is not None
    with Image.open(latest) as im:
        recorded = np.asarray(im.convert("RGB")).astype(int)
    diff = np.abs(drawn - recorded)
    assert diff.mean() < 1.0 and diff.max() <= 8, f"live weights redraw {latest.name} off by {diff.mean():.1f}"
    assert img.std(dim=0).mean() > 0.01  # different z, different images


def _keys_by_kind(events: list[dict[str, Any]]) -> dict[str, set[str]]:
    keys: dict[str, set[str]] = {}
    for e in events:
        keys.setdefault(e["kind"], set()).update(k for k in e if not k.startswith("Timing/"))
    return keys


def test_recording_matches_what_the_trainer_writes_today(events: list[dict[str, Any]], tmp_path: Path) -> None:
    from tests.core.training.test_loop import MINIBATCH_KIMG, make_dataset, make_trainer, run_trainer

    data = make_dataset(tmp_path / "blobs")
    run_dir = tmp_path / "run"
    trainer = make_trainer(data, run_dir, kimg=12 * MINIBATCH_KIMG, tick=4 * MINIBATCH_KIMG, aug="ada",
                           target=0.6, ada_interval=1, ada_kimg=1, snap=1, preview_ticks=1)
    assert run_trainer(trainer) == "finished"
    fresh = _keys_by_kind(RunReader(run_dir).poll_events())
    recorded = _keys_by_kind(events)
    for kind in ("status", "stats", "tick", "preview", "snapshot"):
        assert kind in fresh, f"today's trainer wrote no {kind!r} events"
        assert recorded[kind] == fresh[kind], (
            f"{kind!r} events: only in the recording {sorted(recorded[kind] - fresh[kind])}, only written today "
            f"{sorted(fresh[kind] - recorded[kind])}; re-record with scripts/record_demo_run.py"
        )
