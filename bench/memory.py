"""Memory helpers shared by the soak benchmarks: a process's RSS and the slope of samples over time."""

from __future__ import annotations

import statistics
from pathlib import Path


def memory_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of process ``pid`` in MiB."""
    fields = dict(ln.split(":", 1) for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in ln)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) in MiB per hour."""
    if len(points) < 2:
        return float("nan")
    return 3600 * statistics.linear_regression([t for t, _ in points], [v for _, v in points]).slope


def report(points: list[tuple[float, float]], peak: float) -> str:
    """Two lines: first/last/min/max RSS and peak, then the slope over all samples and their second half."""
    values = [v for _, v in points]
    half = [p for p in points if p[0] >= points[-1][0] / 2]
    return (f"RSS first {values[0]:.0f} MiB, last {values[-1]:.0f} MiB, min {min(values):.0f}, max {max(values):.0f}; "
            f"peak (VmHWM) {peak:.0f} MiB\n"
            f"slope: {slope_per_hour(points):+.1f} MiB/h over the whole soak, {slope_per_hour(half):+.1f} MiB/h over "
            "its second half")  # fmt: skip
