"""Mode coverage of digits runs: which digits a run's G_ema draws, snapshot by snapshot.

A generator that loses variety (mode collapse) still gets a fair FID on a small dataset for a
while, but a digit classifier sees it at once. This script trains a small classifier on the labelled
``builtin:digits`` (1,797 images; it reports its held-out accuracy first), then for every kept
snapshot of each run (``snapshots/network-snapshot-*.json``) draws ``--num`` fakes from G_ema with
fixed latents and prints:

- the share of each digit 0-9 among the fakes (in percent),
- the entropy of that histogram in bits (log2 10 = 3.32 when all ten are equally common; the
  training subset's own entropy is printed for comparison),
- how many digits make up at least 2% of the fakes,
- the classifier's mean confidence (low when the fakes are not digit-like yet),
- ``copy``: how close the fakes sit to the run's training images, relative to how close the digits
  the subset left out sit to them (about 1: new digits; well under 1: copies of training images).

With ``--sameness`` it also prints, per snapshot, D's mean logit on the run's own training reals
(no augmentation) in ordinary minibatches and in minibatches whose minibatch-stddev groups each hold
copies of one real, and the drop between the two: how much D penalises a lack of variety.

``--symmetry`` (no runs needed) prints, per digit, how close the digit's images stay to the real
digits when flipped or turned the ways ADA's geometric ops flip and turn them: the median distance
from each transformed image to its nearest real digit, over the median distance between
neighbouring real digits (16x16 grey, all 1,797 images). A small ratio means that the transformed
digit still looks like a real one.

    OMP_NUM_THREADS=1 python bench/bench_mode_coverage.py RUN [RUN ...] [--num 2000] [--out docs/x.png]

With ``--out`` it also draws the entropy against kimg, one line per run (Pillow only). Runs on the
CPU in a few seconds per snapshot with the cpu32 preset.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.data import ImageDataset  # noqa: E402
from core.networks.checkpoint import load_checkpoint  # noqa: E402
from core.rundir import RunReader  # noqa: E402
from core.rundir.layout import kept_snapshots  # noqa: E402

CLASSES = 10
MIN_SHARE = 0.02
W, H, PAD = 900, 420, 50
COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127)]


def _features(images: torch.Tensor) -> torch.Tensor:
    """[N, C, 32, 32] in [-1, 1] -> grey 16x16, flattened (the digits are 8x8 upsampled)."""
    grey = images.mean(dim=1, keepdim=True)
    return F.adaptive_avg_pool2d(grey, 16).flatten(1)


def _classifier() -> nn.Module:
    return nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, CLASSES))


def _fit(x: torch.Tensor, y: torch.Tensor, steps: int = 600, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = _classifier()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
    for _ in range(steps):
        opt.zero_grad()
        # Small random shifts, so a fake drawn a pixel off-centre is still read as its digit.
        dx, dy = rng.integers(-1, 2, size=2)
        xs = torch.roll(x.view(-1, 1, 16, 16), shifts=(int(dy), int(dx)), dims=(2, 3)).flatten(1)
        F.cross_entropy(net(xs), y).backward()
        opt.step()
    return net.eval()


def _all_images(ds: ImageDataset) -> torch.Tensor:
    return torch.from_numpy(np.stack([ds.get_image(i) for i in range(len(ds))])).float() / 127.5 - 1


def _all_digits(ds: ImageDataset) -> torch.Tensor:
    """The digit of every image of a labelled builtin:digits dataset."""
    return torch.from_numpy(np.stack([ds.get_label(i) for i in range(len(ds))])).argmax(dim=1)


def train_classifier() -> tuple[nn.Module, float]:
    """A digit classifier on all of builtin:digits, and its accuracy on a 20% hold-out (fitted apart)."""
    ds = ImageDataset("builtin:digits", use_labels=True)
    labels = _all_digits(ds)
    x = _features(_all_images(ds))
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))
    cut = int(0.8 * len(ds))
    held = _fit(x[order[:cut]], labels[order[:cut]])
    with torch.no_grad():
        acc = (held(x[order[cut:]]).argmax(1) == labels[order[cut:]]).float().mean().item()
    return _fit(x, labels), acc


def histogram_stats(pred: np.ndarray) -> tuple[np.ndarray, float, int]:
    share = np.bincount(pred, minlength=CLASSES) / max(len(pred), 1)
    entropy = -sum(s * math.log2(s) for s in share if s > 0)
    return share, entropy, int((share >= MIN_SHARE).sum())


@dataclass
class Reals:
    """A run's training subset of builtin:digits, and how far the digits it left out sit from it."""

    images: torch.Tensor  # [N, C, H, W] in [-1, 1]
    labels: np.ndarray  # [N] digits
    features: torch.Tensor  # _features(images)
    held_out_distance: float  # median distance from a left-out digit to its nearest training image

    def copy_ratio(self, fakes: torch.Tensor) -> float:
        """Median distance from each fake to its nearest training real, over the same for the
        held-out reals: about 1 when G draws new digits, well under 1 when it copies its
        training images (what a limited-data G does once D has memorised them)."""
        fake_d = torch.cdist(_features(fakes), self.features).min(dim=1).values.median().item()
        return fake_d / self.held_out_distance


def subset_reals(run: Path) -> Reals | None:
    """The run's training subset (from run.json's options) and the builtin digits it left out."""
    opts = RunReader(run).options() or {}
    if opts.get("data") != "builtin:digits":
        return None
    # The trainer draws the subset with the run's --seed (core/training/cli.py).
    ds = ImageDataset(opts["data"], use_labels=True, subset=opts.get("subset"), seed=opts.get("seed", 0))
    images = _all_images(ds)
    features = _features(images)
    full = ImageDataset(opts["data"])
    held = np.setdiff1d(np.arange(len(full)), ds.raw_indices)
    held_d = math.nan  # trained on all of them: nothing to compare with
    if len(held):
        held_out = _features(_all_images(full)[torch.from_numpy(held)])
        held_d = torch.cdist(held_out, features).min(dim=1).values.median().item()
    return Reals(images, _all_digits(ds).numpy(), features, held_d)


@torch.no_grad()
def sameness_probe(D: nn.Module, images: torch.Tensor, batch: int = 16) -> tuple[float, float]:
    """D's mean logit on the reals in shuffled minibatches, and on the same reals when each
    minibatch-stddev group holds copies of one image (what a collapsed G would show D).

    The drop between the two is how hard D punishes a lack of variety: the minibatch-stddev layer
    is D's only way to see it, as each image on its own is a real one.
    """
    mbstd = D.b4.mbstd
    group = 1 if mbstd is None else min(mbstd.group_size or batch, batch)
    n = len(images) - len(images) % batch
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:n]
    c = torch.zeros([batch, D.c_dim])
    mixed, same = [], []
    for i in range(0, n, batch):
        mixed.append(D(images[order[i : i + batch]], c).flatten())
        per_group = batch // group
        for j in range(i, i + batch, per_group):
            # Group k of the layer holds the rows k, k + M, k + 2M, ...: repeating M images G times
            # fills every group with copies of one image.
            same.append(D(images[order[j : j + per_group]].repeat(group, 1, 1, 1), c).flatten()[:per_group])
    return torch.cat(mixed).mean().item(), torch.cat(same).mean().item()


# The seven flips and quarter turns besides the identity that xflip and rotate90 compose.
DIHEDRAL = {
    "xflip": lambda x: x.flip(3), "yflip": lambda x: x.flip(2), "rot90": lambda x: x.rot90(1, (2, 3)),
    "rot180": lambda x: x.rot90(2, (2, 3)), "rot270": lambda x: x.rot90(3, (2, 3)),
    "transpose": lambda x: x.transpose(2, 3), "antitranspose": lambda x: x.rot90(2, (2, 3)).transpose(2, 3),
}


def symmetry_table() -> None:
    """Per digit: how near its flipped and turned images stay to the real digits (see the docstring)."""
    ds = ImageDataset("builtin:digits", use_labels=True)
    images, labels = _all_images(ds), _all_digits(ds)
    reals = _features(images)
    own = torch.cdist(reals, reals).fill_diagonal_(math.inf).min(dim=1).values
    print("digit  " + " ".join(f"{name:>13}" for name in DIHEDRAL) + "   mean")
    for d in range(CLASSES):
        mine = labels == d
        base = own[mine].median()
        ratios = [(torch.cdist(_features(t(images[mine])), reals).min(dim=1).values.median() / base).item()
                  for t in DIHEDRAL.values()]
        print(f"{d:5d}  " + " ".join(f"{r:13.2f}" for r in ratios) + f"   {np.mean(ratios):.2f}")


@torch.no_grad()
def coverage(G: nn.Module, clf: nn.Module, num: int, seed: int = 123) -> tuple[np.ndarray, float, torch.Tensor]:
    """The digit of each of ``num`` fakes (fixed latents), the mean confidence, and the fakes."""
    z = torch.randn([num, G.z_dim], generator=torch.Generator().manual_seed(seed))
    c = torch.zeros([num, G.c_dim])
    fakes = torch.cat([G(z[i : i + 250], c[i : i + 250], noise_mode="const").clamp(-1, 1) for i in range(0, num, 250)])
    prob = clf(_features(fakes)).softmax(dim=1)
    return prob.argmax(1).numpy(), prob.max(1).values.mean().item(), fakes


def draw(curves: list[tuple[str, list[float], list[float]]], references: list[float], out: Path) -> None:
    """Entropy of the fakes' digit histogram against kimg, one coloured line and label per run."""
    img = Image.new("RGB", (W, H + 18 * len(curves)), "white")
    d = ImageDraw.Draw(img)
    x0, x1, y0, y1 = PAD, W - PAD // 2, H - PAD, PAD
    kmax = math.ceil(max((k[-1] for _, k, _ in curves if k), default=1)) or 1
    top = math.log2(CLASSES)

    def xy(k: float, bits: float) -> tuple[float, float]:
        return x0 + (x1 - x0) * k / kmax, y0 + (y1 - y0) * bits / top

    d.rectangle([x0, y1, x1, y0], outline=(0, 0, 0))
    for b in range(4):
        d.text((x0 - 30, xy(0, b)[1] - 6), f"{b}", fill=(0, 0, 0))
    for k in range(0, kmax + 1, max(kmax // 10, 1)):
        d.text((xy(k, 0)[0] - 6, y0 + 6), f"{k}", fill=(0, 0, 0))
    d.text((x1 - 40, y0 + 22), "kimg", fill=(0, 0, 0))
    d.text((x0, 12), "entropy of the digits G_ema draws (bits; 3.32 = all ten alike)", fill=(0, 0, 0))
    if references:  # runs on different subsets: one line at the lowest, labelled with the range
        lo, hi = min(references), max(references)
        label = f"training subset {lo:.2f}" if hi - lo < 0.005 else f"training subsets {lo:.2f}-{hi:.2f}"
        d.line([xy(0, lo), xy(kmax, lo)], fill=(190, 190, 190), width=1)
        d.text((x1 - 180, xy(0, lo)[1] + 3), label, fill=(120, 120, 120))
    for i, (name, kimg, bits) in enumerate(curves):
        colour = COLOURS[i % len(COLOURS)]
        if len(kimg) > 1:
            d.line([xy(k, b) for k, b in zip(kimg, bits, strict=True)], fill=colour, width=3)
        d.text((x0, H + 18 * i), name, fill=colour)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="*", type=Path, help="run directories trained on builtin:digits")
    ap.add_argument("--num", type=int, default=2000, help="fakes per snapshot")
    ap.add_argument("--every", type=float, default=0, help="only snapshots at multiples of this kimg (0: all)")
    ap.add_argument("--out", type=Path, help="also draw the entropy against kimg into this PNG")
    ap.add_argument("--sameness", action="store_true", help="also print how much D penalises groups of copies")
    ap.add_argument("--symmetry", action="store_true", help="print how digit-like each digit stays when flipped "
                    "or turned, then exit")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.symmetry:
        symmetry_table()
        return 0
    if not args.runs:
        ap.error("name at least one run directory, or give --symmetry")
    clf, acc = train_classifier()
    print(f"classifier: held-out accuracy {acc:.3f} on builtin:digits (20% of 1,797)")
    curves: list[tuple[str, list[float], list[float]]] = []
    references: list[float] = []
    for run in args.runs:
        snaps = kept_snapshots(run)
        if not snaps:
            print(f"{run}: no kept snapshots yet", file=sys.stderr)
            continue
        print(f"\n{run.name}")
        reals = subset_reals(run)
        if reals is not None:
            _, reference, _ = histogram_stats(reals.labels)
            references.append(reference)
            print(f"  training subset: {len(reals.labels)} images, entropy {reference:.2f} bits")
        print("  kimg   " + " ".join(f"{d:>4}" for d in range(CLASSES)) + "   bits  >=2%  conf  copy")
        curve: tuple[str, list[float], list[float]] = (run.name, [], [])
        curves.append(curve)
        for kimg, path in snaps:
            if args.every and kimg % args.every:
                continue
            ckpt = load_checkpoint(path)
            pred, conf, fakes = coverage(ckpt.G_ema.eval().requires_grad_(False), clf, args.num)
            share, ent, n = histogram_stats(pred)
            cells = " ".join(f"{100 * s:4.0f}" for s in share)
            copy = f"{reals.copy_ratio(fakes):5.2f}" if reals is not None else "  nan"
            print(f"  {kimg:5g}  {cells}   {ent:4.2f}  {n:4d}  {conf:.2f} {copy}", flush=True)
            if args.sameness and reals is not None and ckpt.D is not None:
                mixed, same = sameness_probe(ckpt.D.eval().requires_grad_(False), reals.images)
                print(f"         D(reals) {mixed:+.2f}, D(groups of copies) {same:+.2f}, drop {mixed - same:+.2f}",
                      flush=True)
            curve[1].append(kimg)
            curve[2].append(ent)
    if args.out is not None:
        draw(curves, references, args.out)
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
