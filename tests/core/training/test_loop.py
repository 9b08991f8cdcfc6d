"""The training loop in-process on a tiny configuration: schedule, p, the run-directory stream, control."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from core.data import ImageDataset
from core.networks.checkpoint import load_checkpoint, load_resume_state
from core.rundir import RunReader, layout
from core.rundir.control import ControlRequest, write_control
from core.training.config import DataSpec, TrainingOptions, check_options, resolve_spec
from core.training.distributed import DistEnv
from core.training.loop import Trainer

REPO = Path(__file__).resolve().parents[3]
# 16 px, 32 channels at most, batch 4: a few hundredths of a second per minibatch.
TINY = dict(cfg="cpu32", cbase=256, cmax=32, batch=4, workers=0, device="cpu", metrics=[], snap=0)
MINIBATCH_KIMG = 0.004


def make_dataset(folder: Path, n: int = 32, res: int = 16, seed: int = 0) -> Path:
    """Blobs on a dark background: structured enough for D to tell reals from fakes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:res, :res]
    for i in range(n):
        cy, cx = rng.uniform(3, res - 3, size=2)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * rng.uniform(1.5, 3.0) ** 2))
        color = rng.uniform(0.3, 1.0, size=3)
        img = (blob[..., None] * color * 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"img{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "blobs")


def make_trainer(data: Path, run_dir: Path | None, resume: str | None = None, given: Collection[str] = (),
                 **overrides: Any) -> Trainer:
    opts = TrainingOptions(outdir=str(run_dir.parent if run_dir else "."), data=str(data),
                           **{**TINY, **overrides})
    check_options(opts)
    dataset = ImageDataset(opts.data, mirror=opts.mirror, subset=opts.subset, seed=opts.seed, use_labels=opts.cond)
    spec = resolve_spec(opts, DataSpec(path=opts.data, use_labels=opts.cond, resolution=dataset.resolution,
                                       channels=dataset.num_channels, label_dim=dataset.label_dim,
                                       num_images=len(dataset)), 1, "cpu")
    return Trainer(spec, run_dir, DistEnv(), dataset, resume=resume, given=given)


def run_trainer(trainer: Trainer) -> str:
    try:
        return trainer.run()
    finally:
        trainer.close()


def events(run_dir: Path) -> list[dict[str, Any]]:
    return RunReader(run_dir).poll_events()


def test_phases_run_at_their_intervals(tiny_data: Path, tmp_path: Path) -> None:
    trainer = make_trainer(tiny_data, tmp_path / "run", kimg=16 * MINIBATCH_KIMG, tick=100)
    assert [p.name for p in trainer.phases] == ["Gmain", "Greg", "Dmain", "Dreg"]
    from core.training.stats import StatsReader

    reader = StatsReader(trainer.bank)
    run_trainer(trainer)
    stats = reader.read()
    assert trainer.cur_nimg == 64 and trainer.batch_idx == 16
    # One timing sample per phase execution: Greg every 4 minibatches, Dreg every 16.
    assert stats["Timing/Gmain"].num == 16 and stats["Timing/Dmain"].num == 16
    assert stats["Timing/Greg"].num == 4 and stats["Timing/Dreg"].num == 1
    # PL on half the batch (shrink 2), R1 on every real of its minibatch.
    assert stats["Loss/pl_penalty"].num == 4 * 2 and stats["Loss/r1_penalty"].num == 4
    for name in ("Loss/G/loss", "Loss/D/loss", "Loss/scores/real", "Loss/signs/real"):
        assert np.isfinite(stats[name].mean)


def test_training_changes_G_and_G_ema_lags(tiny_data: Path, tmp_path: Path) -> None:
    trainer = make_trainer(tiny_data, tmp_path / "run", kimg=8 * MINIBATCH_KIMG, tick=100)
    before = {k: v.clone() for k, v in trainer.G.state_dict().items()}
    run_trainer(trainer)
    after, ema = trainer.G.state_dict(), trainer.G_ema.state_dict()
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(moved) > len(before) // 2
    key = "synthesis.b16.conv1.weight"
    # G_ema sits between the start and G (an average of G's path), not on G itself.
    assert not torch.equal(ema[key], after[key])
    assert (ema[key] - before[key]).norm() < (after[key] - before[key]).norm()


def test_freeze_d_keeps_the_first_layers_fixed_and_trains_the_rest(tiny_data: Path, tmp_path: Path) -> None:
    trainer = make_trainer(tiny_data, tmp_path / "run", kimg=8 * MINIBATCH_KIMG, tick=100, freezed=2)
    frozen = ["b16.fromrgb.weight", "b16.fromrgb.bias", "b16.conv0.weight", "b16.conv0.bias"]
    params = dict(trainer.D.named_parameters())
    assert not any(name in params for name in frozen)  # constants: no gradient, no optimiser state
    assert "b16.conv1.weight" in params and "b8.conv0.weight" in params
    before = {k: v.clone() for k, v in trainer.D.state_dict().items()}
    run_trainer(trainer)
    after = trainer.D.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    assert not torch.equal(before["b16.conv1.weight"], after["b16.conv1.weight"])
    assert not torch.equal(before["b8.conv0.weight"], after["b8.conv0.weight"])


@pytest.mark.parametrize("interval", [None, 8])
def test_ada_p_moves_in_fixed_steps_and_respects_p_max(tiny_data: Path, tmp_path: Path, interval: int | None) -> None:
    trainer = make_trainer(tiny_data, tmp_path / "run", kimg=24 * MINIBATCH_KIMG, tick=100, aug="ada",
                           ada_kimg=0.2, p_max=0.2, ada_interval=interval)
    run_trainer(trainer)
    history = trainer.aug.controller.history
    every = interval or 4  # the public default: every 4 minibatches
    assert len(history) == 24 // every
    step = 4 * every / (0.2 * 1000)  # batch * interval / (ada_kimg * 1000)
    ps = [0.0] + [p for _, p, _ in history]
    for (prev, cur), (_, _, r_t) in zip(zip(ps, ps[1:], strict=False), history, strict=True):
        expected = min(max(prev + np.sign(r_t - 0.6) * step, 0.0), 0.2)
        assert cur == pytest.approx(expected)
    assert max(ps) == pytest.approx(0.2)  # D overfits the 32 blobs at once: p climbs to the cap
    assert trainer.aug.pipe is not None and float(trainer.aug.pipe.p) == pytest.approx(trainer.aug.p)


def test_live_speed_is_measured_over_a_window_not_per_stats_event(tiny_data: Path, tmp_path: Path) -> None:
    from core.training.telemetry import SPEED_WINDOW_S

    run_dir = tmp_path / "run"
    trainer = make_trainer(tiny_data, run_dir, kimg=4 * MINIBATCH_KIMG, tick=100)
    try:
        trainer.telemetry.speed_samples = deque([(100.0, 0)])
        for now, nimg in ((102.0, 64), (104.0, 128), (100.0 + SPEED_WINDOW_S + 5, 192)):
            trainer.cur_nimg = nimg
            trainer.telemetry.emit(now)
        trainer.control.paused = True  # while paused, the window holds idle time: no speed is reported
        trainer.telemetry.emit(100.0 + SPEED_WINDOW_S + 15)
    finally:
        trainer.close()
    stats = [e for e in events(run_dir) if e["kind"] == "stats"]
    speeds = [e["Timing/sec_per_kimg"] for e in stats if "Timing/sec_per_kimg" in e]
    # 2 s per 64 images from the start; then samples older than the window are dropped, keeping
    # the newest one at least SPEED_WINDOW_S old: (125 - 104) s for 64 images.
    assert speeds == pytest.approx([2 / 0.064, 4 / 0.128, (SPEED_WINDOW_S + 1) / 0.064])
    assert len(stats) == 4


class FakeClock:
    """Stands in for the training modules' ``time``: monotonic() moves only when someone sleeps."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def time(self) -> float:  # wall-clock stamps of events stay real
        return time.time()

    def perf_counter(self) -> float:
        return time.perf_counter()


def test_a_pause_is_left_out_of_the_live_speed(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.training.run_control as run_control
    import core.training.telemetry as telemetry

    run_dir = tmp_path / "run"
    trainer = make_trainer(tiny_data, run_dir, kimg=4 * MINIBATCH_KIMG, tick=100)
    clock = FakeClock()
    for module in (run_control, telemetry):  # exact times: a loaded machine cannot stretch them
        monkeypatch.setattr(module, "time", clock)
    polls = []

    def poll_control(kimg: float, force: bool) -> None:  # the heartbeat goes on while paused, and right after
        polls.append(force)
        trainer.telemetry.emit(clock.monotonic())
        clock.sleep(0.3)
        trainer.control.paused = False
        trainer.telemetry.emit(clock.monotonic())  # resumed, before pause() moves the old samples

    try:
        start = clock.monotonic()
        trainer.telemetry.speed_samples = deque([(start, 0)])
        clock.sleep(1.0)  # 1 s of training
        trainer.cur_nimg = 64
        trainer.telemetry.emit(clock.monotonic())
        trainer.control.paused = True
        trainer.control.check = poll_control
        trainer.pause()  # paused for PAUSE_POLL_S + 0.3 s
        clock.sleep(0.5)  # 0.5 s more of training
        trainer.cur_nimg = 128
        trainer.telemetry.emit(clock.monotonic())
    finally:
        trainer.close()
    times = [t for t, _ in trainer.telemetry.speed_samples]
    assert polls and times == sorted(times)
    stats = [e for e in events(run_dir) if e["kind"] == "stats"]
    assert "Timing/sec_per_kimg" not in stats[1]  # the one taken while paused
    # 128 images in 1.5 s of training; with the pause counted it would be 1.8 s + PAUSE_POLL_S.
    assert stats[-1]["Timing/sec_per_kimg"] == pytest.approx(1.5 / 0.128)


def test_run_directory_stream(tiny_data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    trainer = make_trainer(tiny_data, run_dir, kimg=12 * MINIBATCH_KIMG, tick=4 * MINIBATCH_KIMG, snap=2,
                           preview_ticks=1, stats_interval=0.01, live_interval=0.01)
    assert run_trainer(trainer) == "finished"
    evs = events(run_dir)
    kinds = [e["kind"] for e in evs]
    states = [e["state"] for e in evs if e["kind"] == "status"]
    assert states == ["started", "finished"]
    assert kinds.count("tick") == 4  # after minibatch 1, 5, 9 and the final one (12)
    stats = [e for e in evs if e["kind"] == "stats"]
    assert len(stats) > kinds.count("tick")  # every tick writes its stats, and the heartbeat more
    for key in ("Progress/augment", "Loss/G/loss", "Loss/D/loss", "Timing/sec_per_kimg"):
        assert any(key in e for e in stats), key
    assert any("Loss/r1_penalty" in e for e in stats) and any("Loss/pl_penalty" in e for e in stats)
    ticks = [e for e in evs if e["kind"] == "tick"]
    assert [t["tick"] for t in ticks] == [0, 1, 2, 3]
    assert ticks[-1]["kimg"] == pytest.approx(12 * MINIBATCH_KIMG)
    assert "Loss/signs/real" in ticks[-1]["stats"] and "Progress/rt" in ticks[-1]
    previews = {e["image"] for e in evs if e["kind"] == "preview"}
    assert previews == {"fakes", "reals-augmented"}
    for e in evs:
        if e["kind"] == "preview":
            assert (run_dir / e["file"]).is_file()
    # Ticks are shorter than 1 kimg: the first file of kimg 0 keeps the public name, the later ones
    # get thousandths; none overwrites another.
    fakes = [e["file"] for e in evs if e["kind"] == "preview" and e["image"] == "fakes"]
    assert fakes == ["previews/fakes-000000.png", "previews/fakes-000000.020.png",
                     "previews/fakes-000000.036.png", "previews/fakes-000000.048.png"]
    kept = [e["snapshot"] for e in evs if e["kind"] == "snapshot" and e["snapshot"].startswith("network")]
    assert kept == ["network-snapshot-000000", "network-snapshot-000000.036", "network-snapshot-000000.048"]
    assert [load_checkpoint(run_dir / "snapshots" / k).meta["cur_nimg"] for k in kept] == [4, 36, 48]
    # Snapshots: kept ones at ticks 0 and 2 and the end; latest.json names a loadable one.
    latest = json.loads((run_dir / "snapshots" / "latest.json").read_text())
    ckpt = load_checkpoint(run_dir / "snapshots" / latest["snapshot"])
    assert ckpt.meta["cur_nimg"] == 48 and ckpt.G_ema is not None
    state = load_resume_state(run_dir / "snapshots" / latest["snapshot"])
    assert state["cur_nimg"] == 48 and state["cur_tick"] == 4
    # Exactly one rolling checkpoint survives (each replaces the previous one).
    assert len(list((run_dir / "snapshots").glob("checkpoint-*.resume.json"))) == 1
    live = RunReader(run_dir).live_weights()
    assert live is not None and live.kimg == pytest.approx(12 * MINIBATCH_KIMG)
    assert torch.equal(live.state_dict["synthesis.b16.conv1.weight"],
                       trainer.G_ema.state_dict()["synthesis.b16.conv1.weight"])
    assert any(p.name.startswith("events.out.tfevents") for p in (run_dir / "tb").iterdir())


class StallMeter:
    """How late a bare sleeping thread wakes: what the process as a whole could not run for.

    No Python thread can be more punctual than that (a C call holding the GIL, an import, a
    collection of the whole heap, or a busy machine stalls them all), so lateness of our own
    threads is judged beyond it.
    """

    def __init__(self, step: float = 0.01) -> None:
        self.step = step
        self.wakes: list[tuple[float, float]] = []  # (time asleep from, lateness)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.time()
            time.sleep(self.step)
            self.wakes.append((t0, max(time.time() - t0 - self.step, 0.0)))

    def __enter__(self) -> StallMeter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def worst_between(self, a: float, b: float) -> float:
        return max((late for t0, late in self.wakes if t0 < b and t0 + self.step + late > a), default=0.0)


def test_stats_events_keep_their_interval_however_slow_a_minibatch(tiny_data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    interval, slow_round = 0.1, 0.6
    trainer = make_trainer(tiny_data, run_dir, kimg=3 * MINIBATCH_KIMG, tick=100, stats_interval=interval)
    accumulate = trainer.loss.accumulate_gradients

    def slow(*args: Any, **kwargs: Any) -> None:  # a round that takes longer than the interval
        time.sleep(slow_round)
        accumulate(*args, **kwargs)

    trainer.loss.accumulate_gradients = slow  # type: ignore[method-assign]
    with StallMeter() as stalls:
        run_trainer(trainer)
    stats = [e for e in events(run_dir) if e["kind"] == "stats"]
    assert len(stats) >= 3 * 2 * slow_round / interval / 2  # half the ideal count: the heartbeat may run late
    # Stats tied to the loop would leave gaps of a whole slow round (0.6 s); the heartbeat's gaps
    # are the interval (0.1 s) plus scheduling. The bound sits halfway, 0.35 s, beyond whatever
    # stalled the whole process (measured in this test by a bare sleeping thread).
    late = [(b["t"] - a["t"], stalls.worst_between(a["t"], b["t"])) for a, b in zip(stats, stats[1:], strict=False)]
    assert all(gap < (interval + slow_round) / 2 + stall for gap, stall in late), max(late)
    assert all("Progress/augment" in e and "Progress/tick" in e for e in stats)


def test_control_changes_augmentation_and_logs_seq(tiny_data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    trainer = make_trainer(tiny_data, run_dir, kimg=6 * MINIBATCH_KIMG, tick=100, aug="ada")
    written = write_control(run_dir, ControlRequest(aug_mode="fixed", fixed_p=0.3, target=0.5,
                                                    aug_multipliers={"rotate90": 0.0}))
    run_trainer(trainer)
    controls = [e for e in events(run_dir) if e["kind"] == "control"]
    assert len(controls) == 1 and controls[0]["seq"] == written.seq
    applied = controls[0]["applied"]
    assert applied["aug_mode"] == "fixed" and applied["fixed_p"] == pytest.approx(0.3)
    assert applied["target"] == 0.5 and applied["aug_multipliers"] == {"rotate90": 0.0}
    assert trainer.aug.p == pytest.approx(0.3) and trainer.aug.controller.mode == "fixed"
    assert trainer.aug.pipe is not None and trainer.aug.pipe.multipliers()["rotate90"] == 0.0
    assert float(trainer.aug.pipe.p) == pytest.approx(0.3)


def test_control_p_max_caps_p(tiny_data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    trainer = make_trainer(tiny_data, run_dir, kimg=2 * MINIBATCH_KIMG, tick=100, aug="fixed", p=0.5)
    write_control(run_dir, ControlRequest(p_max=0.2))
    run_trainer(trainer)
    assert trainer.aug.p == pytest.approx(0.2)


class _Watcher(threading.Thread):
    """Runs ``action`` as soon as an event matching ``predicate`` shows up. At its deadline it stops
    the trainer (which would otherwise stay paused, or train on, forever) and join() fails loudly."""

    def __init__(self, run_dir: Path, predicate: Any, action: Any, timeout: float = 120) -> None:
        super().__init__(daemon=True)
        self.run_dir, self.predicate, self.action, self.timeout = run_dir, predicate, action, timeout
        self.timed_out = False

    def run(self) -> None:
        reader = RunReader(self.run_dir)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if any(self.predicate(e) for e in reader.poll_events()):
                self.action()
                return
            time.sleep(0.02)
        self.timed_out = True
        write_control(self.run_dir, ControlRequest(stop=True, pause=False))

    def join(self, timeout: float | None = None) -> None:
        super().join(self.timeout + 30 if timeout is None else timeout)
        if self.is_alive() or self.timed_out:
            pytest.fail(f"the awaited event did not show up within {self.timeout:.0f} s (the trainer was stopped)")


def _when_event(run_dir: Path, predicate: Any, action: Any) -> _Watcher:
    watcher = _Watcher(run_dir, predicate, action)
    watcher.start()
    return watcher


def test_control_stop_snapshots_and_exits(tiny_data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    trainer = make_trainer(tiny_data, run_dir, kimg=1000, tick=2 * MINIBATCH_KIMG)
    thread = _when_event(run_dir, lambda e: e["kind"] == "tick" and e["tick"] == 1,
                         lambda: write_control(run_dir, ControlRequest(stop=True)))
    status = run_trainer(trainer)
    thread.join()
    assert status == "stopped"
    evs = events(run_dir)
    assert [e["state"] for e in evs if e["kind"] == "status"] == ["started", "stopped"]
    assert [e["seq"] for e in evs if e["kind"] == "control"] == [1]
    stopped_nimg = trainer.cur_nimg
    assert 12 <= stopped_nimg < 1000  # after tick 1 (minibatch 3), within a tick or so
    last = [e["snapshot"] for e in evs if e["kind"] == "snapshot"][-1]
    assert last == "network-snapshot-000000"
    assert load_resume_state(run_dir / "snapshots" / last)["cur_nimg"] == stopped_nimg


def test_control_stop_before_the_first_minibatch(tiny_data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    trainer = make_trainer(tiny_data, run_dir, kimg=1000, tick=100)
    write_control(run_dir, ControlRequest(stop=True))
    assert run_trainer(trainer) == "stopped" and trainer.cur_nimg == 0
    assert load_resume_state(run_dir / "snapshots" / "network-snapshot-000000")["cur_nimg"] == 0


def test_control_pause_then_resume(tiny_data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    trainer = make_trainer(tiny_data, run_dir, kimg=4 * MINIBATCH_KIMG, tick=100)
    write_control(run_dir, ControlRequest(pause=True))
    thread = _when_event(run_dir, lambda e: e.get("state") == "paused",
                         lambda: (time.sleep(0.5), write_control(run_dir, ControlRequest(pause=False))))
    t0 = time.monotonic()
    status = run_trainer(trainer)
    thread.join()
    assert status == "finished"
    assert time.monotonic() - t0 >= 0.5
    evs = events(run_dir)
    assert [e["state"] for e in evs if e["kind"] == "status"] == ["started", "paused", "resumed", "finished"]
    assert next(e["kimg"] for e in evs if e.get("state") == "paused") == 0  # the request came before the start
    assert [e["seq"] for e in evs if e["kind"] == "control"] == [1, 2]
    assert trainer.cur_nimg == 16


def test_snapshot_now_writes_a_kept_snapshot_mid_tick(tiny_data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    trainer = make_trainer(tiny_data, run_dir, kimg=3 * MINIBATCH_KIMG, tick=100)
    trainer.end_tick(final=False)  # tick 0 now, so the request below lands mid-tick
    write_control(run_dir, ControlRequest(snapshot_now=True))
    run_trainer(trainer)
    snaps = [e for e in events(run_dir) if e["kind"] == "snapshot"]
    assert any(e["snapshot"].startswith("network-snapshot") and e["kimg"] == pytest.approx(MINIBATCH_KIMG)
               for e in snaps)


def test_metrics_run_at_kept_snapshots(tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import core.metrics

    real_options = core.metrics.MetricOptions
    monkeypatch.setattr(core.metrics, "MetricOptions", lambda **kw: real_options(**{**kw, "num_gen": 64}))
    monkeypatch.setenv("ADA_STUDIO_CACHE", str(tmp_path / "cache"))
    run_dir = tmp_path / "run"
    trainer = make_trainer(tiny_data, run_dir, kimg=2 * MINIBATCH_KIMG, tick=100, snap=1, metrics=["fd_offline"])
    run_trainer(trainer)
    metric_events = [e for e in events(run_dir) if e["kind"] == "metric"]
    assert [e["metric"] for e in metric_events] == ["fd_offline", "fd_offline"]  # tick 0 and the end
    assert all(np.isfinite(e["results"]["fd_offline"]) for e in metric_events)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["kimg"] for r in records] == [e["kimg"] for e in metric_events]
    assert records[0]["num_gen"] == 64


def test_cpu_default_metrics_run_at_every_kept_snapshot(tiny_data: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """No --metrics on the CPU: FD, KID, precision/recall, copies and leaks at every kept snapshot,
    as "metric" events, metrics.jsonl lines, log lines (log.txt gets them through the CLI's handler)
    and TensorBoard scalars."""
    import logging

    import core.metrics
    from core.augment import PRESETS
    from core.training.config import CPU_METRICS

    real_options = core.metrics.MetricOptions
    monkeypatch.setattr(core.metrics, "MetricOptions", lambda **kw: real_options(**{**kw, "num_gen": 48}))
    monkeypatch.setenv("ADA_STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ADA_INCEPTION_WEIGHTS", raising=False)
    run_dir = tmp_path / "run"
    trainer = make_trainer(tiny_data, run_dir, kimg=4 * MINIBATCH_KIMG, tick=MINIBATCH_KIMG, snap=2, metrics=None)
    assert trainer.spec.metrics == list(CPU_METRICS)
    with caplog.at_level(logging.INFO, logger="core.training.loop"):
        assert run_trainer(trainer) == "finished"
    metric_events = [e for e in events(run_dir) if e["kind"] == "metric"]
    kept = [e["kimg"] for e in events(run_dir) if e["kind"] == "snapshot" and
            e["snapshot"].startswith(layout.SNAPSHOT_PREFIX)]
    assert len(kept) == 3  # ticks 0 and 2, and the end
    assert [e["metric"] for e in metric_events] == list(CPU_METRICS) * 3
    assert sorted({e["kimg"] for e in metric_events}) == pytest.approx(kept)
    by_name = {e["metric"]: e for e in metric_events[-len(CPU_METRICS):]}
    assert by_name["pr_offline"]["results"].keys() == {"pr_offline_precision", "pr_offline_recall"}
    assert 0 <= by_name["copies_offline"]["results"]["copies_offline"] <= 1
    ops = [op for op, m in PRESETS["bgc"].items() if m > 0]
    assert list(by_name["leaks_offline"]["results"]) == [f"leak/{op}" for op in ops]
    assert all(np.isfinite(v) and v >= 0 for e in metric_events for v in e["results"].values())
    assert all(e["snapshot"].startswith(layout.SNAPSHOT_PREFIX) for e in metric_events)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(r["metric"], r["results"], r["kimg"]) for r in records] == [
        (e["metric"], e["results"], e["kimg"]) for e in metric_events]
    assert "metric leaks_offline at kimg" in caplog.text and "leak/xflip" in caplog.text
    tb_files = list((run_dir / layout.TB).glob("events.out.tfevents.*"))
    assert tb_files and all(tag in tb_files[0].read_bytes() for tag in (b"Metrics/fd_offline", b"Metrics/leak/xflip",
                                                                        b"Metrics/copies_offline"))


def test_conditional_training_uses_dataset_labels(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "labelled", n=16)
    labels = [[f"img{i:03d}.png", i % 3] for i in range(16)]
    (data / "dataset.json").write_text(json.dumps({"labels": labels}))
    run_dir = tmp_path / "run"
    trainer = make_trainer(data, run_dir, kimg=2 * MINIBATCH_KIMG, tick=100, cond=True)
    assert trainer.G.c_dim == trainer.D.c_dim == 3
    all_z, all_c = trainer.draw_latents()
    assert all_c.shape == (4, 4, 3) and torch.all(all_c.sum(dim=2) == 1)  # one-hot labels for every phase
    assert run_trainer(trainer) == "finished"


def test_diffaug_run_finishes_and_its_reals_preview_shows_augmented_images(tiny_data: Path, tmp_path: Path) -> None:
    """--aug diffaug: no pipe, p stays 0, r_t is still measured, and the preview of what D sees as
    real is the DiffAugmented reals (translation and cutout fill with 0 of [-1, 1]: mid-grey pixels,
    which these blobs on black do not have)."""
    from core.io.images import image_grid

    run_dir = tmp_path / "run"
    trainer = make_trainer(tiny_data, run_dir, kimg=3 * MINIBATCH_KIMG, tick=MINIBATCH_KIMG, preview_ticks=1,
                           aug="diffaug", diffaug_policy="translation,cutout")
    assert trainer.aug.pipe is None and trainer.aug.diffaug is not None
    # The GUI's Send to training carries a p mode; DiffAugment has no p, so p stays where it is.
    write_control(run_dir, ControlRequest(aug_mode="ada", fixed_p=0.3, target=0.5))
    plain = image_grid(trainer._grid_reals, 8)
    assert run_trainer(trainer) == "finished"
    evs = events(run_dir)
    ticks = [e for e in evs if e["kind"] == "tick"]
    from core.rundir import schema

    assert len(ticks) == 3 and all(t[schema.STAT_P] == 0 for t in ticks)
    assert trainer.aug.p == 0 and trainer.aug.controller.mode == "noaug"
    assert schema.STAT_RT in ticks[-1]["stats"]  # r_t is still measured
    reals = [e["file"] for e in evs if e["kind"] == "preview" and e["image"] == "reals-augmented"]
    shown = np.asarray(Image.open(run_dir / reals[-1]))
    assert shown.shape == plain.shape and not np.array_equal(shown, plain)
    grey = (shown == 128).all(axis=2).mean()
    assert grey > 0.1 and (plain == 128).all(axis=2).mean() == 0
    from core.training.config import TrainingSpec

    replayed = TrainingSpec.from_dict(json.loads(json.dumps(trainer.spec.to_dict())))
    assert replayed.augment.diffaug_policy == "translation,cutout" and replayed.augment.pipe is None
