"""The recorded run GUI tests plot (scripts/record_demo_run.py) reads back whole through RunReader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.networks import Generator
from core.training.rundir import STAT_P, STAT_RT, RunReader

RUN = Path(__file__).resolve().parents[2] / "fixtures" / "recorded_run" / "00000-digits-demo"


@pytest.fixture(scope="module")
def reader() -> RunReader:
    assert RUN.is_dir(), f"{RUN} is missing; run scripts/record_demo_run.py"
    return RunReader(RUN)


def test_fixture_is_small_and_has_no_temp_files() -> None:
    files = [p for p in RUN.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 300 * 1024
    assert not [p for p in files if p.name.startswith(".")]


def test_fixture_events_tell_a_plausible_run(reader: RunReader) -> None:
    events = reader.poll_events()
    stats = [e for e in events if e["kind"] == "stats"]
    assert len(stats) == 200 and len([e for e in events if e["kind"] == "tick"]) == 10
    kimg = np.array([e["kimg"] for e in stats])
    p = np.array([e[STAT_P] for e in stats])
    r_t = np.array([e[STAT_RT] for e in stats])
    assert np.all(np.diff(kimg) > 0) and kimg[-1] == pytest.approx(40.0)
    assert p[0] < 0.05 and 0.25 < p[-20:].mean() < 0.35 and (p >= 0).all()
    assert abs(r_t[kimg > 10].mean() - 0.6) < 0.03 and r_t[0] < 0.3
    states = [e["state"] for e in events if e["kind"] == "status"]
    assert states == ["started", "paused", "resumed", "finished"]
    assert reader.control_applied(2) and not reader.control_applied(3)
    assert reader.status().state == "finished" and not reader.status().stale
    assert reader.options()["data"] == "builtin:digits"
    assert [m["metric"] for m in reader.metrics()] == ["fid50k_full"]
    assert len(reader.log_tail(100)) > 10


def test_fixture_previews_and_live_weights_load(reader: RunReader) -> None:
    for kind in ("fakes", "reals-augmented"):
        path = reader.latest_preview(kind)
        assert path is not None and path.name == f"{kind}-000040.png"
        with Image.open(path) as im:
            assert im.size == (128, 128)
    live = reader.live_weights()
    assert live is not None and live.kimg == 40.0
    G = Generator(**live.kwargs)
    G.load_state_dict(live.state_dict, strict=True)
    with torch.no_grad():
        img = G(torch.zeros([1, G.z_dim]), None, noise_mode="const")
    assert img.shape == (1, 3, 32, 32) and torch.isfinite(img).all()
