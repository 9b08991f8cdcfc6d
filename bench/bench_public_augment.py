"""Train with the public StyleGAN2-ADA AugmentPipe in place of ours: same loop, data, seed and p schedule.

Does our ADA *train* like the public one? This harness runs our trainer (``train_headless.py``'s
whole command line) with one change: what D sees goes through the AugmentPipe of NVlabs'
stylegan2-ada-pytorch, imported from a checkout you name, instead of ours. Nothing of the public
code is copied into this tree. Our pipe stays in the run for everything else: the p controller
writes p into it, the public pipe reads p from it before every call, and snapshots save it (so a
run of either kind resumes and loads like any other). The "what D sees" previews come from our pipe.

    git clone https://github.com/NVlabs/stylegan2-ada-pytorch /tmp/sg2ada   # once, anywhere
    python bench/bench_public_augment.py --public /tmp/sg2ada --pipe public -- \\
        --outdir runs/pub --data builtin:digits --cfg cpu32 --aug ada --ada-kimg 100 --kimg 40 --seed 1
    python bench/bench_public_augment.py --pipe ours -- (the same options)    # the same run with ours

One substitution inside the public pipe: on torch >= 1.10 the public ``grid_sample_gradfix`` falls
back to ``F.grid_sample``, whose second derivative PyTorch does not implement, so R1 through the
geometric ops would fail. Its ``grid_sample`` is pointed at ours (same forward as F.grid_sample
with align_corners=False, zeros padding, bilinear; with a double backward). Everything else
(which ops fire, their parameter distributions, the resampling filters, padding, the order of
ops) is the public code. ``--pipe ours`` runs exactly ``train_headless.py``.

Two probes of where runs part (docs/training.md, issue 25): ``--pipe ours --draws global`` makes our
pipe take every random number from torch's global generator, op after op, as the public pipe does
(instead of its per-op streams); ``--draws public`` feeds it exactly the public pipe's numbers, in the
public order and count, so that it augments every batch as the public pipe would.
``--pipe public --shift N`` draws N extra numbers from the global generator before every call: the
public pipe with another realisation of its random draws.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.augment import pipeline as our_pipeline  # noqa: E402
from core.augment.pipeline import BAND_NAMES, OP_NAMES, AugmentPipe  # noqa: E402
from core.ops import grid_sample_gradfix as our_grid_sample  # noqa: E402
from core.training import cli  # noqa: E402
from core.training.loop import Trainer  # noqa: E402

log = logging.getLogger("bench_public_augment")

# Public AugmentPipe keywords that are ours under the same name (probability multipliers and the
# ops' ranges); the four filter-band multipliers become its imgfilter_bands list.
_PUBLIC_FLOAT_KEYS = (
    "xflip", "rotate90", "xint", "xint_max", "scale", "rotate", "aniso", "xfrac", "scale_std", "rotate_max",
    "aniso_std", "xfrac_std", "brightness", "contrast", "lumaflip", "hue", "saturation", "brightness_std",
    "contrast_std", "hue_max", "saturation_std", "imgfilter", "imgfilter_std", "noise", "cutout", "noise_std",
    "cutout_size",
)  # fmt: skip


def import_public_pipe(checkout: Path) -> type[nn.Module]:
    """The public ``training.augment.AugmentPipe`` class from a stylegan2-ada-pytorch checkout."""
    if not (checkout / "training" / "augment.py").is_file():
        raise SystemExit(f"--public {checkout}: no training/augment.py there; name a stylegan2-ada-pytorch checkout")
    sys.path.insert(0, str(checkout))
    try:
        from torch_utils.ops import grid_sample_gradfix  # type: ignore[import-not-found]
        from training.augment import AugmentPipe as PublicAugmentPipe  # type: ignore[import-not-found]
    except ModuleNotFoundError as error:  # its dnnlib imports requests, which we do not depend on
        raise SystemExit(
            f"--public {checkout}: its code imports {error.name!r}, which is not installed; pip install {error.name}"
        ) from None

    grid_sample_gradfix.grid_sample = our_grid_sample.grid_sample  # see the module docstring
    return PublicAugmentPipe


def public_kwargs(ours: AugmentPipe) -> dict[str, Any]:
    """The public constructor's keywords for the ops and ranges of our pipe."""
    mult = ours.multipliers()
    kwargs: dict[str, Any] = {k: mult[k] for k in _PUBLIC_FLOAT_KEYS if k in mult}
    kwargs.update({k: float(getattr(ours, k)) for k in _PUBLIC_FLOAT_KEYS if k not in kwargs and hasattr(ours, k)})
    kwargs["imgfilter_bands"] = [mult[b] for b in BAND_NAMES]
    return kwargs


class PublicPipe(nn.Module):
    """The public pipe, reading p from our pipe (which the controller moves) before every call."""

    def __init__(self, ours: AugmentPipe, public_cls: type[nn.Module], shift: int = 0) -> None:
        super().__init__()
        self.ours = [ours]  # a list: not a submodule, so nothing of it is saved twice or moved
        self.public = public_cls(**public_kwargs(ours)).to(ours.p.device)
        self.shift = shift

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            self.public.p.copy_(self.ours[0].p)
        if self.shift:
            torch.rand(self.shift, device=images.device)  # another realisation of the public draws
        return self.public(images)


# The public pipe's draws for the ops ours has: (op, uniform or normal, values per image), each
# followed by one uniform per image that decides whether the op fires. Its rotation draws twice,
# around the anisotropic scaling.
_PUBLIC_DRAW_ORDER = (
    ("xflip", "u", 1), ("rotate90", "u", 1), ("xint", "u", 2), ("scale", "n", 1), ("rotate", "u", 1),
    ("aniso", "n", 1), ("rotate", "u", 1), ("xfrac", "n", 2), ("brightness", "n", 1), ("contrast", "n", 1),
    ("lumaflip", "u", 1), ("hue", "u", 1), ("saturation", "n", 1),
)  # fmt: skip


class _GlobalDraws(our_pipeline._Draws):
    """Every draw from torch's global generator, op after op (``--draws global``)."""

    def select(self, stream: int) -> None:
        pass

    def uniform(self, *shape: int) -> torch.Tensor:
        return torch.rand(shape)

    def normal(self, *shape: int) -> torch.Tensor:
        return torch.randn(shape)

    def fires(self, n: int, prob: float) -> torch.Tensor:
        return torch.rand(n) < prob


class _PublicDraws(our_pipeline._Draws):
    """The public pipe's random numbers, drawn up front in its order, handed out in ours
    (``--draws public``). Only for the ops of _PUBLIC_DRAW_ORDER (no filter, noise or cutout)."""

    def __init__(self, n: int, channels: int, multipliers: dict[str, float]) -> None:
        self.base_seed, self.q, self._gen, self._op = 0, None, None, ""
        self._queue: dict[str, list[torch.Tensor]] = {}
        for op, kind, width in _PUBLIC_DRAW_ORDER:
            if multipliers[op] > 0 and (channels > 1 or op not in ("hue", "saturation")):
                values = torch.rand(n, width) if kind == "u" else torch.randn(n, width)
                self._queue.setdefault(op, []).extend([values if width > 1 else values[:, 0], torch.rand(n)])

    def select(self, stream: int) -> None:
        self._op = OP_NAMES[stream]

    def uniform(self, *shape: int) -> torch.Tensor:
        return self._queue[self._op].pop(0)

    normal = uniform

    def fires(self, n: int, prob: float) -> torch.Tensor:
        return self._queue[self._op].pop(0) < prob


def use_draws(kind: str) -> None:
    """Our pipe's draws for training calls (no generator): ``own`` (its per-op streams), ``global`` or
    ``public`` (see the module docstring). Previews with their own generator keep their streams."""
    if kind == "own":
        return
    original = AugmentPipe._plan

    def plan(self: AugmentPipe, shape: torch.Size, p: float, generator: torch.Generator | None,
             debug_percentile: float | None) -> tuple[Any, Any]:  # fmt: skip
        if generator is not None or debug_percentile is not None:
            return original(self, shape, p, generator, debug_percentile)
        mult = self.multipliers()
        if kind == "public" and any(mult[op] > 0 for op in ("imgfilter", "noise", "cutout")):
            raise SystemExit("--draws public covers the bgc ops only; switch imgfilter, noise and cutout off")
        n, c = shape[:2]

        def draws(_generator: Any, _debug: Any) -> our_pipeline._Draws:
            return _PublicDraws(n, c, mult) if kind == "public" else _GlobalDraws(None, None)

        # Our own planning, with these draws in place of the per-op streams for this one call.
        own = our_pipeline._Draws
        our_pipeline._Draws = draws  # type: ignore[assignment, misc]
        try:
            return original(self, shape, p, generator, debug_percentile)
        finally:
            our_pipeline._Draws = own  # type: ignore[misc]

    AugmentPipe._plan = plan  # type: ignore[method-assign]


def install(public_cls: type[nn.Module], shift: int = 0) -> None:
    """Every Trainer made after this sends D's input through the public pipe."""
    original = Trainer.__init__

    def init(self: Trainer, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if self.aug.pipe is None:
            raise SystemExit("--pipe public needs an ADA pipe in the run (--aug ada, fixed or apa with a pipe)")
        self.loss.augment_pipe = PublicPipe(self.aug.pipe, public_cls, shift)
        log.info("D's input goes through the public AugmentPipe: %s", public_kwargs(self.aug.pipe))

    Trainer.__init__ = init  # type: ignore[method-assign]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipe", choices=("ours", "public"), required=True)
    ap.add_argument("--public", type=Path, help="a stylegan2-ada-pytorch checkout (needed for --pipe public)")
    ap.add_argument("--draws", choices=("own", "global", "public"), default="own",
                    help="--pipe ours: where our pipe's random numbers come from (module docstring)")
    ap.add_argument("--shift", type=int, default=0, metavar="N",
                    help="--pipe public: N extra global draws before every call (another realisation)")
    ap.add_argument("train", nargs=argparse.REMAINDER, help="-- then train_headless.py's options")
    args = ap.parse_args()
    train_argv = args.train[1:] if args.train[:1] == ["--"] else args.train
    if args.draws != "own" and args.pipe != "ours":
        ap.error("--draws is for --pipe ours")
    if args.shift and args.pipe != "public":
        ap.error("--shift is for --pipe public")
    use_draws(args.draws)
    if args.pipe == "public":
        if args.public is None:
            ap.error("--pipe public needs --public PATH (a stylegan2-ada-pytorch checkout)")
        install(import_public_pipe(args.public.expanduser().resolve()), args.shift)
        if "--desc" not in train_argv:
            train_argv = [*train_argv, "--desc", "publicpipe"]
    return cli.main(train_argv)


if __name__ == "__main__":
    sys.exit(main())
