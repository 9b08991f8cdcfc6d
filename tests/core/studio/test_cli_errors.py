"""Bad input: exit 2, one stderr line, no traceback, no new files.

Every case runs in a fresh empty working folder (outputs are relative, so anything written would
land there): all of them through ``main()`` in this process, and a few, one per kind of check,
through the real ``python -m core.studio`` (each such process spends ~1.5 s importing torch, so
they run two at a time in a module fixture).
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from core.networks import Generator
from core.networks.checkpoint import save_checkpoint
from core.studio.__main__ import main
from tests.conftest import REPO
from tests.core.studio.conftest import DEMO

SMALL_G = dict(z_dim=8, w_dim=8, img_resolution=8, img_channels=3, synthesis_kwargs=dict(channel_base=64))


def _inputs(folder: Path) -> dict[str, str]:
    """Networks and files the cases refer to, outside the working folders."""
    conditional = Generator(c_dim=4, mapping_kwargs=dict(num_layers=1), **SMALL_G)
    no_w_avg = Generator(c_dim=0, mapping_kwargs=dict(num_layers=1, w_avg_beta=None), **SMALL_G)
    PIL.Image.new("L", (40, 30), 128).save(folder / "grey.png")
    PIL.Image.new("RGBA", (40, 30), (1, 2, 3, 0)).save(folder / "clear.png")
    PIL.Image.new("RGB", (40, 30), (1, 2, 3)).save(folder / "rgb.png")
    (folder / "junk.png").write_text("not an image")
    (folder / "afile").write_text("x")
    np.savez(folder / "wrong_w.npz", w=np.zeros([1, 3, 5], np.float32))
    np.savez(folder / "object_w.npz", w=np.array([{"a": 1}], dtype=object))  # would need pickle
    np.save(folder / "bare.npy", np.zeros([1, 8, 64], np.float32))
    (folder / "two").mkdir()
    for i in range(2):
        PIL.Image.new("RGB", (32, 32), (i, 2, 3)).save(folder / "two" / f"{i}.png")
    (folder / "empty").mkdir()
    (folder / "junk.zip").write_bytes(b"not a zip")
    files = {"grey": "grey.png", "clear": "clear.png", "rgb": "rgb.png", "junk": "junk.png", "afile": "afile"}
    networks = {
        "demo": DEMO,
        "cond": save_checkpoint(folder / "cond", G_ema=conditional),
        "no_w_avg": save_checkpoint(folder / "now", G_ema=no_w_avg),
    }
    return {
        **{key: str(path) for key, path in networks.items()},
        **{key: str(folder / name) for key, name in files.items()},
        "wrong_w": str(folder / "wrong_w.npz"),
        "object_w": str(folder / "object_w.npz"),
        "bare": str(folder / "bare.npy"),
        "two": str(folder / "two"),
        "empty": str(folder / "empty"),
        "junk_zip": str(folder / "junk.zip"),
    }


GEN = ["generate", "--network", "{demo}", "--outdir", "out"]
MIX = ["mix", "--network", "{demo}", "--rows", "1,2", "--cols", "3", "--out", "grid.png"]
PROJ = ["project", "--network", "{demo}", "--outdir", "out", "--steps", "2", "--w-avg-samples", "10"]
VID = ["video", "--network", "{demo}", "--seeds", "0-1", "--seconds", "0.2", "--fps", "10"]
NEAR = ["nearest", "--data", "{two}", "--out", "nn.png", "--json", "nn.json", "--k", "1"]
CASES = {
    "missing target": ([*PROJ, "--target", "missing.png"], "missing.png"),
    "unreadable target": ([*PROJ, "--target", "{junk}"], "not an image"),
    "grey target for an RGB G": ([*PROJ, "--target", "{grey}"], "1 channel"),
    "transparent target": ([*PROJ, "--target", "{clear}"], "transparent"),
    "bad seed syntax": ([*GEN, "--seeds", "1-x"], "not a number"),
    "negative seed": ([*GEN, "--seeds", "-3"], "negative"),
    "seed above 2**32-1": ([*GEN, "--seeds", "4294967296"], "out of range"),
    "backwards range": ([*GEN, "--seeds", "9-2"], "backwards"),
    "styles out of range": ([*MIX, "--styles", "0-8"], "--styles 8"),
    "class for an unconditional G": ([*GEN, "--seeds", "1", "--class", "0"], "unconditional"),
    "class missing for a conditional G": (
        ["generate", "--network", "{cond}", "--seeds", "1", "--outdir", "out"],
        "--class",
    ),
    "class out of range": (
        ["generate", "--network", "{cond}", "--seeds", "1", "--outdir", "o", "--class", "4"],
        "out of range",
    ),
    "trunc without w_avg": (
        ["generate", "--network", "{no_w_avg}", "--seeds", "1", "--trunc", "0.7", "--outdir", "out"],
        "w_avg",
    ),
    "missing --vgg file": ([*PROJ, "--target", "{rgb}", "--vgg", "nowhere/vgg16.pt"], "vgg16.pt"),
    "unknown network": (["generate", "--network", "nowhere.json", "--seeds", "1", "--outdir", "out"], "nowhere"),
    "outdir under a file": (
        ["generate", "--network", "{demo}", "--seeds", "1", "--outdir", "{afile}/sub"],
        "not a folder",
    ),
    "out under a file": ([*MIX[:-1], "{afile}/grid.png"], "not a folder"),
    "video out under a file": ([*VID, "--out", "{afile}/walk.gif"], "not a folder"),
    "bad grid": ([*GEN, "--seeds", "1", "--grid", "4by2"], "--grid"),
    "grid too small": ([*GEN, "--seeds", "0-8", "--grid", "4x2"], "8 cells"),
    "video seeds not a multiple of the grid": (
        [*VID[:3], "--seeds", "0-2", "--grid", "2x1", "--out", "w.gif"],
        "multiple",
    ),
    "video out kind": ([*VID, "--out", "walk.avi"], ".mp4"),
    "projected w of another network": ([*GEN, "--projected-w", "{wrong_w}"], "shape"),
    "projected w needing pickle": ([*GEN, "--projected-w", "{object_w}"], "allow_pickle"),
    "projected w as a bare .npy": ([*GEN, "--projected-w", "{bare}"], "bare array"),
    "keyframes file missing": ([*VID[:3], "--keyframes", "nowhere.npz", "--out", "w.gif"], "nowhere.npz"),
    "nearest: missing network": ([*NEAR, "--network", "nowhere.json", "--seeds", "0"], "nowhere"),
    "nearest: empty --images folder": ([*NEAR, "--images", "{empty}"], "no images"),
    "nearest: k < 1": ([*NEAR, "--images", "{two}", "--k", "0"], "--k 0"),
    "nearest: k > dataset size": ([*NEAR, "--images", "{two}", "--k", "3"], "only 2 images"),
    "nearest: unreadable data": (
        ["nearest", "--data", "{junk_zip}", "--images", "{two}", "--out", "nn.png"],
        "junk.zip",
    ),
    "nearest: network and images": ([*NEAR, "--images", "{two}", "--network", "{demo}", "--seeds", "0"], "not both"),
    "nearest: network without seeds": ([*NEAR, "--network", "{demo}"], "--seeds"),
    "nearest: missing --inception file": ([*NEAR, "--images", "{two}", "--inception", "no/incep.pt"], "incep.pt"),
    "nearest: seeds with images": ([*NEAR, "--images", "{two}", "--seeds", "0-3"], "--network only"),
    "nearest: G and data disagree": ([*NEAR, "--network", "{cond}", "--seeds", "0"], "8 px"),
    "missing option": (["generate", "--seeds", "1", "--outdir", "out"], "--network"),
}
SUBPROCESS_CASES = ("missing option", "negative seed", "grey target for an RGB G", "trunc without w_avg",
                    "nearest: empty --images folder")


def _run(args: list[str], inputs: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    argv = [a.format(**inputs) for a in args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "ADA_STUDIO_VGG16": "", "ADA_VGG16_WEIGHTS": ""}
    cmd = [sys.executable, "-m", "core.studio", *argv]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    return _inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture(scope="module")
def results(inputs, tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    folders = {name: tmp_path_factory.mktemp("cwd") for name in SUBPROCESS_CASES}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_run, CASES[name][0], inputs, folders[name]) for name in SUBPROCESS_CASES}
        return {name: (future.result(), folders[name]) for name, future in futures.items()}


def _check(case: str, returncode: int | str | None, stderr: str, cwd: Path) -> None:
    lines = stderr.strip().splitlines()
    assert returncode == 2, stderr
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert "error" in lines[0] and CASES[case][1] in lines[0], lines[0]
    assert list(cwd.iterdir()) == [], "bad input must not leave files"


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_exit_2(case, inputs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ADA_STUDIO_VGG16", "")
    monkeypatch.setenv("ADA_VGG16_WEIGHTS", "")
    try:
        returncode = main([a.format(**inputs) for a in CASES[case][0]])
    except SystemExit as exc:  # argparse's own errors
        returncode = exc.code
    _check(case, returncode, capsys.readouterr().err, tmp_path)


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_bad_input_through_python_m_core_studio(case, results):
    proc, cwd = results[case]
    _check(case, proc.returncode, proc.stderr, cwd)
