"""The training monitor's metrics without a window: series from a recorded run directory, the best
snapshot, the plots of each page and the overlay of compared runs (issue 22: 1, 3, 4, 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.rundir import RunReader, RunWriter, layout, schema
from tests.viz.recorded_metrics import LEAK_OPS, SNAPSHOT_EVERY, best_kimg, record_run, snapshot_name
from viz.widgets.monitor_metrics import MetricSeries, add_metric_event, best_snapshot, metric_group
from viz.widgets.training_monitor import (
    MonitorState,
    add_compared,
    compare_candidates,
    ingest,
    ingest_ancestors,
    plot_grid,
    plot_lines,
    plot_pages,
    plot_runs,
    refresh,
)

SNAPSHOTS = int(40 / SNAPSHOT_EVERY)


def _monitor(run_dir: Path) -> MonitorState:
    state = MonitorState()
    reader = RunReader(run_dir)
    ingest_ancestors(state, reader)
    ingest(state, reader.poll_events(), reader.options())
    return state


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, Path]:
    return {aug: record_run(tmp_path / f"0000{i}-digits-{aug}", aug) for i, aug in enumerate(("noaug", "ada", "apa"))}


def test_every_metric_result_becomes_a_series_in_its_group(runs: dict[str, Path]) -> None:
    state = _monitor(runs["ada"])
    expected = {"fd_offline": "distances", "kid_offline": "kid", "pr_offline_precision": "pr",
                "pr_offline_recall": "pr", "copies_offline": "copies", **{f"leak/{op}": "leaks" for op in LEAK_OPS}}
    assert {k: s.group for k, s in state.metrics.items()} == expected
    kimgs = [SNAPSHOT_EVERY * i for i in range(1, SNAPSHOTS + 1)]
    for series in state.metrics.values():
        assert series.kimg == kimgs and series.snapshots == [Path(snapshot_name(k)).stem for k in kimgs]
    assert len(state.series[schema.STAT_P].kimg) == 80  # the stats still plot as before
    events = RunReader(runs["ada"]).metrics()
    assert state.metrics["leak/rotate90"].values == [e["results"]["leak/rotate90"] for e in events
                                                     if e["metric"] == "leaks_offline"]


@pytest.mark.parametrize(("metric", "key", "group"), [
    ("fid50k_full", "fid50k_full", "distances"), ("fd_offline", "fd_offline", "distances"),
    ("kid50k_full", "kid50k_full", "kid"), ("pr50k3_full", "pr50k3_full_precision", "pr"),
    ("pr_offline", "pr_offline_recall", "pr"), ("copies_offline", "copies_offline", "copies"),
    ("leaks_offline", "leak/xflip", "leaks"), ("is50k", "is50k", "other"),
])  # fmt: skip
def test_metric_groups_come_from_the_names(metric: str, key: str, group: str) -> None:
    assert metric_group(metric, key) == group


def test_non_finite_and_malformed_results_are_left_out() -> None:
    metrics: dict[str, MetricSeries] = {}
    nan = {"kimg": 4.0, "metric": "fd_offline", "results": {"fd_offline": float("nan")}}
    assert add_metric_event(metrics, nan) == 0
    assert add_metric_event(metrics, {"kimg": "4", "metric": "fd_offline", "results": {"fd_offline": 1.0}}) == 0
    assert add_metric_event(metrics, {"kimg": 4.0, "metric": "x", "results": {"a": True, "b": "1", "c": 2}}) == 1
    assert list(metrics) == ["c"] and metrics["c"].snapshots == ["kimg 4"]


def test_the_best_snapshot_is_the_lowest_fd_and_fid_wins_when_present(runs: dict[str, Path]) -> None:
    state = _monitor(runs["noaug"])
    best = state.best()
    assert best is not None and best.key == "fd_offline"
    assert best.kimg == best_kimg("noaug") < 40  # noaug overfits: its best is not its last snapshot
    assert best.snapshot == Path(snapshot_name(best.kimg)).stem
    assert best.value == min(state.metrics["fd_offline"].values)
    assert best.label() == f"best: {best.snapshot} ({best.kimg:g} kimg, fd_offline {best.value:.4g})"
    # Inception FID, once computed, decides (even where the offline FD disagrees).
    for kimg, fid in ((8.0, 30.0), (36.0, 20.0)):
        ingest(state, [{"kind": "metric", "kimg": kimg, "metric": "fid50k_full", "results": {"fid50k_full": fid},
                        "snapshot": snapshot_name(kimg)}], None)
    best = state.best()
    assert best is not None and (best.key, best.kimg, best.value) == ("fid50k_full", 36.0, 20.0)
    assert best_snapshot({}) is None


def test_pages_plot_p_and_r_t_next_to_each_metric_group(runs: dict[str, Path], tmp_path: Path) -> None:
    ada = plot_runs(_monitor(runs["ada"]), runs["ada"])
    metric_titles = ["FD / FID (lower is better)", "KID (lower is better)", "precision & recall",
                     "copy score (share of copied fakes)", "augmentation leaks (one line per op)"]
    auto = plot_pages("auto", ada)
    assert [p.title for p in auto] == ["augmentation p", "r_t = E[sign D(real)]", *metric_titles]
    assert plot_pages("metrics", ada) == auto
    assert len(plot_pages("training", ada)) == 6 and len(plot_pages("all", ada)) == 11
    bare = record_run(tmp_path / "00009-bare", "ada", kimg=2.0)  # no snapshot yet: no metric plot
    assert plot_pages("auto", plot_runs(_monitor(bare), bare)) == plot_pages("training", ada)


def test_one_run_has_one_line_per_key_and_compared_runs_one_colour_each(runs: dict[str, Path]) -> None:
    state = _monitor(runs["ada"])
    leaks = next(p for p in plot_pages("auto", plot_runs(state, runs["ada"])) if p.group == "leaks")
    lines = plot_lines(leaks, plot_runs(state, runs["ada"]))
    assert [ln.label for ln in lines] == sorted(LEAK_OPS) and {ln.colour for ln in lines} == {None}
    for aug in ("noaug", "apa"):
        assert add_compared(state, str(runs[aug]), attached=runs["ada"])
    refresh(state, None, now=1.0)  # the compared runs are read in the monitor's refresh
    overlaid = plot_runs(state, runs["ada"])
    assert [(r.label, r.colour) for r in overlaid] == [(runs[a].name, i) for i, a in enumerate(("ada", "noaug", "apa"))]
    p_lines = plot_lines(plot_pages("auto", overlaid)[0], overlaid)
    assert [(ln.label, ln.colour) for ln in p_lines] == [(r.label, r.colour) for r in overlaid]
    assert p_lines[1].values == [0.0] * 80 and max(p_lines[0].values) > 0.4  # noaug's p stays 0, ADA's rises
    fd = plot_lines(next(p for p in plot_pages("auto", overlaid) if p.group == "distances"), overlaid)
    assert [ln.label for ln in fd] == [r.label for r in overlaid] and all(len(ln.kimg) == SNAPSHOTS for ln in fd)
    pr = plot_lines(next(p for p in plot_pages("auto", overlaid) if p.group == "pr"), overlaid)
    assert [(ln.label, ln.colour, ln.index) for ln in pr[:2]] == [
        (f"{runs['ada'].name} precision", 0, 0), (f"{runs['ada'].name} recall", 0, 1)]
    assert len(pr) == 6 and {ln.colour for ln in pr} == {0, 1, 2}
    bests = [r.state.best() for r in overlaid]
    assert [b.kimg for b in bests if b] == [best_kimg(a) for a in ("ada", "noaug", "apa")]


def test_adding_a_compared_run_checks_the_path(runs: dict[str, Path], tmp_path: Path) -> None:
    state = MonitorState()
    assert not add_compared(state, str(tmp_path / "nothing"), attached=None)
    assert "not a run directory" in (state.compare_error or "")
    assert not add_compared(state, str(runs["ada"]), attached=runs["ada"])
    assert state.compare_error == f"{runs['ada'].name} is already shown"
    assert add_compared(state, f"  {runs['noaug']}  ", attached=runs["ada"]) and state.compare_error is None
    assert not add_compared(state, str(runs["noaug"]), attached=runs["ada"])
    state.clear()  # a new attach forgets the run's data, not what the user chose to compare
    assert [r.run_dir for r in state.compared] == [runs["noaug"]]


def test_refresh_reads_compared_runs_without_writing_to_them(runs: dict[str, Path]) -> None:
    def listing(run_dir: Path) -> dict[str, tuple[int, float]]:
        return {str(p): (p.stat().st_size, p.stat().st_mtime) for p in sorted(run_dir.rglob("*"))}

    before = listing(runs["apa"])
    state = MonitorState()
    add_compared(state, str(runs["apa"]), attached=None)
    assert refresh(state, None, now=10.0) == []  # nothing attached: only the compared run is read
    compared = state.compared[0].state
    assert compared.status is not None and compared.status.state == "finished"
    assert len(compared.metrics["fd_offline"].kimg) == SNAPSHOTS
    assert listing(runs["apa"]) == before  # read-only: no control.json, no lock, nothing touched
    with RunWriter(runs["apa"], background=False) as w:  # the run goes on (a resume, say)
        w.metric(44.0, "fd_offline", {"fd_offline": 1.0}, snapshot=snapshot_name(44.0))
    refresh(state, None, now=10.5)  # within compare_s: not read again
    assert len(compared.metrics["fd_offline"].kimg) == SNAPSHOTS
    refresh(state, None, now=11.1)
    best = compared.best()
    assert compared.metrics["fd_offline"].kimg[-1] == 44.0 and best is not None and best.kimg == 44.0


def test_a_forked_chain_plots_its_ancestors_metrics_as_one_timeline(tmp_path: Path) -> None:
    first = record_run(tmp_path / "00000-digits-ada", "ada", kimg=24.0)
    second = record_run(tmp_path / "00001-digits-ada-resumed", "ada", kimg=40.0, start=16.0, resume=first)
    state = _monitor(second)
    # The first run's metrics up to the fork (4..16), then the second run's (20..40); 20 and 24 of
    # the first run were replaced by the second launch.
    assert state.metrics["fd_offline"].kimg == [SNAPSHOT_EVERY * i for i in range(1, SNAPSHOTS + 1)]
    assert state.resume_points == [16.0] and state.forked_from == [first]
    compared = MonitorState()
    add_compared(compared, str(second), attached=None)
    refresh(compared, None, now=1.0)
    assert compared.compared[0].state.metrics["fd_offline"].kimg == state.metrics["fd_offline"].kimg


def test_compared_runs_plot_in_their_colours_with_no_run_attached(runs: dict[str, Path]) -> None:
    state = MonitorState()
    add_compared(state, str(runs["apa"]), attached=None)
    refresh(state, None, now=1.0)
    only = plot_runs(state, None)
    assert [(r.label, r.colour) for r in only] == [(runs["apa"].name, 1)]  # the colour its Remove row shows
    p_line, = plot_lines(plot_pages("auto", only)[0], only)
    assert (p_line.label, p_line.colour) == (runs["apa"].name, 1)


@pytest.mark.parametrize(("n", "size", "grid"), [(6, (860, 590), (3, 2)), (7, (860, 590), (3, 3)),
                                                 (11, (860, 590), (4, 3)), (2, (860, 590), (2, 1)),
                                                 (7, (1200, 300), (2, 4))])
def test_the_plot_grid_keeps_cells_near_3_to_2(n: int, size: tuple[int, int], grid: tuple[int, int]) -> None:
    assert plot_grid(n, *size) == grid


def test_runs_of_the_same_name_are_told_apart_by_their_folder(tmp_path: Path) -> None:
    first = record_run(tmp_path / "cpu" / "00000-digits-ada", "ada", kimg=4.0)
    second = record_run(tmp_path / "gpu" / "00000-digits-ada", "ada", kimg=4.0)
    state = MonitorState()
    assert add_compared(state, str(second), attached=first)
    assert [r.label for r in plot_runs(state, first)] == ["cpu/00000-digits-ada", "gpu/00000-digits-ada"]


def test_a_compared_run_that_gets_attached_is_no_longer_overlaid(runs: dict[str, Path]) -> None:
    state = MonitorState()
    for aug in ("noaug", "apa"):
        add_compared(state, str(runs[aug]), attached=runs["ada"])
    refresh(state, RunReader(runs["noaug"]), now=5.0)  # the user attached noaug
    assert [r.run_dir for r in state.compared] == [runs["apa"]]


def test_runs_nearby_and_recent_are_offered_for_comparison(runs: dict[str, Path], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from viz.settings import push_recent

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    elsewhere = record_run(tmp_path / "other" / "00007-faces-ada", "ada", kimg=4.0)
    push_recent(str(elsewhere / layout.SNAPSHOTS / snapshot_name(4.0)))  # a snapshot opened recently
    push_recent(str(tmp_path / "not-a-run"))
    state = MonitorState()
    add_compared(state, str(runs["apa"]), attached=runs["ada"])
    assert compare_candidates(state, runs["ada"]) == [str(runs["noaug"]), str(elsewhere)]
