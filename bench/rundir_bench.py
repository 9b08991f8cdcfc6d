"""What the run-directory stream costs the trainer and the GUI (run by hand, prints medians).

    .venv/bin/python bench/rundir_bench.py [--res 256] [--repeats 5]

- event(): one "stats" line of 12 values, appended and (at most once a second) fsynced;
- poll_events(): first read of a 20k-event file, then a poll with nothing new (the GUI's idle cost);
- write_live() / live_weights() for a G at --res with the public auto-config widths;
- write_preview() of an 8x4 grid at --res.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import median_time  # noqa: E402  (bench/ is on sys.path: scripts run from it)

from core.networks import Generator  # noqa: E402
from core.rundir import RunReader, RunWriter  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--res", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    stats = {f"Loss/stat{i}": 0.123456789 * i for i in range(12)}
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        w = RunWriter(run, live_interval_s=0)
        n = 2000
        t = median_time(lambda: [w.stats(1.0, stats) for _ in range(n)], args.repeats, warmup=0)
        print(f"event(stats, 12 values): {t / n * 1e6:.1f} us per event (median of {args.repeats})")
        for _ in range(20000 - n * args.repeats):
            w.stats(1.0, stats)
        size = (run / "events.jsonl").stat().st_size
        t = median_time(lambda: RunReader(run).poll_events(), args.repeats, warmup=0)
        print(f"poll_events, first read of 20000 events ({size / 1e6:.1f} MB): {t * 1e3:.1f} ms")
        reader = RunReader(run)
        reader.poll_events()
        t = median_time(reader.poll_events, 200, warmup=0)
        print(f"poll_events, nothing new: {t * 1e6:.1f} us")

        fmaps = 1 if args.res >= 512 else 0.5
        G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=args.res, img_channels=3,
                      mapping_kwargs={"num_layers": 2},
                      synthesis_kwargs={"channel_base": int(fmaps * 32768), "channel_max": 512})
        mb = sum(v.numel() * v.element_size() for v in G.state_dict().values()) / 1e6
        t = median_time(lambda: w.write_live(G, 1.0, force=True), args.repeats, warmup=0)
        print(f"write_live, G at {args.res}px ({mb:.1f} MB), time in the caller: {t * 1e3:.0f} ms")
        w.flush()
        t = median_time(lambda: (w.write_live(G, 1.0, force=True), w.flush()), args.repeats, warmup=0)
        print(f"write_live + flush (whole write, background included): {t * 1e3:.0f} ms")
        t = median_time(lambda: reader.live_weights(), args.repeats, warmup=0)
        print(f"live_weights, same G: {t * 1e3:.0f} ms")
        grid = np.random.default_rng(0).integers(0, 256, (4 * args.res, 8 * args.res, 3), dtype=np.uint8)
        smooth = np.asarray(torch.nn.functional.interpolate(
            torch.from_numpy(grid[::16, ::16]).permute(2, 0, 1)[None].float(), scale_factor=16, mode="bilinear"
        )[0].permute(1, 2, 0).to(torch.uint8))
        size = f"8x4 grid at {args.res}px ({smooth.shape[1]}x{smooth.shape[0]})"
        t = median_time(lambda: w.write_preview("fakes", 1.0, smooth), args.repeats, warmup=0)
        print(f"write_preview, {size}, time in the caller: {t * 1e3:.0f} ms")
        w.flush()
        t = median_time(lambda: (w.write_preview("fakes", 1.0, smooth), w.flush()), args.repeats, warmup=0)
        print(f"write_preview + flush, {size}: {t * 1e3:.0f} ms")
        w.close()


if __name__ == "__main__":
    main()
