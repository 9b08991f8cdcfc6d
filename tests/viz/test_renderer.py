"""The seed lattice, grid assembly and the latest-wins render worker."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from viz.renderer import (
    LATTICE_WIDTH,
    LoadedModel,
    Renderer,
    RenderRequest,
    lattice_point,
    lattice_seed,
    lattice_z,
    model_from_generator,
    render_images,
)


def test_lattice_seed_and_point_are_inverse() -> None:
    for seed in (0, 1, 999, 1000, 123456, 2**32 - 1):
        x, y = lattice_point(seed)
        assert lattice_seed(int(x), int(y)) == seed
    assert lattice_seed(3, 2) == 2 * LATTICE_WIDTH + 3
    assert lattice_seed(LATTICE_WIDTH + 3, 2) == lattice_seed(3, 2)  # x wraps


def test_lattice_z_matches_generate_py_at_whole_points_and_blends_between() -> None:
    z_dim = 16
    z_a = np.random.RandomState(lattice_seed(5, 7)).randn(z_dim)
    z_b = np.random.RandomState(lattice_seed(6, 7)).randn(z_dim)
    z_c = np.random.RandomState(lattice_seed(5, 8)).randn(z_dim)
    np.testing.assert_array_equal(lattice_z(5.0, 7.0, z_dim), z_a)
    np.testing.assert_allclose(lattice_z(5.25, 7.0, z_dim), 0.75 * z_a + 0.25 * z_b)
    np.testing.assert_allclose(lattice_z(5.0, 7.5, z_dim), 0.5 * z_a + 0.5 * z_c)
    # Continuity: approaching the next lattice point from the left reaches its z.
    np.testing.assert_allclose(lattice_z(5.999999, 7.0, z_dim), z_b, atol=1e-5)


def test_render_request_seeds_follow_the_lattice() -> None:
    req = RenderRequest("m", x=998.4, y=3.2, grid_w=3, grid_h=2)
    # x wraps within its row: column 1000 is column 0 again.
    assert req.seeds() == [3998, 3999, 3000, 4998, 4999, 4000]


def test_render_images_truncation_and_mixing(fixture_generator: torch.nn.Module) -> None:
    model = model_from_generator(fixture_generator, "fixture")
    base = RenderRequest(model.key, x=5, y=0)
    with torch.inference_mode():
        a = render_images(model, base)
        again = render_images(model, base)
        full_trunc = render_images(model, RenderRequest(model.key, x=9, y=3, psi=0.0))
        avg = render_images(model, RenderRequest(model.key, x=5, y=0, psi=0.0))
        mixed_all = render_images(
            model, RenderRequest(model.key, x=5, y=0, mix_seed=7, mix_indices=tuple(range(model.num_ws)))
        )
        seven = render_images(model, RenderRequest(model.key, x=7, y=0))
        grid = render_images(model, RenderRequest(model.key, x=5, y=0, grid_w=2, grid_h=2))
    assert a.shape == (32, 32, 3)
    np.testing.assert_array_equal(a, again)  # const noise: deterministic
    np.testing.assert_array_equal(full_trunc, avg)  # psi = 0: every seed becomes the average image
    np.testing.assert_array_equal(mixed_all, seven)  # mixing every layer = the mixing seed's image
    np.testing.assert_array_equal(grid[:32, :32], a)  # top-left grid cell is the current seed


class _SlowModel(torch.nn.Module):
    """Stands in for a generator whose synthesis takes a while, to exercise the worker."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.z_dim, self.c_dim, self.w_dim, self.num_ws, self.img_resolution, self.img_channels = (
            4,
            0,
            4,
            2,
            4,
            3,
        )
        self.started = threading.Event()
        self.gate = threading.Event()  # a render finishes only once the test opens it (set)
        self.gate.set()

    def mapping(self, z, c, truncation_psi=1.0, truncation_cutoff=None, skip_w_avg_update=True):
        return z[:, None, :].repeat(1, 2, 1)

    def synthesis(self, ws, noise_mode="const"):
        self.started.set()
        if not self.gate.wait(60):
            raise TimeoutError("the test never opened the gate")
        time.sleep(self.delay)
        return torch.tanh(ws[:, :1, :1, :1]).expand(-1, 3, 4, 4)


def _slow_loaded(delay: float) -> LoadedModel:
    m = _SlowModel(delay)
    return LoadedModel(m, "slow", "slow@1", 4, 0, 4, 2, 4, 3)


def _drain(r: Renderer, timeout: float = 10.0) -> list:
    results, deadline = [], time.monotonic() + timeout
    assert r.wait_idle(timeout)
    while time.monotonic() < deadline:
        statuses, res = r.poll()
        if res is None and not statuses:
            break
        if res is not None:
            results.append(res)
    return results


def test_newest_request_wins_and_incompatible_stale_results_are_dropped() -> None:
    model = _slow_loaded(0.3)
    r = Renderer(loader=lambda path: model)
    try:
        r.load("slow")
        assert r.wait_idle(10)
        statuses, _ = r.poll()
        assert statuses[0].model is model
        model.G.gate.clear()  # the first render below lasts until all three later requests are in
        r.submit(RenderRequest(model.key, x=1))
        assert model.G.started.wait(5)
        # While the first render runs, three more arrive: only the newest is rendered next.
        r.submit(RenderRequest(model.key, x=2, grid_w=2))
        r.submit(RenderRequest(model.key, x=3, grid_w=2))
        r.submit(RenderRequest(model.key, x=4, grid_w=2))
        model.G.gate.set()
        results = _drain(r)
        # The first one (1x1) was superseded by a 2x1 request: a different layout, dropped.
        assert [res.request.x for res in results] == [4]
        assert r.dropped == 1
    finally:
        r.close()


def test_superseded_result_of_the_same_view_is_still_shown() -> None:
    model = _slow_loaded(0.3)
    r = Renderer(loader=lambda path: model)
    try:
        r.load("slow")
        assert r.wait_idle(10)
        r.poll()
        r.submit(RenderRequest(model.key, x=1))
        assert model.G.started.wait(5)
        r.submit(RenderRequest(model.key, x=1.5))
        seen = []
        assert r.wait_idle(10)
        _, res = r.poll()
        seen.append(res.request.x)
        assert seen == [1.5]  # poll hands out the newest finished result
        assert r.dropped == 0
    finally:
        r.close()


def test_gui_thread_never_waits_for_a_render() -> None:
    model = _slow_loaded(1.0)
    r = Renderer(loader=lambda path: model)
    try:
        r.load("slow")
        assert r.wait_idle(10)
        r.poll()
        # The render is held until the GUI thread's 100 submits and polls are done: a GUI thread
        # that waited for it would never get there (a timer opens the gate after 30 s, so a broken
        # renderer fails here instead of hanging). No time bound: a loaded machine cannot break it.
        model.G.gate.clear()
        timer = threading.Timer(30, model.G.gate.set)
        timer.start()
        r.submit(RenderRequest(model.key, x=1))
        assert model.G.started.wait(5)
        for i in range(100):
            r.submit(RenderRequest(model.key, x=2 + i))
            r.poll()
        assert not model.G.gate.is_set(), "the GUI thread's submit/poll waited for the render"
        timer.cancel()
        model.G.gate.set()
    finally:
        r.close()


def test_load_errors_are_reported_not_raised(tmp_path) -> None:
    def bad(path: str) -> LoadedModel:
        raise ValueError(f"{path}: not a snapshot\nsecond line")

    r = Renderer(loader=bad)
    try:
        r.load(str(tmp_path / "x.pkl"))
        assert r.wait_idle(10)
        statuses, _ = r.poll()
        assert statuses[0].model is None
        assert statuses[0].error == f"ValueError: {tmp_path / 'x.pkl'}: not a snapshot"
    finally:
        r.close()


@pytest.mark.parametrize("bad_key", ["other@1"])
def test_requests_for_a_model_not_loaded_render_nothing(bad_key: str) -> None:
    model = _slow_loaded(0.0)
    r = Renderer(loader=lambda path: model)
    try:
        r.load("slow")
        r.submit(RenderRequest(bad_key))
        assert r.wait_idle(10)
        assert r.poll()[1] is None
    finally:
        r.close()
