"""AdaController: direction and size of the p step, clamping, interval counting, modes, resume, DDP."""

from __future__ import annotations

import json
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from core.augment import AdaController, AugmentPipe


def signs(pos: int, neg: int) -> torch.Tensor:
    return torch.cat([torch.ones(pos), -torch.ones(neg)])


def test_p_rises_by_the_exact_step_when_r_t_is_above_target():
    ctrl = AdaController(target=0.6, interval=4, kimg=500)
    updated = [ctrl.update(signs(8, 0), batch_size=64, cur_nimg=64 * (i + 1)) for i in range(4)]
    assert updated == [False, False, False, True]
    assert ctrl.r_t == 1.0
    assert ctrl.p == pytest.approx(64 * 4 / 500_000)  # 5.12e-4
    assert ctrl.history == [(0.256, ctrl.p, 1.0)]


def test_p_falls_when_r_t_is_below_target_and_holds_at_target():
    ctrl = AdaController(target=0.6, interval=2, kimg=100, p=0.5)
    for _ in range(2):
        ctrl.update(signs(1, 3), batch_size=32, cur_nimg=0)  # r_t = -0.5
    assert ctrl.r_t == -0.5 and ctrl.p == pytest.approx(0.5 - 32 * 2 / 100_000)
    before = ctrl.p
    for _ in range(2):
        ctrl.update(signs(4, 1), batch_size=32, cur_nimg=0)  # r_t = 0.6 exactly
    assert ctrl.r_t == pytest.approx(0.6) and ctrl.p == before


def test_r_t_is_the_mean_over_the_whole_interval_including_observe():
    ctrl = AdaController(target=0.0, interval=3)
    ctrl.update(signs(3, 1), batch_size=4, cur_nimg=4)
    ctrl.observe(signs(0, 4))  # a second real pass in the same iteration (R1)
    ctrl.update(signs(2, 2), batch_size=4, cur_nimg=8)
    ctrl.update(None, batch_size=4, cur_nimg=12)
    assert ctrl.r_t == pytest.approx((3 - 1 + 0 - 4 + 2 - 2) / 12)


def test_clamped_to_p_max_and_zero():
    ctrl = AdaController(target=0.6, interval=1, kimg=0.001, p_max=0.8)  # step 1.0 per image
    ctrl.update(signs(1, 0), batch_size=1, cur_nimg=1)
    assert ctrl.p == 0.8
    ctrl.p_max = 0.5  # lowering the cap pulls p down at once
    assert ctrl.p == 0.5
    for _ in range(3):
        ctrl.update(signs(0, 1), batch_size=1, cur_nimg=1)
    assert ctrl.p == 0.0


def test_no_observation_in_an_interval_keeps_p_and_r_t():
    ctrl = AdaController(interval=2, p=0.3)
    assert not ctrl.update(None, 8, 8) and not ctrl.update(None, 8, 16)
    assert ctrl.p == 0.3 and ctrl.r_t is None and ctrl.history == []


def test_fixed_mode_keeps_p_but_measures_r_t():
    ctrl = AdaController(mode="fixed", p=0.25, interval=1)
    ctrl.update(signs(5, 0), 16, 16)
    assert ctrl.p == 0.25 and ctrl.r_t == 1.0 and len(ctrl.history) == 1
    ctrl.set_fixed(0.4)
    assert ctrl.mode == "fixed" and ctrl.p == 0.4


def test_noaug_mode_keeps_p_zero():
    ctrl = AdaController(mode="noaug", p=0.7, interval=1)
    ctrl.update(signs(5, 0), 16, 16)
    assert ctrl.p == 0 and ctrl.r_t == 1.0
    with pytest.raises(ValueError, match="noaug"):
        ctrl.p = 0.2
    ctrl.mode = "ada"
    ctrl.update(signs(5, 0), 16, 16)
    assert ctrl.p > 0


def test_setters_validate_with_clear_messages():
    ctrl = AdaController()
    ctrl.target = 0.8
    assert ctrl.target == 0.8
    with pytest.raises(ValueError, match="target must be in"):
        ctrl.target = 1.5
    with pytest.raises(ValueError, match="mode must be one of ada, fixed, noaug"):
        ctrl.mode = "apa"
    with pytest.raises(ValueError, match="p must be"):
        ctrl.p = -0.1
    with pytest.raises(ValueError, match="interval"):
        AdaController(interval=0)


def test_apply_copies_p_into_the_pipe():
    ctrl, pipe = AdaController(p=0.42), AugmentPipe.from_preset("bgc", p=0)
    ctrl.apply(pipe)
    assert float(pipe.p) == pytest.approx(0.42)


def test_state_round_trip_continues_identically():
    torch.manual_seed(0)
    feed = [torch.randn(16).sign() + 0.3 for _ in range(40)]  # values need not be exact signs
    a = AdaController(target=0.1, interval=4, kimg=1)
    for i, s in enumerate(feed[:10]):  # stop mid-interval, with pending statistics
        a.update(s, 16, 16 * (i + 1))
    b = AdaController()
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    for i, s in enumerate(feed[10:], start=10):
        a.update(s, 16, 16 * (i + 1))
        b.update(s, 16, 16 * (i + 1))
    assert a.state_dict() == b.state_dict() and a.history == b.history and len(a.history) == 10
    with pytest.raises(ValueError, match="state version"):
        b.load_state_dict({"version": 99})


def _ddp_worker(rank: int, world: int, init_file: str, results: dict) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        ctrl = AdaController(target=0.6, interval=2, kimg=1, p=0.5)
        local = signs(8, 0) if rank == 0 else signs(0, 24)  # rank 0 alone would raise p
        for _ in range(2):
            ctrl.update(local, batch_size=64, cur_nimg=64)
        results[rank] = (ctrl.p, ctrl.r_t)
    finally:
        dist.destroy_process_group()


def test_ddp_ranks_agree_on_the_all_reduced_r_t(tmp_path, monkeypatch):
    if "GLOO_SOCKET_IFNAME" not in os.environ:
        monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")  # for this test only: later tests' torchrun must not inherit it
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), results), nprocs=2, join=True)
        results = dict(results)
    expected_r_t = (2 * 8 - 2 * 24) / (2 * 32)
    expected_p = 0.5 - 64 * 2 / 1000
    for rank in (0, 1):
        assert results[rank][1] == pytest.approx(expected_r_t)
        assert results[rank][0] == pytest.approx(expected_p)
