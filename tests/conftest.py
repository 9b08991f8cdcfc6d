"""Shared test configuration: fixture paths, deterministic seeds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = (REPO.parent / "shared" / "fixtures").resolve()


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def pytest_sessionstart(session: pytest.Session) -> None:
    # In CI the parity tests must run: a missing ../shared fails the run with one line instead of
    # quietly skipping ~30 tests. Locally those tests skip, each saying why.
    if _in_ci() and not SHARED_FIXTURES.is_dir():
        pytest.exit(f"CI: shared fixtures missing at {SHARED_FIXTURES} (clone with ../shared beside the repo)",
                    returncode=3)


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"shared fixtures not found at {SHARED_FIXTURES} (expected beside the repo)")
    return SHARED_FIXTURES
