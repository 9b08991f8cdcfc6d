"""python -m core.studio CMD: generate images, style-mixing grids, latent-walk videos, projections,
nearest training images (memorisation).

Bad input is reported as one ``error:`` line on stderr with exit status 2, before any file is written.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from core.io.cli import OneLineParser
from core.studio.common import NOISE_MODES, StudioError, parse_number_list

log = logging.getLogger("core.studio")
PROG = "ada-studio"
NETWORK_HELP = "our snapshot (.json/.safetensors), a run directory (its newest snapshot), or a public .pkl"


def _common(p: argparse.ArgumentParser, trunc: bool = True, network_required: bool = True) -> None:
    p.add_argument("--network", required=network_required, help=NETWORK_HELP)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--class", dest="class_idx", type=int, help="class label (conditional networks only)")
    p.add_argument("-v", "--verbose", action="store_true", help="log what is loaded and written")
    p.add_argument(
        "--threads", type=int, help="CPU threads (default: torch's); 1 is fastest for small nets on a busy machine"
    )
    if trunc:
        p.add_argument("--trunc", type=float, default=1.0, help="truncation psi (default 1: none)")
        p.add_argument("--noise-mode", choices=NOISE_MODES, default="const")


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="one PNG per seed (seed0042.png), optionally a grid")
    _common(gen)
    gen.add_argument("--seeds", help="e.g. 0-7,42")
    gen.add_argument("--outdir", required=True)
    gen.add_argument("--grid", help="COLUMNSxROWS: also write grid.png")
    gen.add_argument("--projected-w", help="render the ws of a projected_w.npz instead of seeds (proj00.png, ...)")
    gen.add_argument("--batch", type=int, default=1, help="seeds per forward pass (>1: faster, see README)")

    mix = sub.add_parser("mix", help="style-mixing grid, as the public style_mixing.py")
    _common(mix)
    mix.add_argument("--rows", required=True, help="row seeds, e.g. 85,100,75")
    mix.add_argument("--cols", required=True, help="column seeds, e.g. 55,821,1789")
    mix.add_argument("--styles", default="0-6", help="layers taken from the column seed (default 0-6)")
    mix.add_argument("--out", required=True, help="grid PNG")
    mix.add_argument("--outdir", help="also write each cell as ROW-COL.png here")

    vid = sub.add_parser("video", help="latent walk between keyframes: .mp4, .gif or a folder/ of PNGs")
    _common(vid)
    vid.add_argument("--seeds", help="keyframe seeds, dealt to the grid cells in order")
    vid.add_argument("--keyframes", help="seeds and/or projected_w.npz files, in order (instead of --seeds)")
    vid.add_argument("--grid", default="1x1", help="COLUMNSxROWS (default 1x1)")
    vid.add_argument("--seconds", type=float, default=8.0)
    vid.add_argument("--fps", type=float, default=30.0)
    vid.add_argument("--kind", choices=("lerp", "slerp"), default="lerp")
    vid.add_argument("--loop", action="store_true", help="walk back to the first keyframe")
    vid.add_argument("--out", required=True, help="walk.mp4, walk.gif or DIR/")

    proj = sub.add_parser("project", help="find the w of a target image (writes projected_w.npz)")
    _common(proj, trunc=False)
    proj.add_argument("--target", required=True, help="image file; centre-cropped and resized to G's size")
    proj.add_argument("--steps", type=int, default=1000)
    proj.add_argument("--seed", type=int, default=303)
    proj.add_argument("--outdir", required=True)
    proj.add_argument("--save-video", action="store_true", help="also write proj.mp4 (target | projection)")
    proj.add_argument("--vgg", help="vgg16.pt (TorchScript; default $ADA_STUDIO_VGG16); else a pixel fallback")
    proj.add_argument("--w-avg-samples", type=int, default=10000, help="z samples for the mean and spread of W")
    _nearest_parser(sub)
    return parser


def _nearest_parser(sub: argparse._SubParsersAction) -> None:
    near = sub.add_parser("nearest", help="each image's k nearest training images; copies flagged")
    _common(near, network_required=False)
    near.add_argument("--images", help="a folder of images to check instead of --network (resized to --data's size)")
    near.add_argument("--data", required=True, help="the training set: folder, zip or builtin:<name>")
    near.add_argument("--subset", type=int, help="search only the images a run trained on with --subset N "
                      "(the same random selection; give the run's --seed as --subset-seed)")
    near.add_argument("--subset-seed", type=int, default=0, help="the training run's --seed (default 0)")
    near.add_argument("--seeds", help="seeds of --network's images, e.g. 0-63")
    near.add_argument("--k", type=int, default=3, help="neighbours per image (default 3)")
    near.add_argument("--out", required=True, help="grid PNG: each row the image, then its neighbours")
    near.add_argument("--json", help="also write [{image, neighbours: [{name, distance}], copy}] here")
    near.add_argument("--batch", type=int, default=16, help="images per forward pass")
    near.add_argument("--inception", help="inception-2015-12-05.pt (default $ADA_INCEPTION_WEIGHTS; else offline)")


def _seeds(text: str | None, what: str = "--seeds") -> tuple[int, ...]:
    return tuple(parse_number_list(text, what)) if text is not None else ()


def _generate(args: argparse.Namespace) -> str:
    from core.studio.generate import GenerateOptions, run_generate

    opts = GenerateOptions(
        network=args.network, device=args.device, class_idx=args.class_idx, trunc=args.trunc,
        noise_mode=args.noise_mode, outdir=args.outdir, seeds=_seeds(args.seeds), grid=args.grid,
        projected_w=args.projected_w, batch=args.batch,
    )  # fmt: skip
    written = run_generate(opts)
    return f"wrote {len(written)} image(s) to {Path(args.outdir)}"


def _mix(args: argparse.Namespace) -> str:
    from core.studio.mix import MixOptions, run_mix

    opts = MixOptions(
        network=args.network, device=args.device, class_idx=args.class_idx, trunc=args.trunc,
        noise_mode=args.noise_mode, rows=_seeds(args.rows, "--rows"), cols=_seeds(args.cols, "--cols"),
        styles=_seeds(args.styles, "--styles"), out=args.out, outdir=args.outdir,
    )  # fmt: skip
    written = run_mix(opts)
    return f"wrote {written[-1]}" + (f" and {len(written) - 1} cell image(s) to {args.outdir}" if args.outdir else "")


def _video(args: argparse.Namespace) -> str:
    from core.studio.video import VideoOptions, run_video

    keyframes = tuple(k for k in (args.keyframes or "").split(",") if k)
    opts = VideoOptions(
        network=args.network, device=args.device, class_idx=args.class_idx, trunc=args.trunc,
        noise_mode=args.noise_mode, out=args.out, seeds=_seeds(args.seeds), keyframes=keyframes, grid=args.grid,
        seconds=args.seconds, fps=args.fps, kind=args.kind, loop=args.loop,
    )  # fmt: skip
    out, count = run_video(opts)
    return f"wrote {out} ({count} frames)"


def _project(args: argparse.Namespace) -> str:
    from core.studio.project import ProjectConfig, ProjectOptions, run_project

    opts = ProjectOptions(
        network=args.network, device=args.device, class_idx=args.class_idx, target=args.target,
        outdir=args.outdir, seed=args.seed, save_video=args.save_video, vgg=args.vgg,
        config=ProjectConfig(num_steps=args.steps, w_avg_samples=args.w_avg_samples),
    )  # fmt: skip
    written = run_project(opts)
    return f"wrote {', '.join(p.name for p in written)} to {Path(args.outdir)}"


def _nearest(args: argparse.Namespace) -> str:
    from core.metrics.nearest import copy_fraction
    from core.studio.nearest import NearestCommand, run_nearest

    opts = NearestCommand(
        data=args.data, network=args.network, device=args.device, class_idx=args.class_idx, trunc=args.trunc,
        noise_mode=args.noise_mode, images=args.images, seeds=_seeds(args.seeds), k=args.k, out=args.out,
        json=args.json, batch=args.batch, inception=args.inception, subset=args.subset, subset_seed=args.subset_seed,
    )  # fmt: skip
    written, matches = run_nearest(opts)
    copies = sum(m.copy for m in matches)
    return (f"{copies} of {len(matches)} image(s) flagged as copies (copy score {copy_fraction(matches):.3f}); "
            f"wrote {', '.join(str(p) for p in written)}")


COMMANDS: dict[str, Callable[[argparse.Namespace], str]] = {
    "generate": _generate, "mix": _mix, "video": _video, "project": _project, "nearest": _nearest,
}  # fmt: skip


def _set_threads(threads: int | None) -> None:
    # Small networks spend more time synchronising threads than computing; with another process
    # on the same cores, two threads made a projection step 7x slower than one (README).
    if threads is None:
        return
    if threads < 1:
        raise StudioError(f"--threads {threads}: must be >= 1")
    import torch

    torch.set_num_threads(threads)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level = logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format=f"{PROG}: %(levelname)s: %(message)s")
    try:
        _set_threads(args.threads)
        print(COMMANDS[args.command](args))
    except StudioError as exc:
        message = " ".join(str(exc).split())  # one line, whatever the message held
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
