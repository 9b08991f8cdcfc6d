"""Limited-data behaviour of ADA and APA: p and r_t against kimg, from training runs' events.jsonl.

Start the runs (long: on a 2-core CPU ~35-40 s per kimg each, one thread each), for example:

    OMP_NUM_THREADS=1 python train_headless.py --outdir runs/ld-ada --data builtin:digits --subset 500 \\
        --cfg cpu32 --aug ada --ada-kimg 100 --ada-interval 16 --kimg 1000 --tick 1 --snap 10 --device cpu \\
        --workers 0 --seed 1
    (the same with --aug apa; --aug noaug without the two --ada options shows D's r_t with no help)

then plot and summarise them (stop them any time; the plot uses what is there; a run continued with
--resume is given as ``FIRST_RUN,CONTINUATION``):

    python bench/bench_train_limited_data.py RUN_DIR [RUN_DIR ...] --out docs/limited-data.png

Per run it prints the final p and, over the last --window kimg, the mean of r_t (the tick means of
sign(D(real))), how often its 5-tick moving average was within +-0.05 of the target and the
longest stretch of kimg it stayed there. The PNG has one panel per
run: p (blue), the tick means of r_t (light orange) with their 5-tick moving average (red), and the target
band (grey). Drawn with Pillow only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.rundir import RunReader  # noqa: E402

W, H, PAD = 900, 300, 50
BLUE, ORANGE, RED, GREY, BLACK = (31, 119, 180), (255, 187, 120), (214, 39, 40), (215, 215, 215), (0, 0, 0)
SMOOTH = 5  # ticks in the moving average of r_t


@dataclass
class Series:
    name: str
    target: float
    kimg: list[float]
    p: list[float]
    r_t: list[float]  # tick means of sign(D(real))


def load_joined(spec: str) -> Series:
    """``RUN[,CONTINUATION...]``: a run and the runs that resumed it, as one series."""
    parts = [load(Path(p)) for p in spec.split(",")]
    first = parts[0]
    for part in parts[1:]:
        first.kimg += part.kimg
        first.p += part.p
        first.r_t += part.r_t
    return first


def load(run_dir: Path) -> Series:
    info = RunReader(run_dir).run_info() or {}
    options = info.get("options", {})
    augment = (options.get("resolved") or {}).get("augment", {})
    target = augment.get("target") or 0.6
    ticks = [e for e in RunReader(run_dir).poll_events() if e["kind"] == "tick" and e["tick"] > 0]
    # Leave out short ticks (a run's last one, a stop): their r_t is a mean over a few minibatches.
    sizes = [e["stats"]["Loss/signs/real"]["num"] for e in ticks]
    if sizes:
        typical = statistics.median(sizes)
        ticks = [e for e, n in zip(ticks, sizes, strict=True) if n >= typical / 2]
    return Series(describe(augment, run_dir.name), target, [e["kimg"] for e in ticks],
                  [e["Progress/augment"] for e in ticks], [e["stats"]["Loss/signs/real"]["mean"] for e in ticks])


def describe(augment: dict, run_name: str) -> str:
    """``ada bgc xflip=0 (RUN)``, from run.json's resolved augment spec: the mode, and the pipe and its
    changed ops where D's inputs go through one."""
    words = [augment.get("mode", "?")]
    if augment.get("pipe"):
        words.append(augment["pipe"])
        words += [f"{op}={value:g}" for op, value in augment.get("multipliers", {}).items()]
    return f"{' '.join(words)} ({run_name})"


def moving_average(values: list[float], n: int = SMOOTH) -> list[float]:
    return [statistics.fmean(values[max(0, i - n + 1):i + 1]) for i in range(len(values))]


def longest_in_band(s: Series) -> tuple[float, float] | None:
    """The longest run of ticks whose moving average of r_t stayed within +-0.05 of the target, as
    (first kimg, last kimg); None if it was never inside."""
    best: tuple[float, float] | None = None
    start = None
    for i, v in enumerate([*moving_average(s.r_t), None]):
        inside = v is not None and abs(v - s.target) <= 0.05
        if inside and start is None:
            start = i
        elif not inside and start is not None:
            if best is None or s.kimg[i - 1] - s.kimg[start] > best[1] - best[0]:
                best = (s.kimg[start], s.kimg[i - 1])
            start = None
    return best


def summarise(s: Series, window: float) -> str:
    if not s.kimg:
        return f"{s.name}: no ticks yet"
    recent = [i for i, k in enumerate(s.kimg) if k >= s.kimg[-1] - window]
    last = [s.r_t[i] for i in recent]
    smooth = moving_average(s.r_t)
    inside = sum(abs(smooth[i] - s.target) <= 0.05 for i in recent) / len(recent)
    band = longest_in_band(s)
    stretch = "never" if band is None else f"{band[0]:.0f}..{band[1]:.0f} kimg"
    return (f"{s.name}: {s.kimg[-1]:.1f} kimg, final p {s.p[-1]:.3f}, max p {max(s.p):.3f}; last {window:g} kimg: "
            f"mean r_t {statistics.fmean(last):.3f} (target {s.target}), tick means {min(last):.2f}..{max(last):.2f},"
            f" {SMOOTH}-tick moving average within +-0.05 of the target at {inside:.0%} of ticks;"
            f" longest stretch inside: {stretch}")


def draw(series: list[Series], out: Path) -> None:
    img = Image.new("RGB", (W, H * len(series)), "white")
    d = ImageDraw.Draw(img)
    for i, s in enumerate(series):
        top = i * H
        x0, x1, y0, y1 = PAD, W - PAD // 2, top + H - PAD, top + PAD // 2
        kmax = max(s.kimg[-1] if s.kimg else 1.0, 1e-9)

        def xy(k: float, v: float, x0: float = x0, x1: float = x1, y0: float = y0, y1: float = y1,
               kmax: float = kmax) -> tuple[float, float]:
            return x0 + (x1 - x0) * k / kmax, y0 + (y1 - y0) * min(max(v, 0.0), 1.0)

        d.rectangle([xy(0, s.target + 0.05), xy(kmax, s.target - 0.05)], fill=GREY)
        d.rectangle([x0, y1, x1, y0], outline=BLACK)
        for v in (0.0, 0.25, 0.5, 0.75, 1.0):
            d.text((x0 - 34, xy(0, v)[1] - 6), f"{v:.2f}", fill=BLACK)
        for k in range(0, int(kmax) + 1, max(int(kmax) // 8, 1)):
            d.text((xy(k, 0)[0] - 6, y0 + 6), f"{k}", fill=BLACK)
        d.text((x1 - 40, y0 + 20), "kimg", fill=BLACK)
        if len(s.kimg) > 1:
            d.line([xy(k, v) for k, v in zip(s.kimg, s.r_t, strict=True)], fill=ORANGE, width=1)
            d.line([xy(k, v) for k, v in zip(s.kimg, moving_average(s.r_t), strict=True)], fill=RED, width=2)
            d.line([xy(k, v) for k, v in zip(s.kimg, s.p, strict=True)], fill=BLUE, width=3)
        d.text((x0 + 8, y1 + 4), f"{s.name}:  p (blue),  r_t per tick (orange) and its {SMOOTH}-tick average (red),"
               f"  target {s.target} +-0.05 (grey)", fill=BLACK)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run directories; RUN,RESUMED_RUN joins a run and its continuation")
    ap.add_argument("--out", type=Path, help="also draw p and r_t against kimg into this PNG")
    ap.add_argument("--window", type=float, default=5.0, help="kimg at the end over which r_t is summarised")
    args = ap.parse_args()
    series = [load_joined(r) for r in args.runs]
    for s in series:
        print(summarise(s, args.window))
    if args.out:
        draw(series, args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
