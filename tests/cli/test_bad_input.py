"""Every bad invocation of the command-line tools is one line, exit status 2, no traceback and no new
file: train_headless.py, the dataset tool, the metrics CLI, the checkpoint CLI and launch_viz.py,
each run as a user would, from a scratch folder that is not the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
TRAIN = [PY, str(REPO / "train_headless.py")]
TOOL = [PY, "-m", "core.data.tool"]
ON_DIGITS = ["--data", "builtin:digits", "--outdir", "runs"]  # a valid start, for the cases that add one bad option
METRICS = [PY, "-m", "core.metrics"]
CONVERT = [PY, "-m", "core.networks.convert"]
VIZ = [PY, str(REPO / "launch_viz.py")]
DEMO = str(REPO / "viz" / "demo" / "digits32-demo.json")
OLD_RUN = REPO / "tests" / "fixtures" / "run_87ed6be" / "00000-digits-subset16-cpu32-batch4-ada-kimg0.048-fixture"

# (id, command, what the one line must contain). Paths without a folder are files of the scratch folder.
CASES: list[tuple[str, list[str], str]] = [
    ("train-no-data", [*TRAIN, "--outdir", "runs"], "--data is required"),
    ("train-no-outdir", [*TRAIN, "--data", "builtin:digits"], "--outdir is required"),
    ("train-resume-missing", [*TRAIN, "--resume", "/missing/run", "--outdir", "runs"], "--resume /missing/run"),
    ("train-replay-missing", [*TRAIN, "--replay", "nope.json", "--outdir", "runs"], "--replay nope.json"),
    ("train-aug-unknown", [*TRAIN, "--aug", "bogus", "--outdir", "runs"], "--aug"),
    ("train-augpipe-unknown", [*TRAIN, "--augpipe", "nope", "--outdir", "runs"], "--augpipe"),
    ("train-cfg-unknown", [*TRAIN, "--cfg", "nope", *ON_DIGITS], "--cfg"),
    ("train-p-without-fixed", [*TRAIN, "--p", "0.3", *ON_DIGITS], "--p"),
    ("train-fixed-without-p", [*TRAIN, "--aug", "fixed", *ON_DIGITS], "--aug fixed needs --p"),
    ("train-target-range", [*TRAIN, "--target", "2", *ON_DIGITS], "--target"),
    ("train-dataaug-without-apa", [*TRAIN, "--with-dataaug", "1", *ON_DIGITS], "--with-dataaug"),
    ("train-aug-mult-syntax", [*TRAIN, "--aug-mult", "xflip", *ON_DIGITS], "NAME=VALUE"),
    ("train-aug-mult-unknown", [*TRAIN, "--aug-mult", "bogus=1", *ON_DIGITS], "unknown op"),
    ("train-kimg-negative", [*TRAIN, "--kimg", "-1", *ON_DIGITS], "--kimg"),
    ("train-batch-mbstd", [*TRAIN, "--batch", "7", "--cfg", "cpu32", *ON_DIGITS], "--batch 7"),
    ("train-gpus-without-cuda", [*TRAIN, "--gpus", "3", *ON_DIGITS], "--gpus 3"),
    ("train-outdir-proc", [*TRAIN, "--outdir", "/proc/runs", "--data", "builtin:digits"], "--outdir /proc/runs"),
    ("train-outdir-under-file", [*TRAIN, "--outdir", "afile/runs", "--data", "builtin:digits"], "is a file"),
    ("train-outdir-is-file", [*TRAIN, "--outdir", "afile", "--data", "builtin:digits"], "is a file"),
    ("train-resume-random-bytes", [*TRAIN, "--resume", "rand.pkl", *ON_DIGITS], "rand.pkl"),
    ("train-resume-truncated", [*TRAIN, "--resume", "trunc.json", *ON_DIGITS], "trunc.safetensors"),
    ("train-resume-bad-json", [*TRAIN, "--resume", "bad.json", *ON_DIGITS], "bad.json"),
    ("train-resume-run-without-snapshot", [*TRAIN, "--resume", "emptyrun", "--outdir", "runs"], "no snapshot yet"),
    ("train-data-missing", [*TRAIN, "--data", "missing.zip", "--outdir", "runs"], "--data"),
    ("train-desc-separator", [*TRAIN, "--desc", "a/b", *ON_DIGITS], "--desc"),
    ("train-metrics-unknown", [*TRAIN, "--metrics", "bogus", *ON_DIGITS], "--metrics"),
    ("tool-no-source", [*TOOL, "--dest", "out.zip", "--resolution", "32"], "--source"),
    ("tool-source-missing", [*TOOL, "--source", "missing", "--dest", "out.zip", "--resolution", "32"], "missing"),
    ("tool-resolution", [*TOOL, "--source", "imgs16", "--dest", "out.zip", "--resolution", "33"], "--resolution"),
    ("tool-dest-proc", [*TOOL, "--source", "imgs16", "--dest", "/proc/x.zip", "--resolution", "16"], "/proc/x.zip"),
    ("tool-dest-exists", [*TOOL, "--source", "imgs16", "--dest", "existing.zip", "--resolution", "16"], "--overwrite"),
    (
        "tool-dest-folder-missing",
        [*TOOL, "--source", "imgs16", "--dest", "nope/x.zip", "--resolution", "16"],
        "does not exist",
    ),
    ("tool-dest-is-source", [*TOOL, "--source", "imgs16", "--dest", "imgs16", "--resolution", "16"], "differ"),
    (
        "tool-max-images",
        [*TOOL, "--source", "imgs16", "--dest", "o.zip", "--resolution", "16", "--max-images", "0"],
        "--max-images",
    ),
    ("metrics-network-missing", [*METRICS, "--network", "missing.json", "--data", "imgs16"], "missing"),
    ("metrics-network-random", [*METRICS, "--network", "rand.pkl", "--data", "imgs16"], "rand.pkl"),
    (
        "metrics-resolution-mismatch",
        [*METRICS, "--network", DEMO, "--data", "imgs16", "--metrics", "fd_offline"],
        "16 px",
    ),
    ("metrics-unknown", [*METRICS, "--network", DEMO, "--data", "builtin:digits", "--metrics", "bogus"], "bogus"),
    ("metrics-num-gen", [*METRICS, "--network", DEMO, "--data", "builtin:digits", "--num-gen", "0"], "--num-gen"),
    ("metrics-leak-ops-unknown", [*METRICS, "--network", DEMO, "--data", "builtin:digits", "--metrics",
                                  "leaks_offline", "--leak-ops", "xflip,blur"], "--leak-ops"),
    ("metrics-leak-ops-without-leaks", [*METRICS, "--network", DEMO, "--data", "builtin:digits", "--metrics",
                                        "fd_offline", "--leak-ops", "xflip"], "--leak-ops"),
    ("convert-info-missing", [*CONVERT, "info", "missing.json"], "missing"),
    ("convert-info-random", [*CONVERT, "info", "rand.pkl"], "rand.pkl"),
    ("convert-dest-folder-missing", [*CONVERT, "convert", DEMO, "nope/dir/x"], "does not exist"),
    ("viz-offscreen-unloadable", [*VIZ, "--offscreen", "2", "--out", "frames", "rand.pkl"], "rand.pkl"),
    ("viz-offscreen-missing", [*VIZ, "--offscreen", "2", "--out", "frames", "missing.pkl"], "missing.pkl"),
    ("viz-offscreen-negative", [*VIZ, "--offscreen", "-1", "--out", "frames"], "--offscreen"),
    ("viz-offscreen-no-out", [*VIZ, "--offscreen", "2"], "--out"),
    ("viz-size", [*VIZ, "--size", "10x", "--offscreen", "1", "--out", "frames"], "--size"),
    ("viz-panels", [*VIZ, "--panels", "seeds,bogus", "--offscreen", "1", "--out", "frames"], "bogus"),
]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's folder with the bad inputs the cases name."""
    d = tmp_path_factory.mktemp("user")
    (d / "afile").write_text("not a folder")
    (d / "rand.pkl").write_bytes(np.random.default_rng(0).bytes(4096))
    (d / "bad.json").write_text("{bad")
    snap = OLD_RUN / "snapshots" / "network-snapshot-000000.048"
    shutil.copy(snap.with_suffix(".048.json"), d / "trunc.json")
    (d / "trunc.safetensors").write_bytes(snap.with_suffix(".048.safetensors").read_bytes()[:1000])
    (d / "emptyrun" / "snapshots").mkdir(parents=True)
    (d / "emptyrun" / "run.json").write_text('{"options": {}}')
    (d / "imgs16").mkdir()
    for i in range(4):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(d / "imgs16" / f"{i}.png")
    (d / "existing.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip
    return d


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize(("command", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_invocation_is_one_line_exit_2_and_leaves_nothing(scratch: Path, command: list[str], expected: str) -> None:
    before = _files(scratch)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "XDG_CONFIG_HOME": str(scratch.parent)}
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    proc = subprocess.run(
        command, cwd=scratch, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, f"exit {proc.returncode}\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-4000:]}"
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0], lines[0]
    assert _files(scratch) == before, f"new files: {sorted(_files(scratch) - before)}"


def test_the_table_is_long_enough_and_covers_every_tool() -> None:
    assert len(CASES) >= 40
    for tool in (TRAIN, TOOL, METRICS, CONVERT, VIZ):
        assert any(cmd[: len(tool)] == tool for _, cmd, _ in CASES)
