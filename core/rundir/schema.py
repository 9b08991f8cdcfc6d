"""What events.jsonl holds: event kinds, status states, and the stat names both ends use.

The trainer writes these names and the GUI, the metrics tools and the benchmarks read them; none
of them spells one itself. Stat names are the public StyleGAN2-ADA ones, so users of its
TensorBoard logs recognise them.
"""

from __future__ import annotations

EVENT_KINDS = ("stats", "tick", "snapshot", "preview", "control", "status", "metric")
# Status event states, and what RunReader.status() reports for each.
STATES = ("started", "paused", "resumed", "stopped", "finished", "failed")
STATE_OF = {"started": "running", "resumed": "running", "paused": "paused",
            "stopped": "stopped", "finished": "finished", "failed": "failed"}

STAT_P = "Progress/augment"            # augmentation probability p
STAT_RT = "Loss/signs/real"            # r_t = E[sign(D(real))], what ADA steers toward its target
STAT_RT_CONTROLLER = "Progress/rt"     # r_t as the p controller last measured it (ticks)
STAT_TICK = "Progress/tick"
STAT_KIMG = "Progress/kimg"
STAT_SEC_PER_TICK = "Timing/sec_per_tick"
STAT_SEC_PER_KIMG = "Timing/sec_per_kimg"
STAT_PEAK_GPU_MEM = "Resources/peak_gpu_mem_gb"
STAT_LOSS_G = "Loss/G/loss"
STAT_LOSS_D = "Loss/D/loss"
STAT_R1 = "Loss/r1_penalty"
STAT_PL = "Loss/pl_penalty"
STAT_SCORES_REAL = "Loss/scores/real"
STAT_SCORES_FAKE = "Loss/scores/fake"
STAT_SIGNS_FAKE = "Loss/signs/fake"
STAT_LOSS_G_REG = "Loss/G/reg"
STAT_LOSS_D_REG = "Loss/D/reg"
LOSS_PREFIX = "Loss/"
TIMING_PREFIX = "Timing/"


def timing_stat(phase: str) -> str:
    """The stat name of one training phase's time in milliseconds (Timing/Gmain, ...)."""
    return f"{TIMING_PREFIX}{phase}"
