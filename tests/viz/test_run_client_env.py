"""The trainer the GUI starts leaves a core for the GUI's own rendering."""

from __future__ import annotations

import os

from viz.run_client import trainer_env


def test_trainer_env_limits_threads_to_one_core_less() -> None:
    env = trainer_env({"PATH": "/usr/bin"})
    assert env["OMP_NUM_THREADS"] == str(max(1, (os.cpu_count() or 2) - 1))
    assert env["PATH"] == "/usr/bin"


def test_trainer_env_keeps_a_users_choice() -> None:
    assert trainer_env({"OMP_NUM_THREADS": "6"})["OMP_NUM_THREADS"] == "6"
