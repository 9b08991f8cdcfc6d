"""The metrics CLI: snapshot loading, printing, metrics.jsonl in run directories, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.metrics.__main__ import main as metrics_main
from core.networks.checkpoint import save_checkpoint
from tests.core.data.helpers import write_folder
from tests.core.metrics.test_evaluate import tiny_generator

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_folder(tmp_path_factory.mktemp("cli") / "toy", 40, res=8)


def run_cli(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ADA_STUDIO_CACHE": str(cache)}
    env.pop("ADA_INCEPTION_WEIGHTS", None)
    return subprocess.run(
        [sys.executable, "-m", "core.metrics", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_cli_on_a_run_snapshot_appends_metrics(data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "00000-toy"
    (run_dir / "snapshots").mkdir(parents=True)
    (run_dir / "run.json").write_text("{}")
    snapshot = save_checkpoint(
        run_dir / "snapshots" / "network-snapshot-000004",
        G_ema=tiny_generator(),
        kimg=4,
        dataset={"path": str(data)},
    )
    result = run_cli(
        "--network", str(snapshot), "--metrics", "fd_offline,pr_offline", "--num-gen", "24", "--device", "cpu",
        "--batch", "8", cache=tmp_path / "cache"
    )
    assert result.returncode == 0, result.stderr
    assert "fd_offline " in result.stdout and "pr_offline_precision" in result.stdout
    assert "(fakes 24, reals 40, offline-randconv-v1-seed0-" in result.stdout
    assert "real features" in result.stderr  # the first computation shows a progress bar
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["metric"] for r in records] == ["fd_offline", "pr_offline"]
    assert records[0]["snapshot"] == "snapshots/network-snapshot-000004.json" and records[0]["kimg"] == 4
    # The run directory itself works as --network (its newest snapshot) and reuses the cache.
    again = run_cli(
        "--network", str(run_dir), "--data", str(data), "--metrics", "fd_offline", "--num-gen", "24", "--device",
        "cpu", cache=tmp_path / "cache"
    )
    assert again.returncode == 0, again.stderr
    assert "real features" not in again.stderr
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 3


def test_cli_errors_are_one_line(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADA_STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ADA_INCEPTION_WEIGHTS", raising=False)
    snapshot = save_checkpoint(tmp_path / "g", G_ema=tiny_generator())
    for args, message in (
        (["--metrics", "bogus", "--data", str(data)], "unknown metric 'bogus'"),
        (["--metrics", "fd_offline"], "--data is needed"),
        (["--metrics", "fd_offline", "--data", str(tmp_path / "nope")], "does not exist"),
        (["--metrics", "fd_offline", "--data", str(data), "--num-gen", "0"], "--num-gen must be >= 1"),
    ):
        assert metrics_main(["--network", str(snapshot), "--device", "cpu", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert metrics_main(["--network", str(tmp_path / "missing.json"), "--data", str(data)]) == 2
    assert "missing" in capsys.readouterr().err
    # Through a real process: the missing Inception file, before any work is done.
    result = run_cli(
        "--network", str(snapshot), "--data", str(data), "--metrics", "fid50k_full", cache=tmp_path / "cache"
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(
        "error: fid50k_full needs the Inception-v3 weights inception-2015-12-05.pt"
    )
    assert "ADA_INCEPTION_WEIGHTS" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_leaks_default_to_the_ops_the_run_augmented_with(data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "00000-toy"
    (run_dir / "snapshots").mkdir(parents=True)
    (run_dir / "run.json").write_text("{}")
    augment = {"pipe": "bg", "multipliers": {"rotate": 0.0, "scale": 0.0}}
    snapshot = save_checkpoint(run_dir / "snapshots" / "network-snapshot-000002", G_ema=tiny_generator(), kimg=2,
                               dataset={"path": str(data)}, training_options={"augment": augment})
    args = ["--network", str(snapshot), "--metrics", "leaks_offline,copies_offline", "--num-gen", "16",
            "--device", "cpu", "--batch", "8"]
    result = run_cli(*args, cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    records = {r["metric"]: r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())}
    assert list(records["leaks_offline"]["results"]) == [f"leak/{op}" for op in ("xflip", "rotate90", "xint",
                                                                                  "aniso", "xfrac")]
    assert records["leaks_offline"]["extractor"] == "layout-thumb8-v1"
    assert list(records["copies_offline"]["results"]) == ["copies_offline"]
    chosen = run_cli(*args, "--leak-ops", "hue,xflip", "--no-append", cache=tmp_path / "cache")
    assert chosen.returncode == 0, chosen.stderr
    assert "leak/xflip" in chosen.stdout and "leak/hue" in chosen.stdout and "leak/xint" not in chosen.stdout
