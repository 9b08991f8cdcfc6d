"""ADA Studio's after-training tools: ``python -m core.studio generate|mix|video|project``.

They read our snapshots, a run directory (its newest snapshot) or a public StyleGAN2-ADA .pkl
(through the safe importer), and follow the public tools' conventions, so that the same weights
and flags give the same pixels and files (design 3.6).
"""

from core.studio.common import StudioError

__all__ = ["StudioError"]
