#!/usr/bin/env python3
"""ADA Studio visualizer: ``python launch_viz.py [snapshot | run directory | public .pkl]``."""

import sys

from viz.app import main

if __name__ == "__main__":
    sys.exit(main())
