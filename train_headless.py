#!/usr/bin/env python3
"""ADA Studio trainer: ``python train_headless.py --outdir runs --data DATA --aug ada`` (also under torchrun)."""

import sys

from core.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
