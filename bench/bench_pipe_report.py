"""Side by side: runs made with our AugmentPipe and with the public one (bench_public_augment.py).

For every kept snapshot (``snapshots/network-snapshot-*.json``) of every run it evaluates G_ema with
the same fixed latents and prints one row: p, FD and precision/recall in the offline feature space
(``fd_offline``, ``pr_offline`` of ``python -m core.metrics``, at ``--num`` fakes against the run's
whole dataset, e.g. all 1,797 digits); ``speckle``, the share of the fakes' pixel values (every
channel) that stand above or below all 8 neighbours by more than 0.1 of the [-1, 1] range, i.e.
isolated dots of another colour or brightness (the run's training images' share is printed once per
run, for reference); and for runs on ``builtin:digits`` the variety measure of
bench_mode_coverage.py (the entropy of the fakes' digits in bits, how many digits hold at least 2%
of them, and ``copy``, their distance to the run's training images over the left-out digits'
distance). Where the trainer computed metrics at its snapshots (metrics.jsonl), ``copies``
(copies_offline) and ``leak`` (the largest leaks_offline indicator; its op ends the row) come from
there. Then, per group and kimg, the median over the group's runs (its seeds). With ``--out`` it
draws the fixed-z fakes: one row per snapshot kimg, one 4x4 grid per run, groups side by side
(Pillow only).

Runs are named ``LABEL=RUN[,RUN...]``, one argument per group:

    OMP_NUM_THREADS=1 python bench/bench_pipe_report.py ours=runs/ours-s1/00000-...,runs/ours-s2/00000-... \\
        public=runs/pub-s1/00000-...,runs/pub-s2/00000-... --every 8 --out docs/pipes-digits.png
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_mode_coverage import coverage, histogram_stats, subset_reals, train_classifier  # noqa: E402

from core.data import ImageDataset  # noqa: E402
from core.io.images import from_uint8  # noqa: E402
from core.metrics.evaluate import MetricOptions, compute_metrics  # noqa: E402
from core.networks.checkpoint import load_checkpoint  # noqa: E402
from core.rundir import RunReader, kept_snapshots  # noqa: E402

GRID = 4  # fakes per side of a run's cell in the picture
COLUMNS = ("p", "FD", "prec", "recall", "speckle", "bits", ">=2%", "copy", "copies", "leak")
SPECKLE_STEP = 0.1  # how far a value must stand out from all 8 neighbours to count as a speckle


@dataclass
class Row:
    kimg: float
    values: dict[str, float]
    fakes: torch.Tensor  # the first GRID * GRID fixed-z fakes, [-1, 1]
    leak_op: str = ""  # the op with the largest in-run leak indicator at this snapshot


@dataclass
class Run:
    group: str
    path: Path
    rows: list[Row] = field(default_factory=list)


def parse_groups(specs: list[str]) -> list[Run]:
    runs = []
    for spec in specs:
        label, sep, paths = spec.partition("=")
        if not sep or not label or not paths:
            raise SystemExit(f"{spec!r}: name a group as LABEL=RUN[,RUN...]")
        for text in paths.split(","):
            path = Path(text).expanduser()
            if not (path / "snapshots").is_dir():
                raise SystemExit(f"{path}: not a run directory (no snapshots/ in it); name the folder holding run.json")
            runs.append(Run(label, path))
    return runs


def speckle(images: torch.Tensor, step: float = SPECKLE_STEP) -> float:
    """Share of pixel values (per channel) above or below all 8 neighbours by more than ``step``."""
    x = images.reshape(-1, 1, *images.shape[2:]).float()
    rows = torch.nn.functional.unfold(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), 3)
    neighbours = torch.cat([rows[:, :4], rows[:, 5:]], dim=1)  # [N*C, 8, H*W], the centre left out
    centre = x.flatten(2)
    above = centre > neighbours.amax(dim=1, keepdim=True) + step
    below = centre < neighbours.amin(dim=1, keepdim=True) - step
    isolated = above | below
    return isolated.float().mean().item()


def evaluate(run: Run, clf: torch.nn.Module, num: int, every: float) -> None:
    reals = subset_reals(run.path)
    options = RunReader(run.path).options() or {}
    data = str(options.get("data"))
    digits = data == "builtin:digits"
    dataset = ImageDataset(data)  # the whole dataset, opened once for every snapshot's FD and precision/recall
    trained_on = ImageDataset(data, subset=options.get("subset"), seed=options.get("seed", 0))
    real_images = from_uint8(torch.stack([torch.as_tensor(trained_on[i][0]) for i in range(len(trained_on))]))
    print(f"  {run.group:>8} {run.path.parent.name[:24]:>24}  speckle of its {len(trained_on)} training images: "
          f"{speckle(real_images):.4f}", flush=True)
    in_run: dict[int, dict[str, dict[str, float]]] = {}  # kimg -> metric -> results, from metrics.jsonl
    for record in RunReader(run.path).metrics():
        in_run.setdefault(round(record.get("kimg", -1)), {})[record["metric"]] = record["results"]
    for kimg, snapshot in kept_snapshots(run.path):
        if every and kimg % every:
            continue
        ckpt = load_checkpoint(snapshot)
        G = ckpt.G_ema.eval().requires_grad_(False)
        results = compute_metrics(G, dataset, ["fd_offline", "pr_offline"], MetricOptions(num_gen=num, progress=False))
        values = {"p": float(ckpt.meta.get("p", float("nan"))),
                  "FD": results["fd_offline"].results["fd_offline"],
                  "prec": results["pr_offline"].results["pr_offline_precision"],
                  "recall": results["pr_offline"].results["pr_offline_recall"]}
        pred, _, fakes = coverage(G, clf, num)
        values["speckle"] = speckle(fakes)
        if digits:
            _, bits, wide = histogram_stats(pred)
            values.update({"bits": bits, ">=2%": float(wide)})
            if reals is not None:
                values["copy"] = reals.copy_ratio(fakes)
        leak_op = _in_run_metrics(in_run.get(round(kimg)), values)
        run.rows.append(Row(kimg, values, fakes[: GRID * GRID], leak_op))
        cells = "  ".join(_cell(c, values.get(c, float("nan"))) for c in COLUMNS)
        print(f"  {run.group:>8} {run.path.parent.name[:24]:>24} {kimg:6g}  {cells}  {leak_op}", flush=True)


def _cell(column: str, value: float) -> str:
    return f"{value:7.4f}" if column == "speckle" else f"{value:7.3f}"  # speckle: a few per thousand


def _in_run_metrics(records: dict[str, dict[str, float]] | None, values: dict[str, float]) -> str:
    """The trainer's own metrics at a snapshot (metrics.jsonl, when it computed them): ``copies`` =
    copies_offline, the share of fakes flagged as copies; ``leak`` = the largest leaks_offline
    indicator, whose op is returned."""
    if not records:
        return ""
    if "copies_offline" in records:
        values["copies"] = records["copies_offline"]["copies_offline"]
    leaks = records.get("leaks_offline", {})
    if not leaks:
        return ""
    op, value = max(leaks.items(), key=lambda kv: kv[1])
    values["leak"] = value
    return op.removeprefix("leak/")


def medians(runs: list[Run]) -> None:
    print("\nmedian over each group's runs")
    print(f"  {'group':>8} {'kimg':>6} {'runs':>4}  " + "  ".join(f"{c:>7}" for c in COLUMNS))
    for group in dict.fromkeys(r.group for r in runs):
        members = [r for r in runs if r.group == group]
        for kimg in sorted({row.kimg for r in members for row in r.rows}):
            rows = [row for r in members for row in r.rows if row.kimg == kimg]
            cells = []
            for c in COLUMNS:
                vals = [row.values[c] for row in rows if c in row.values]
                cells.append(_cell(c, statistics.median(vals)) if vals else f"{'-':>7}")
            print(f"  {group:>8} {kimg:6g} {len(rows):4d}  " + "  ".join(cells))


def _tile(fakes: torch.Tensor) -> Image.Image:
    n, c, h, w = fakes.shape
    grid = torch.zeros(c, GRID * h, GRID * w)
    for i in range(min(n, GRID * GRID)):
        grid[:, (i // GRID) * h : (i // GRID + 1) * h, (i % GRID) * w : (i % GRID + 1) * w] = fakes[i]
    pixels = ((grid + 1) * 127.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(pixels.squeeze(-1) if c == 1 else pixels).convert("RGB")


def draw(runs: list[Run], out: Path, every: float = 0) -> None:
    kimgs = sorted({row.kimg for r in runs for row in r.rows if not (every and row.kimg % every)})
    tiles = {(id(r), row.kimg): _tile(row.fakes) for r in runs for row in r.rows}
    if not tiles:
        raise SystemExit("no snapshots to draw")
    cell = next(iter(tiles.values())).width
    gap, left, top = 6, 70, 36
    img = Image.new("RGB", (left + len(runs) * (cell + gap), top + len(kimgs) * (cell + gap)), "white")
    ink = ImageDraw.Draw(img)
    for j, run in enumerate(runs):
        ink.text((left + j * (cell + gap), 4), run.group, fill="black")
        ink.text((left + j * (cell + gap), 18), f"seed {_seed(run)}", fill="black")
    for i, kimg in enumerate(kimgs):
        ink.text((4, top + i * (cell + gap) + cell // 2 - 6), f"{kimg:g} kimg", fill="black")
        for j, run in enumerate(runs):
            tile = tiles.get((id(run), kimg))
            if tile is not None:
                img.paste(tile, (left + j * (cell + gap), top + i * (cell + gap)))
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out, optimize=True)


def _seed(run: Run) -> str:
    return str((RunReader(run.path).options() or {}).get("seed", "?"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("groups", nargs="+", help="LABEL=RUN[,RUN...]: one group of run directories (e.g. its seeds)")
    ap.add_argument("--num", type=int, default=1000, help="fakes per snapshot for FD, precision/recall and variety")
    ap.add_argument("--every", type=float, default=0, help="only snapshots at multiples of this kimg (0: all)")
    ap.add_argument("--out", type=Path, help="draw the fixed-z fakes grids, snapshot by snapshot, into this PNG")
    ap.add_argument("--draw-every", type=float, default=0, help="picture only snapshots at multiples of this kimg")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    runs = parse_groups(args.groups)
    clf, acc = train_classifier()
    print(f"digit classifier: held-out accuracy {acc:.3f}")
    print(f"  {'group':>8} {'run':>24} {'kimg':>6}  " + "  ".join(f"{c:>7}" for c in COLUMNS))
    for run in runs:
        evaluate(run, clf, args.num, args.every)
    medians(runs)
    if args.out is not None:
        draw(runs, args.out, args.draw_every)
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
