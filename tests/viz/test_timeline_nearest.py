"""The snapshot timeline and the nearest-neighbour panel without a window: the timeline of a forked
chain, choosing a snapshot, comparing two, and the search that flags a planted copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.rundir import layout
from tests.viz.recorded_chain import (
    A_PREVIEWS,
    B_PREVIEWS,
    B_START,
    Chain,
    planted_training_set,
    write_chain,
)
from viz.app import DEMO_SNAPSHOT
from viz.panel import OpenSource, Scene
from viz.widgets.nearest import NearestRequest, NearestState, find_nearest, nearest_request, shown_order
from viz.widgets.timeline import (
    CompareRequest,
    TimelineState,
    compare_grids,
    compare_request,
    load_frame,
    open_snapshot,
    read_timeline,
    refresh,
)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    return write_chain(tmp_path_factory.mktemp("chain"))


def test_the_timeline_follows_the_chain_and_cuts_what_the_fork_abandoned(chain: Chain) -> None:
    tl = read_timeline(chain.run_b)
    assert tl.runs == (chain.run_a, chain.run_b)
    expected = [k for k in A_PREVIEWS if k <= B_START] + list(B_PREVIEWS)
    assert [f.kimg for f in tl.frames] == expected == [0.0, 4.0, 8.0, 10.0, 14.0]
    for f in tl.frames:
        assert f.run_dir == (chain.run_a if f.kimg <= B_START else chain.run_b)
        assert f.fakes is not None and f.fakes.is_file() and f.reals is not None and f.reals.is_file()
        assert f.fakes.name.startswith(layout.PREVIEW_FAKES) and f.reals.name.startswith(layout.PREVIEW_REALS_AUGMENTED)
    assert [s.path for s in tl.snapshots] == list(chain.snapshots)
    assert [s.kimg for s in tl.snapshots] == [4.0, 8.0, 14.0]
    alone = read_timeline(chain.run_a)  # the ancestor on its own keeps its whole history
    assert alone.runs == (chain.run_a,) and [f.kimg for f in alone.frames] == list(A_PREVIEWS)


def test_the_scrubber_follows_the_newest_frame_and_choosing_a_snapshot_opens_it(chain: Chain) -> None:
    state = TimelineState()
    refresh(state, chain.run_b, now=0.0)
    assert state.index == 4 and (state.a, state.b) == (0, 2)
    load_frame(state)
    assert state.fakes is not None and state.fakes.shape == (4 * 32, 8 * 32, 3)
    assert state.fakes_path == state.timeline.frames[-1].fakes
    intent = open_snapshot(state, 1)
    assert intent == OpenSource(str(chain.snapshots[1]))
    assert state.timeline.frames[state.index].kimg == 8.0 and not state.follow
    load_frame(state)
    assert state.fakes_path == state.timeline.frames[2].fakes
    refresh(state, chain.run_b, now=10.0)  # re-listing keeps the chosen kimg
    assert state.timeline.frames[state.index].kimg == 8.0
    refresh(state, None, now=11.0)
    assert state.timeline.frames == () and state.a is None


def test_compare_renders_both_snapshots_on_the_same_seeds(chain: Chain) -> None:
    state = TimelineState()
    refresh(state, chain.run_b, now=0.0)
    state.seeds = "0-5"
    request = compare_request(state)
    assert request == CompareRequest(chain.snapshots[0], chain.snapshots[2], (0, 1, 2, 3, 4, 5), 1.0)
    result = compare_grids(request)
    assert result.grid_a.shape == result.grid_b.shape == (2 * 32, 4 * 32, 3)
    assert np.abs(result.grid_a.astype(int) - result.grid_b.astype(int)).mean() > 5  # two different generators
    same = compare_grids(CompareRequest(chain.snapshots[2], chain.snapshots[2], (0, 1), 1.0))
    assert np.array_equal(same.grid_a, same.grid_b)
    state.seeds = "0-x"
    assert compare_request(state) is None and state.form_error and "\n" not in state.form_error


def test_nearest_flags_the_planted_copy_and_only_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADA_STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ADA_INCEPTION_WEIGHTS", raising=False)
    data = planted_training_set(tmp_path / "train", copy_seed=3)
    request = NearestRequest(str(DEMO_SNAPSHOT.with_suffix(".json")), str(data), None, 0, (0, 1, 2, 3, 4, 5), 3,
                             1.0, None)  # fmt: skip
    result = find_nearest(request)
    assert [m.image for m in result.matches] == [0, 1, 2, 3, 4, 5]
    assert all(len(m.names) == len(m.distances) == 3 for m in result.matches)
    assert all(len(row) == 3 and row[0].shape == (32, 32, 3) for row in result.neighbours)
    assert [m.copy for m in result.matches] == [False, False, False, True, False, False]
    assert result.matches[3].names[0] == "planted.png" and result.offline
    assert all(m.distances == sorted(m.distances) for m in result.matches)
    order = shown_order(result)  # the copy first, then the others closest first
    assert order[0] == 3 and sorted(order) == list(range(6))
    rest = [result.matches[i].distances[0] for i in order[1:]]
    assert rest == sorted(rest)


def test_the_nearest_form_needs_a_generator_and_a_training_set(chain: Chain) -> None:
    state = NearestState()
    assert nearest_request(state, Scene()) is None and "generator" in (state.error or "")
    assert nearest_request(state, Scene(source="g.json")) is None and "training set" in (state.error or "")
    request = nearest_request(state, Scene(source="g.json", run_dir=chain.run_b))
    assert request is not None
    assert (request.data, request.subset, request.seeds) == ("builtin:digits", 64, tuple(range(8)))
    state.k = 0
    assert nearest_request(state, Scene(source="g.json", run_dir=chain.run_b)) is None and "k 0" in (state.error or "")
    state.k, state.data = 2, "elsewhere/"
    assert nearest_request(state, Scene(source="g.json")).data == "elsewhere/"  # type: ignore[union-attr]


def test_a_bad_training_set_is_one_line(tmp_path: Path) -> None:
    request = NearestRequest(str(DEMO_SNAPSHOT.with_suffix(".json")), str(tmp_path / "missing"), None, 0, (0,), 1,
                             1.0, None)  # fmt: skip
    with pytest.raises(Exception, match="training set") as info:
        find_nearest(request)
    assert "\n" not in str(info.value)


def test_a_named_inception_file_that_is_missing_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADA_STUDIO_CACHE", str(tmp_path / "cache"))
    request = NearestRequest(str(DEMO_SNAPSHOT.with_suffix(".json")), "builtin:digits", 32, 0, (0,), 1, 1.0,
                             str(tmp_path / "inception-2015-12-05.pt"))  # fmt: skip
    with pytest.raises(Exception, match="inception-2015-12-05.pt") as info:
        find_nearest(request)
    assert "\n" not in str(info.value)
