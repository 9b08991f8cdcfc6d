"""``ada-convert``: inspect a snapshot (``info IN``) or rewrite it in our safe format (``convert IN OUT``).

IN is anything :func:`core.networks.sources.load_any` opens: our snapshot, a public StyleGAN2-ADA
``.pkl`` (imported safely) or a run directory (its newest snapshot). Errors: one line, exit status 2.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from core.io.cli import OneLineParser
from core.networks.checkpoint import (
    DERIVED_META_KEYS,
    NETWORK_NAMES,
    Checkpoint,
    CheckpointError,
    save_checkpoint,
)
from core.networks.sources import load_any

__all__ = ["describe", "main"]


def describe(ckpt: Checkpoint) -> list[str]:
    """Human-readable lines about what a checkpoint holds (used by ``info`` and ``convert``)."""
    lines = [f"file: {ckpt.path}", f"source: {ckpt.meta.get('source', 'unknown')}"]
    G = ckpt.G_ema if ckpt.G_ema is not None else ckpt.G
    if G is not None:
        kw = G.init_kwargs
        syn = kw.get("synthesis_kwargs", {})
        lines.append(
            f"generator: {kw['img_resolution']}x{kw['img_resolution']}, {kw['img_channels']} channels, "
            f"c_dim {kw['c_dim']} ({'conditional' if kw['c_dim'] else 'unconditional'}), z_dim {kw['z_dim']}, "
            f"w_dim {kw['w_dim']}, num_ws {G.num_ws}, mapping layers {G.mapping.num_layers}, "
            f"architecture {syn.get('architecture', 'skip')}, channel_base {syn.get('channel_base', 32768)}, "
            f"channel_max {syn.get('channel_max', 512)}, num_fp16_res {syn.get('num_fp16_res', 0)}"
        )
    for name in NETWORK_NAMES:
        net = getattr(ckpt, name)
        if net is None:
            lines.append(f"{name}: absent")
            continue
        params = sum(p.numel() for p in net.parameters())
        arch = net.init_kwargs.get("architecture") or net.init_kwargs.get("synthesis_kwargs", {}).get(
            "architecture", "skip"
        )
        lines.append(f"{name}: {type(net).__name__}, architecture {arch}, {params:,} parameters")
    lines.append(f"augment: {_describe_augment(ckpt)}")
    kimg = ckpt.meta.get("kimg")
    lines.append(f"kimg: {kimg if kimg is not None else 'unknown'}")
    for line in ckpt.meta.get("ignored", []):
        lines.append(f"ignored: {line}")
    return lines


def _describe_augment(ckpt: Checkpoint) -> str:
    settings = ckpt.augment_settings
    if settings is None:
        return "absent"
    multipliers = getattr(ckpt.augment_pipe, "multipliers", None)
    if callable(multipliers):
        values = multipliers()
    else:
        values = settings.get("stylegan2_ada_kwargs", settings.get("multipliers", settings))
    p = settings.get("p", ckpt.meta.get("p"))
    active = {
        k: v for k, v in values.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and v and k != "p" and not k.endswith(
            ("_std", "_max", "_size", "_band0", "_band1", "_band2", "_band3")
        )
    }  # fmt: skip
    listed = ", ".join(f"{k}={v:g}" for k, v in active.items())
    built = "rebuilt" if ckpt.augment_pipe is not None else "settings only"
    p_text = f"{p:.4g}" if isinstance(p, int | float) else "unknown"
    return f"present ({built}), p={p_text}; {listed or 'no active ops'}"


def _convert(src: str, dst: str) -> list[str]:
    folder = Path(dst).expanduser().parent
    if not folder.is_dir():
        raise CheckpointError(f"{dst}: the folder {folder} does not exist; create it first or write elsewhere")
    ckpt = load_any(src)
    metadata = {k: v for k, v in ckpt.meta.items() if k not in DERIVED_META_KEYS}
    metadata["converted_from"] = str(Path(src).resolve())
    augment: Any = ckpt.augment_pipe if ckpt.augment_pipe is not None else ckpt.augment_settings
    out = save_checkpoint(
        dst,
        G=ckpt.G,
        D=ckpt.D,
        G_ema=ckpt.G_ema,
        augment_pipe=augment,
        augment_state=ckpt.augment_state,
        **metadata,
    )
    return [*describe(ckpt), f"wrote: {out} + {out.with_suffix('.safetensors').name}"]


def main(argv: list[str] | None = None) -> int:
    """``ada-convert info IN`` / ``ada-convert convert IN OUT``; errors: one line, exit status 2."""
    parser = OneLineParser(
        prog="ada-convert", description="Inspect or convert snapshots (ours or public StyleGAN2-ADA .pkl)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="print what a snapshot holds")
    info.add_argument("src", metavar="IN", help="our snapshot (stem/.json/.safetensors), a .pkl or a run directory")
    conv = sub.add_parser("convert", help="write a snapshot in our safe format")
    conv.add_argument("src", metavar="IN", help="our snapshot, a public .pkl or a run directory")
    conv.add_argument("dst", metavar="OUT", help="output stem or .safetensors/.json path")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        lines = describe(load_any(args.src)) if args.command == "info" else _convert(args.src, args.dst)
    except CheckpointError as exc:
        print(f"ada-convert: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"ada-convert: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
