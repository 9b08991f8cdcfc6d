"""Trainer entry point (the training loop lands with the training issue)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("train_headless: the trainer is not built yet (see the training issue); nothing to run", file=sys.stderr)
    return 2
