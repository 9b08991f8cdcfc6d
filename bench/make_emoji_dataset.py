"""A small colour dataset from a package: the emoji of Debian's Noto Color Emoji font, one PNG each.

Limited-data comparisons need a colour set besides the bundled (grey) digits, and nothing may be
downloaded at run time. ``apt install fonts-noto-color-emoji`` ships Google's Noto Color Emoji
(SIL Open Font License) as a bitmap font; this script renders every single-code-point emoji in the
font's emoji blocks that has a glyph of its own (1,287 distinct images for the font in Debian 12,
2.042), composited on white, scaled to ``--res`` with Lanczos, centred in a square:

    python bench/make_emoji_dataset.py --out ~/data/emoji32 --res 32
    python train_headless.py --data ~/data/emoji32 --subset 500 --cfg cpu32 --aug ada ...

Files are named by code point (``u1f600.png``), so a rerun writes the same set.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
SIZE = 109  # the one size of the font's bitmap strike
BLOCKS = [(0x2600, 0x27BF), (0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x1F680, 0x1F6FF), (0x1F900, 0x1F9FF),
          (0x1FA70, 0x1FAFF)]  # miscellaneous symbols and dingbats, then the emoji blocks


def render(font: ImageFont.FreeTypeFont, text: str) -> Image.Image:
    """The glyph as RGBA, cropped to its ink."""
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("RGBA", (max(right - left, 1), max(bottom - top, 1)), (0, 0, 0, 0))
    ImageDraw.Draw(image).text((-left, -top), text, font=font, embedded_color=True)
    return image


def to_square(glyph: Image.Image, res: int) -> Image.Image:
    side = max(glyph.size)
    canvas = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    canvas.alpha_composite(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2))
    return canvas.convert("RGB").resize((res, res), Image.Resampling.LANCZOS)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="folder to write the PNGs into (created)")
    ap.add_argument("--res", type=int, default=32, help="side of the square images in pixels (default 32)")
    ap.add_argument("--font", type=Path, default=FONT, help=f"the colour emoji font (default {FONT})")
    args = ap.parse_args(argv)
    if not args.font.is_file():
        print(f"--font {args.font}: no such file; install it with 'apt install fonts-noto-color-emoji' or name "
              "another colour emoji font", file=sys.stderr)
        return 2
    try:
        font = ImageFont.truetype(str(args.font), SIZE)
    except OSError as e:
        print(f"--font {args.font}: Pillow cannot open it at size {SIZE} ({e}); name a bitmap colour emoji font",
              file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    for first, last in BLOCKS:
        for code in range(first, last + 1):
            glyph = render(font, chr(code))
            alpha = np.asarray(glyph)[..., 3]
            if alpha.max() == 0:  # no glyph for this code point
                continue
            digest = hashlib.sha1(np.asarray(glyph).tobytes()).hexdigest()
            if digest in seen:  # a code point drawn with another's glyph
                continue
            seen.add(digest)
            to_square(glyph, args.res).save(args.out / f"u{code:x}.png")
    print(f"wrote {len(seen)} images of {args.res}x{args.res} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
