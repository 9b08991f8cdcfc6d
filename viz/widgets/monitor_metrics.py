"""The monitor's quality metrics: "metric" events as series over kimg, grouped into plots, and the
best snapshot. Pure (no imgui): the training monitor draws what these functions build.

Groups come from the result keys, so a metric added later still shows: distances (FD, FID), KID,
precision & recall, the copy score, the augmentation leak indicators (one line per op) and, for
anything else, "other metrics".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

__all__ = [
    "BestSnapshot",
    "MetricGroup",
    "MetricSeries",
    "METRIC_GROUPS",
    "Series",
    "add_metric_event",
    "best_snapshot",
    "group_keys",
    "key_label",
    "metric_group",
]


@dataclass(frozen=True)
class MetricGroup:
    """One metric plot: its title and how to read it (the help marker's text)."""

    name: str
    title: str
    help: str


METRIC_GROUPS: tuple[MetricGroup, ...] = (
    MetricGroup(
        "distances", "FD / FID (lower is better)",
        "Frechet distance between the features of fakes and of the training images, at each snapshot. "
        "fd_offline uses the offline random-conv features (always available, comparable only with "
        "itself); fid50k_full uses Inception (when its weights file is named). Lower means the fakes' "
        "distribution is closer to the data's; the best snapshot is where FID (else fd_offline) is lowest. "
        "A curve that turns up again while r_t stays high is the classic sign that D is overfitting.",
    ),
    MetricGroup(
        "kid", "KID (lower is better)",
        "Kernel inception distance: like FD but unbiased for few images, so it is the more honest number "
        "on a dataset of a few hundred images. Lower is better; noise of a few 1e-3 is normal.",
    ),
    MetricGroup(
        "pr", "precision & recall",
        "Precision: the share of fakes that fall inside the data's feature manifold (quality). "
        "Recall: the share of training images the fakes' manifold covers (variety). Both in 0..1, "
        "higher is better. Precision up with recall down means G is collapsing onto fewer modes.",
    ),
    MetricGroup(
        "copies", "copy score (share of copied fakes)",
        "The share of fakes whose nearest training image (offline features) is closer than the "
        "training set's own typical nearest-neighbour distance: fakes that are (near) copies of a "
        "training image. Near 0 is healthy. A rise over kimg means G is memorising the training set "
        "(common with a few hundred images and no augmentation); prefer a snapshot before the rise, "
        "and look at the nearest-neighbour grid to see which images are copied.",
    ),
    MetricGroup(
        "leaks", "augmentation leaks (one line per op)",
        "For each augmentation op, how much closer the fakes' features are to op-transformed "
        "training images (flipped, rotated, recoloured ...) than to the training images as they are. "
        "About 0: no sign of that op in the fakes. Higher: the fakes look transformed, so the "
        "augmentation is leaking into G (e.g. upside-down or colour-shifted fakes). Read it over kimg: "
        "a line that climbs while p is high says that op leaks; lower p's ceiling or that op's "
        "multiplier. An op the dataset is invariant to (xflip on most photos) leaks harmlessly.",
    ),
    MetricGroup("other", "other metrics", "Metrics the monitor has no group for, plotted as they are."),
)
GROUP_BY_NAME = {g.name: g for g in METRIC_GROUPS}

# The metric that picks the best snapshot: Inception FID when computed, else the offline FD.
BEST_BY = ("fid50k_full", "fid", "fd_offline", "fd")


def metric_group(metric: str, key: str) -> str:
    """The group (a METRIC_GROUPS name) a result ``key`` of ``metric`` is plotted in."""
    names = (key.lower(), metric.lower())
    if any(n.startswith("leak") for n in names):
        return "leaks"
    if any(n.startswith("cop") for n in names):
        return "copies"
    if names[0].endswith(("precision", "recall")) or names[1].startswith("pr"):
        return "pr"
    if any(n.startswith("kid") for n in names):
        return "kid"
    if any(n.startswith(("fid", "fd")) for n in names):
        return "distances"
    return "other"


def key_label(metric: str, key: str) -> str:
    """The legend text of a result key: the op of a leak indicator, precision/recall of the offline P&R."""
    if "/" in key:
        return key.rsplit("/", 1)[1]
    if metric == "pr_offline" and key.startswith(metric + "_"):
        return key[len(metric) + 1:]
    return key


@dataclass
class Series:
    """Values over kimg (one plot line)."""

    kimg: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def add(self, kimg: float, value: float) -> None:
        self.kimg.append(kimg)
        self.values.append(value)

    def cut_after(self, kimg: float) -> None:
        """Forget the points past ``kimg`` (a resume from an earlier snapshot abandons them)."""
        self._keep(next((i for i, k in enumerate(self.kimg) if k > kimg), len(self.kimg)))

    def _keep(self, n: int) -> None:
        del self.kimg[n:], self.values[n:]


@dataclass
class MetricSeries(Series):
    """One result key over kimg, with the snapshot each value was measured on."""

    metric: str = ""
    group: str = "other"
    snapshots: list[str] = field(default_factory=list)

    def add_at(self, kimg: float, value: float, snapshot: str) -> None:
        self.add(kimg, value)
        self.snapshots.append(snapshot)

    def _keep(self, n: int) -> None:
        super()._keep(n)
        del self.snapshots[n:]


def add_metric_event(metrics: dict[str, MetricSeries], ev: dict[str, Any]) -> int:
    """Add one "metric" event's finite results to ``metrics`` (by result key); returns the points added."""
    kimg, results, metric = ev.get("kimg"), ev.get("results"), ev.get("metric")
    if not isinstance(kimg, int | float) or not isinstance(results, dict):
        return 0
    metric = metric if isinstance(metric, str) else "metric"
    snapshot = ev.get("snapshot")
    snapshot = PurePath(snapshot).stem if isinstance(snapshot, str) and snapshot else f"kimg {kimg:g}"
    added = 0
    for key, value in results.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            continue
        series = metrics.get(key)
        if series is None:
            series = metrics[key] = MetricSeries(metric=metric, group=metric_group(metric, key))
        series.add_at(float(kimg), float(value), snapshot)
        added += 1
    return added


def group_keys(metrics: dict[str, MetricSeries]) -> dict[str, list[str]]:
    """The result keys of each group that has data, in METRIC_GROUPS order; keys sorted by name."""
    found: dict[str, list[str]] = {}
    for group in METRIC_GROUPS:
        keys = sorted(k for k, s in metrics.items() if s.group == group.name and s.kimg)
        if keys:
            found[group.name] = keys
    return found


@dataclass(frozen=True)
class BestSnapshot:
    """The snapshot with the lowest FID (else offline FD): what "best" means in the monitor."""

    snapshot: str
    kimg: float
    key: str
    value: float

    def label(self) -> str:
        return f"best: {self.snapshot} ({self.kimg:g} kimg, {self.key} {self.value:.4g})"


def best_snapshot(metrics: dict[str, MetricSeries]) -> BestSnapshot | None:
    """The lowest value of the first BEST_BY metric present (the earliest snapshot on a tie)."""
    for prefix in BEST_BY:
        keys = sorted(k for k, s in metrics.items() if k.startswith(prefix) and s.group == "distances" and s.kimg)
        if keys:
            s = metrics[keys[0]]
            i = min(range(len(s.values)), key=lambda j: (s.values[j], s.kimg[j]))
            return BestSnapshot(s.snapshots[i], s.kimg[i], keys[0], s.values[i])
    return None
