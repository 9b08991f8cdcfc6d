"""The vocabulary of augmentation, defined once: the run's mechanism and the p controller's mode.

Both are ``StrEnum``s, so their members are the plain strings the CLI, run.json, control.json and
resume states have always used ("ada" == Mechanism.ADA).
"""

from __future__ import annotations

from enum import StrEnum


class Mechanism(StrEnum):
    """What a run does against D overfitting: ``--aug``."""

    ADA = "ada"  # the ADA pipe at an adaptive p
    APA = "apa"  # fakes passed off as reals at an adaptive p (the ADA pipe too with --with-dataaug)
    FIXED = "fixed"  # the ADA pipe at a fixed p
    NOAUG = "noaug"  # nothing; r_t is still measured
    DIFFAUG = "diffaug"  # DiffAugment (Zhao et al. 2020) on everything D sees, always on; no p; r_t measured

    @property
    def adaptive(self) -> bool:
        """Whether the controller moves p (--target, --ada-kimg and --ada-interval apply)."""
        return self in (Mechanism.ADA, Mechanism.APA)

    def uses_pipe(self, with_dataaug: bool) -> bool:
        """Whether D's inputs go through the ADA pipe: with ada and fixed, and with apa only when asked."""
        return self in (Mechanism.ADA, Mechanism.FIXED) or (self is Mechanism.APA and with_dataaug)

    @property
    def p_mode(self) -> PMode:
        """How the p controller runs for this mechanism."""
        if self.adaptive:
            return PMode.ADAPTIVE
        return PMode.NOAUG if self in (Mechanism.NOAUG, Mechanism.DIFFAUG) else PMode.FIXED


class PMode(StrEnum):
    """How the p controller moves p (what control.json's aug_mode switches between)."""

    ADAPTIVE = "ada"  # towards the r_t target
    FIXED = "fixed"  # p stays where it is set
    NOAUG = "noaug"  # p is 0


def choices(enum: type[StrEnum]) -> tuple[str, ...]:
    """The plain strings of an enum's members, in definition order (for argparse and combos)."""
    return tuple(member.value for member in enum)
