"""The background worker: latest-wins lane, priority lane, keep rule, errors and shutdown."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

import pytest

from core.io.worker import JobResult, LatestWorker, NoResult


class _Gate:
    """A job that says when it has started and returns only once the test releases it."""

    def __init__(self, value: Any, ran: list[Any] | None = None) -> None:
        self.value, self.ran = value, ran
        self.started, self.release = threading.Event(), threading.Event()

    def __call__(self) -> Any:
        self.started.set()
        if not self.release.wait(10):
            raise TimeoutError("the test never released this job")
        if self.ran is not None:
            self.ran.append(self.value)
        return self.value


def _recorder(ran: list[Any], value: Any) -> Callable[[], Any]:
    def job() -> Any:
        ran.append(value)
        return value

    return job


def _poll_until(worker: LatestWorker, timeout: float = 10.0) -> JobResult:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = worker.poll()
        if result is not None:
            return result
        time.sleep(0.005)
    raise AssertionError("no result within the timeout")


@pytest.fixture
def closing() -> Any:
    workers: list[LatestWorker] = []

    def make(*args: Any, **kwargs: Any) -> LatestWorker:
        workers.append(LatestWorker(*args, **kwargs))
        return workers[-1]

    yield make
    for w in workers:
        w.close()


def test_newest_job_wins_and_superseded_results_are_dropped_and_counted(closing: Any) -> None:
    w, ran = closing("t-latest"), []
    first = _Gate("a", ran)
    w.submit("a", first)
    assert first.started.wait(5)
    for key in ("b", "c", "d"):  # they replace each other while "a" runs
        w.submit(key, _recorder(ran, key))
    assert not w.idle()
    first.release.set()
    assert w.wait_idle(10)
    assert ran == ["a", "d"]
    result = w.poll()
    assert result is not None and (result.key, result.value, result.error) == ("d", "d", None)
    assert result.submitted_at <= result.finished_at and result.ms >= 0
    assert w.poll() is None  # handed out once
    assert w.dropped == 1  # "a" finished after "d" was asked for
    assert w.idle()


def test_errors_become_one_line_and_no_result_hands_out_nothing(closing: Any) -> None:
    w = closing("t-errors")

    def bad() -> None:
        raise ValueError("first line\nsecond line")

    def nothing() -> None:
        raise NoResult

    w.submit("bad", bad)
    result = _poll_until(w)
    assert (result.value, result.error) == (None, "ValueError: first line")
    w.submit("nothing", nothing)
    assert w.wait_idle(10)
    assert w.poll_all() == ([], None)
    assert w.dropped == 0  # nothing to show is not a stale result


def test_priority_jobs_run_first_in_order_and_none_of_their_results_is_dropped(closing: Any) -> None:
    w, ran = closing("t-priority"), []
    first = _Gate("render-1", ran)
    w.submit("render-1", first)
    assert first.started.wait(5)
    w.submit("render-2", _recorder(ran, "render-2"))
    w.submit_priority("load-1", _recorder(ran, "load-1"))
    w.submit_priority("load-2", _recorder(ran, "load-2"))
    w.submit("render-3", _recorder(ran, "render-3"))
    w.submit_priority("load-3", _recorder(ran, "load-3"))
    first.release.set()
    assert w.wait_idle(10)
    # The waiting render runs only after every load, even the one asked for after it.
    assert ran == ["render-1", "load-1", "load-2", "load-3", "render-3"]
    loads, render = w.poll_all()
    assert [r.value for r in loads] == ["load-1", "load-2", "load-3"]
    assert render is not None and render.key == "render-3"
    assert w.dropped == 1  # render-1 only; priority results are never counted or dropped
    assert w.poll_all() == ([], None)


def test_priority_results_wait_for_poll_all_and_survive_later_jobs(closing: Any) -> None:
    w = closing("t-priority-kept")
    w.submit_priority("load", lambda: "model")
    assert w.wait_idle(10)
    w.submit("render", lambda: "image")
    w.submit_priority("bad-load", lambda: 1 / 0)
    assert w.wait_idle(10)
    loads, render = w.poll_all()
    assert [(r.key, r.value, r.error) for r in loads] == [
        ("load", "model", None),
        ("bad-load", None, "ZeroDivisionError: division by zero"),
    ]
    assert render is not None and render.value == "image"


def test_priority_backlog_lets_a_newer_priority_job_replace_a_waiting_one(closing: Any) -> None:
    with pytest.raises(ValueError, match="priority_backlog=0"):
        LatestWorker("t-bad-backlog", priority_backlog=0)
    w, ran = closing("t-backlog", priority_backlog=1), []
    first = _Gate("load-1", ran)
    w.submit_priority("load-1", first)
    assert first.started.wait(5)
    w.submit_priority("load-2", _recorder(ran, "load-2"))
    w.submit_priority("load-3", _recorder(ran, "load-3"))
    first.release.set()
    assert w.wait_idle(10)
    assert ran == ["load-1", "load-3"]  # load-2 was still waiting when load-3 came
    assert [r.key for r in w.poll_all()[0]] == ["load-1", "load-3"]


def _same_shape(result_key: Hashable, newest_key: Hashable) -> bool:
    assert isinstance(result_key, tuple) and isinstance(newest_key, tuple)
    return result_key[0] == newest_key[0]


def test_keep_rule_keeps_same_shape_intermediates_and_drops_others(closing: Any) -> None:
    w = closing("t-keep", keep=_same_shape)
    a, b = _Gate("a"), _Gate("b")
    w.submit(("1x1", 1.0), a)
    assert a.started.wait(5)
    w.submit(("1x1", 1.5), b)
    a.release.set()
    # "a" was superseded by a request of the same shape: still handed out while "b" runs.
    kept = _poll_until(w)
    assert kept.value == "a" and w.dropped == 0
    assert b.started.wait(5)
    w.submit(("2x2", 3.0), lambda: "c")
    b.release.set()
    assert w.wait_idle(10)
    # "b" was superseded by a different shape: dropped and counted; "c" is the newest.
    assert w.poll().value == "c"
    assert w.dropped == 1


def test_without_a_keep_rule_every_superseded_result_is_dropped(closing: Any) -> None:
    w = closing("t-nokeep")
    a = _Gate("a")
    w.submit(("1x1", 1.0), a)
    assert a.started.wait(5)
    w.submit(("1x1", 1.5), lambda: "b")
    a.release.set()
    assert w.wait_idle(10)
    assert w.poll().value == "b" and w.poll() is None
    assert w.dropped == 1


def _alive(name: str) -> bool:
    return any(t.name == name for t in threading.enumerate())


def test_close_joins_promptly_and_waiting_jobs_never_run() -> None:
    name, ran = "t-close", []
    w = LatestWorker(name)
    first = _Gate("running", ran)
    w.submit("running", first)
    assert first.started.wait(5)

    def slow(tag: str) -> Callable[[], None]:
        def job() -> None:
            ran.append(tag)
            time.sleep(3)

        return job

    w.submit("waiting", slow("waiting"))
    w.submit_priority("waiting-priority", slow("waiting-priority"))
    # Release the running job only after close() has asked the thread to stop.
    threading.Timer(0.5, first.release.set).start()
    w.close()
    # No time bound (a loaded machine stretches any): a waiting job that ran would be in ``ran``,
    # and close() joins for at most 5 s, so a thread still busy or waiting would still be alive.
    assert ran == ["running"]
    assert not _alive(name)


def test_close_of_an_idle_worker_is_immediate() -> None:
    w = LatestWorker("t-close-idle")
    w.close()
    # close() joins for at most 5 s: an idle thread it failed to wake would still be alive here.
    assert not _alive("t-close-idle")


def test_on_result_fires_once_per_result_handed_out_and_not_for_dropped_or_no_result(closing: Any) -> None:
    """The GUI's idle loop sleeps until this hook wakes it: a result it is not told about would sit
    unseen until the next idle frame, and a wake for nothing costs a frame."""
    seen: list[str] = []
    w = closing("t-wake", on_result=lambda: seen.append("woken"))
    first = _Gate("a")
    w.submit("a", first)
    assert first.started.wait(5)
    w.submit("b", lambda: "b")  # supersedes "a": "a" is dropped, no wake for it
    first.release.set()
    assert w.wait_idle(10)
    assert _wait_for(lambda: seen == ["woken"]), seen  # "b" only
    result = w.poll()
    assert result is not None and result.key == "b"

    def nothing() -> Any:
        raise NoResult

    w.submit("c", nothing)
    w.submit_priority("p", lambda: "p")
    assert w.wait_idle(10)
    assert _wait_for(lambda: len(seen) == 2), seen  # the priority result; NoResult woke nothing
    urgent, latest = w.poll_all()
    assert [r.key for r in urgent] == ["p"] and latest is None
    w.submit("err", lambda: 1 / 0)  # an error is a result the GUI shows: it wakes too
    assert w.wait_idle(10) and _wait_for(lambda: len(seen) == 3), seen


def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
