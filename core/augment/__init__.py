"""Augmentation for GAN training on limited data: ADA's pipeline, the adaptive p controller, APA
and DiffAugment."""

from core.augment.adaptive import AdaController
from core.augment.apa import PseudoAugment, apa_replace
from core.augment.diffaug import DiffAugment, diff_augment
from core.augment.modes import Mechanism, PMode
from core.augment.pipeline import (
    BAND_NAMES,
    MULTIPLIER_NAMES,
    OP_NAMES,
    PRESETS,
    STRENGTH_NAMES,
    AugmentPipe,
    AugmentStrengths,
)

__all__ = [
    "BAND_NAMES",
    "MULTIPLIER_NAMES",
    "OP_NAMES",
    "PRESETS",
    "STRENGTH_NAMES",
    "AdaController",
    "AugmentPipe",
    "AugmentStrengths",
    "DiffAugment",
    "Mechanism",
    "PMode",
    "PseudoAugment",
    "apa_replace",
    "diff_augment",
]
