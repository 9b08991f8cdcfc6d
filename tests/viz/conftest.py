"""Visualizer test helpers: the fixture generator, a private Xvfb display, running the app."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
FIXTURES = (Path(__file__).parents[2] / ".." / "shared" / "fixtures").resolve()
FIXTURE_NAME = "sg2_res32_skip_resnet"


def fixture_file(suffix: str) -> Path:
    path = FIXTURES / f"{FIXTURE_NAME}{suffix}"
    if not path.is_file():
        pytest.skip(f"shared fixture {path} not found (expected in ../shared/fixtures beside the repo)")
    return path


@pytest.fixture(scope="session")
def fixture_generator() -> torch.nn.Module:
    """The fixture's reference generator weights in our Generator class."""
    from safetensors.torch import load_file

    from core.networks.stylegan2 import Generator

    meta = json.loads(fixture_file(".json").read_text())
    G = Generator(**meta["G_kwargs"])
    tensors = load_file(str(fixture_file(".safetensors")))
    G.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("G.")})
    return G.eval()


@pytest.fixture(scope="session")
def fixture_pkl() -> Path:
    return fixture_file(".snapshot.pkl")


def start_xvfb(screen: str = "1280x800x24") -> tuple[subprocess.Popen[bytes], str]:
    """Start a private Xvfb (``screen``: WxHxDEPTH); returns it and its display (":N"). FileNotFoundError
    when Xvfb is not installed, RuntimeError when it died before accepting clients. Also used by
    bench/bench_viz.py."""
    exe = shutil.which("Xvfb")
    if exe is None:
        raise FileNotFoundError("Xvfb is not installed (scripts/test.sh installs it with apt-get when run as root)")
    # -displayfd: Xvfb picks a free display number itself and writes it once it accepts clients.
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [exe, "-displayfd", str(write_fd), "-screen", "0", screen, "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()  # empty if Xvfb died first
    if not number:
        proc.kill()
        raise RuntimeError("Xvfb did not start")
    return proc, f":{number}"


@contextmanager
def xvfb_display(screen: str = "1280x800x24") -> Iterator[str]:
    """A private Xvfb display (":N") while the block runs; the test is skipped when Xvfb is not installed."""
    try:
        proc, display = start_xvfb(screen)
    except (FileNotFoundError, RuntimeError) as e:
        pytest.skip(str(e))
    try:
        yield display
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def xvfb() -> Iterator[str]:
    """A private Xvfb display (":N") for the GUI tests; skipped when Xvfb is not installed."""
    with xvfb_display() as display:
        yield display


def app_env(tmp_path: Path, display: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")  # never touch the user's recent list
    env["PYTHONPATH"] = str(REPO)
    if display:
        env["DISPLAY"] = display
    return env


def launch(args: list[str], env: dict[str, str], cwd: Path = REPO, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(REPO / "launch_viz.py"), *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def close_app(proc: subprocess.Popen[str]) -> None:
    """End a GUI started by a test: politely, then for sure."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str, proc: subprocess.Popen[str] | None = None
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` on timeout or app exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"the app exited ({proc.returncode}) while waiting for {what}:\n{out[-3000:]}")
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def read_state(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
