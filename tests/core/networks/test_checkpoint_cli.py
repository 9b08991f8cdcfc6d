"""``python -m core.networks.convert info|convert``: the real CLI, run as a subprocess."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from core.networks import Generator
from core.networks.checkpoint import load_checkpoint, save_checkpoint
from core.networks.convert import main

REPO = Path(__file__).resolve().parents[3]
SNAPSHOT = REPO.parent / "shared" / "fixtures" / "sg2_res32_skip_resnet.snapshot.pkl"
needs_fixture = pytest.mark.skipif(not SNAPSHOT.is_file(), reason=f"fixture missing: {SNAPSHOT}")


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core.networks.convert", *map(str, args)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )


def _assert_one_line_error(code: int, stdout: str, stderr: str, *fragments: str) -> None:
    assert code == 2, stderr
    assert stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ada-convert: error: "), stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0]


@needs_fixture
def test_info_and_convert_a_public_pkl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    info = _cli("info", SNAPSHOT)
    assert info.returncode == 0, info.stderr
    out = info.stdout
    assert "source: legacy-pkl" in out
    assert "generator: 32x32, 3 channels, c_dim 0 (unconditional), z_dim 64, w_dim 64, num_ws 8" in out
    assert "mapping layers 2, architecture skip" in out
    assert "D: Discriminator, architecture resnet" in out and "G_ema: Generator" in out
    assert "augment: present" in out and "p=0.37" in out and "xflip=1" in out and "saturation=1" in out
    assert "kimg: unknown" in out and "ignored: augment_pipe buffers Hz_fbank, Hz_geom" in out

    missing = _cli("convert", SNAPSHOT, tmp_path / "out" / "network-snapshot-000007.safetensors")
    assert missing.returncode == 2 and "does not exist" in missing.stderr  # it used to create the folder
    assert not (tmp_path / "out").exists()
    (tmp_path / "out").mkdir()
    converted = _cli("convert", SNAPSHOT, tmp_path / "out" / "network-snapshot-000007.safetensors")
    assert converted.returncode == 0, converted.stderr
    assert "wrote: " in converted.stdout
    ckpt = load_checkpoint(tmp_path / "out" / "network-snapshot-000007")
    assert ckpt.G is not None and ckpt.D is not None and ckpt.G_ema is not None
    assert ckpt.meta["p"] == pytest.approx(0.37) and ckpt.meta["converted_from"] == str(SNAPSHOT.resolve())
    assert main(["info", str(tmp_path / "out" / "network-snapshot-000007.json")]) == 0
    again = capsys.readouterr().out
    assert "source: ada-studio-checkpoint" in again and "p=0.37" in again


def test_info_on_our_snapshot_and_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    G = Generator(z_dim=8, c_dim=5, w_dim=16, img_resolution=8, img_channels=1,
                  mapping_kwargs={"num_layers": 3}, synthesis_kwargs={"channel_base": 64, "channel_max": 8})
    save_checkpoint(tmp_path / "run" / "snapshots" / "network-snapshot-000042", G_ema=G, kimg=42)
    assert main(["info", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "generator: 8x8, 1 channels, c_dim 5 (conditional), z_dim 8, w_dim 16" in out
    assert "mapping layers 3" in out
    assert "G: absent" in out and "D: absent" in out and "augment: absent" in out
    n_params = sum(p.numel() for p in G.parameters())
    assert f"G_ema: Generator, architecture skip, {n_params:,} parameters" in out
    assert "kimg: 42" in out


def test_refusal_at_the_real_cli_is_one_line(tmp_path: Path) -> None:
    evil = tmp_path / "evil.pkl"
    canary = tmp_path / "canary"
    evil.write_bytes(pickle.dumps({"G": _Evil(str(canary))}, protocol=2))
    result = _cli("info", evil)
    _assert_one_line_error(result.returncode, result.stdout, result.stderr, "evil.pkl", "refused",
                           f"{os.system.__module__}.system")
    assert not canary.exists()


def test_errors_are_one_line_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def run(*args: str | Path) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    _assert_one_line_error(*run("info", tmp_path / "missing"), "missing", "no snapshot found")
    (tmp_path / "run" / "snapshots").mkdir(parents=True)
    _assert_one_line_error(*run("info", tmp_path / "run"), "no snapshot yet")
    garbage = tmp_path / "g.pkl"
    garbage.write_bytes(b"\x80\x04garbage")
    _assert_one_line_error(*run("convert", garbage, tmp_path / "o"), "g.pkl", "not a readable")
    assert not (tmp_path / "o.json").exists()
    G = Generator(z_dim=4, c_dim=0, w_dim=4, img_resolution=4, img_channels=3,
                  synthesis_kwargs={"channel_base": 16, "channel_max": 4})
    json_path = save_checkpoint(tmp_path / "s", G=G)
    doc = json.loads(json_path.read_text())
    doc["format_version"] = 7
    json_path.write_text(json.dumps(doc))
    _assert_one_line_error(*run("info", json_path), "s.json", "version 7 is not supported")
    (tmp_path / "s.json").unlink()
    _assert_one_line_error(*run("info", tmp_path / "s.safetensors"), "incomplete")
    save_checkpoint(tmp_path / "t", G=G)
    _assert_one_line_error(*run("convert", tmp_path / "t", tmp_path / "x.resume.json"), "resume-state file")


@pytest.mark.parametrize("script,usage", [("ada-convert", "usage: ada-convert"),
                                          ("ada-train", "--outdir DIR"), ("ada-viz", "--offscreen N")])
def test_console_scripts_run(script: str, usage: str, tmp_path: Path) -> None:
    """The installed console scripts (pip install -e ., as make setup does), run as a user would."""
    exe = Path(sys.executable).parent / script
    assert exe.is_file(), f"{exe} is not installed; run make setup (pip install -e '.[gui,dev]')"
    env = {**os.environ, "PYTHONPATH": ""}
    done = subprocess.run([str(exe), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and usage in done.stdout, done.stderr[-2000:]
    if script == "ada-convert":
        G = Generator(z_dim=4, c_dim=0, w_dim=4, img_resolution=4, img_channels=3,
                      synthesis_kwargs={"channel_base": 16, "channel_max": 4})
        save_checkpoint(tmp_path / "s", G=G)
        info = subprocess.run([str(exe), "info", str(tmp_path / "s")], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120)
        assert info.returncode == 0 and "G" in info.stdout, info.stderr[-2000:]


class _Evil:
    def __init__(self, canary: str) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.canary}",)
