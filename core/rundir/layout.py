"""The run directory's layout: every file and folder name, snapshot naming and discovery, run ids.

``<outdir>/<NNNNN>-<desc>/`` holds (docs/run-directory.md describes every file for users):

    run.json          options, versions, start time, pid/host          RunWriter.write_run_json
    log.txt           human log, one write per line                    RunWriter.log / log_handler
    events.jsonl      one JSON object per line: t, kimg, kind, ...     RunWriter.event and helpers
    metrics.jsonl     one line per metric evaluation at a snapshot     core.metrics (metrics_path)
    snapshots/        network-snapshot-<KKKKKK>.* and the rolling       core.networks.checkpoint writes;
                      checkpoint-<NNNNNNNNNNNN>.*; latest.json         RunWriter.write_latest points
    live/             G_ema.safetensors + G_ema.json, refreshed often  RunWriter.write_live
    previews/         <kind>-<KKKKKK>.png grids                        RunWriter.write_preview
    control.json      written by the GUI, read by the trainer          core.rundir.control
    tb/               TensorBoard event files, created on first use    RunWriter.scalars

This module is the only place that spells these names; writer, reader, trainer, metrics and GUI
ask it. It imports nothing of the networks or the trainer, so anything may import it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
RUN_JSON = "run.json"
LOG_TXT = "log.txt"
EVENTS = "events.jsonl"
METRICS = "metrics.jsonl"
SNAPSHOTS = "snapshots"
LATEST = "latest.json"
LIVE = "live"
LIVE_TENSORS = "G_ema.safetensors"
LIVE_JSON = "G_ema.json"
PREVIEWS = "previews"
CONTROL = "control.json"
TB = "tb"
# A launcher (the GUI) names a file in this environment variable; the trainer writes the path of the
# run directory it made there, so the launcher learns it from the trainer, not from folder listings.
LAUNCHER_RUN_DIR_FILE = "ADA_STUDIO_RUN_DIR_FILE"
# Folders a writer owns and may clean of its own stale temporaries.
WRITER_FOLDERS = (LIVE, PREVIEWS, SNAPSHOTS)

SNAPSHOT_PREFIX = "network-snapshot"
ROLLING_PREFIX = "checkpoint"  # the rolling resume checkpoint, replaced at every tick
# Every file one snapshot (or rolling checkpoint) is made of; the .json is written last (the commit marker).
SNAPSHOT_SUFFIXES = (".json", ".safetensors", ".resume.json", ".resume.safetensors")
SNAPSHOT_GLOB = f"{SNAPSHOT_PREFIX}-*.json"
PREVIEW_FAKES = "fakes"
PREVIEW_REALS_AUGMENTED = "reals-augmented"

_RUN_DIR_RE = re.compile(r"^(\d+)")
_KIND_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_TAG = r"\d{6,}(?:\.\d{3})?"
_TAGGED_RE = re.compile(rf"^(?P<kind>.+)-(?P<kimg>{_TAG})\.png$")
_SNAPSHOT_KIMG_RE = re.compile(rf"{SNAPSHOT_PREFIX}-({_TAG})")
_ROLLING_RE = re.compile(rf"{ROLLING_PREFIX}-(\d{{12}})")
_RESUME_NAMES = ("ffhq256", "ffhq512", "ffhq1024", "celebahq256", "lsundog256")



def kimg_tag(kimg: float, fine: bool = False) -> str:
    """Whole kimg, zero-padded to six digits, as in the public file names (12.9 -> '000012'); with
    ``fine``, thousandths too (12.9 -> '000012.900'): one image more or less is a different tag."""
    if not math.isfinite(kimg) or kimg < 0:
        raise ValueError(f"kimg must be a finite number >= 0, got {kimg!r}")
    if fine:
        nimg = round(kimg * 1000)
        return f"{nimg // 1000:06d}.{nimg % 1000:03d}"
    return f"{int(kimg):06d}"


def snapshot_stem(kimg: float, fine: bool = False) -> str:
    """File stem of the network snapshot at ``kimg``: network-snapshot-<KKKKKK>[.<ttt>]."""
    return f"{SNAPSHOT_PREFIX}-{kimg_tag(kimg, fine)}"


def tag_kimg(tag: str) -> float:
    """The kimg a tag names: '000012' -> 12.0, '000012.900' -> 12.9."""
    return float(tag)


def dataset_name(data: str | os.PathLike[str]) -> str:
    """The name a run's desc starts with: the dataset path's basename without extension.

    ``~/data/ffhq256.zip`` -> ``ffhq256``; ``builtin:digits`` -> ``digits``.
    """
    text = os.fspath(data).rstrip("/\\")
    name = os.path.splitext(os.path.basename(text))[0].rsplit(":", 1)[-1]
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", name)
    if not name:
        raise ValueError(f"cannot derive a dataset name from {os.fspath(data)!r}")
    return name


def run_desc(
    data: str | os.PathLike[str],
    *,
    cond: bool = False,
    subset: int | None = None,
    dataset_size: int | None = None,
    mirror: bool = False,
    cfg: str = "auto",
    gpus: int = 1,
    gamma: float | None = None,
    kimg: int | None = None,
    batch: int | None = None,
    aug: str | None = None,
    p: float | None = None,
    target: float | None = None,
    augpipe: str | None = None,
    resume: str | None = None,
    freezed: int | None = None,
    extra: Iterable[str] = (),
) -> str:
    """The run's desc, built from the options the public way (the part after ``NNNNN-``).

    Options the user left at their default are passed as None and do not appear: ``aug``,
    ``p``, ``target``, ``augpipe``, ``gamma``, ``kimg``, ``batch``, ``resume``, ``freezed``.
    ``subset`` appears only when it is smaller than ``dataset_size`` (when that is known).
    ``resume``: "noresume", a public name (ffhq256, ...) or anything else (a path or URL,
    written as "resumecustom"). ``extra`` tags (e.g. "dataaug") are appended last.
    """
    parts = [dataset_name(data)]
    if cond:
        parts.append("cond")
    if subset is not None and (dataset_size is None or subset < dataset_size):
        parts.append(f"subset{subset:d}")
    if mirror:
        parts.append("mirror")
    parts.append(f"{cfg}{gpus:d}" if cfg == "auto" else cfg)
    # Each given option in the public order, as "<name><value>" (aug and augpipe: the value alone).
    given = (("gamma", gamma, "g"), ("kimg", kimg, "d"), ("batch", batch, "d"), ("", aug, "s"), ("p", p, "g"),
             ("target", target, "g"), ("", augpipe, "s"))
    parts += [f"{name}{value:{fmt}}" for name, value, fmt in given if value is not None]
    if resume == "noresume":
        parts.append("noresume")
    elif resume in _RESUME_NAMES:
        parts.append(f"resume{resume}")
    elif resume is not None:
        parts.append("resumecustom")
    if freezed is not None:
        parts.append(f"freezed{freezed:d}")
    parts.extend(extra)
    return "-".join(parts)


def _run_ids(outdir: Path) -> dict[int, list[str]]:
    ids: dict[int, list[str]] = {}
    for entry in os.scandir(outdir):
        m = _RUN_DIR_RE.match(entry.name)
        if m and entry.is_dir():
            ids.setdefault(int(m.group(1)), []).append(entry.name)
    return ids


def new_run_dir(outdir: str | os.PathLike[str], desc: str, max_tries: int = 1000) -> Path:
    """Create and return ``<outdir>/<NNNNN>-<desc>``; NNNNN = 1 + the largest numeric prefix there.

    Safe against concurrent creators (two trainers started at once): the directory is made
    without exist_ok, and a creator that then finds another directory with its id (a different
    desc made at the same moment) removes its own, still empty one and tries again; of any two
    runs, the one that checked last always sees the other, so no id is ever used twice.
    """
    if not desc or any(sep in desc for sep in ("/", "\\", os.sep)) or desc in (".", ".."):
        raise ValueError(f"run desc {desc!r} must be a non-empty name without path separators")
    root = Path(outdir)
    root.mkdir(parents=True, exist_ok=True)
    for _ in range(max_tries):
        run_id = max(_run_ids(root), default=-1) + 1
        path = root / f"{run_id:05d}-{desc}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        if _run_ids(root).get(run_id) == [path.name]:
            return path
        path.rmdir()
        time.sleep(random.uniform(0.001, 0.02))  # break the tie with the other creator
    raise RuntimeError(f"{root}: could not create a new run directory after {max_tries} tries")


def list_run_dirs(outdir: str | os.PathLike[str]) -> list[Path]:
    """Run directories under ``outdir`` (names starting with digits), oldest id first."""
    root = Path(outdir)
    if not root.is_dir():
        return []
    ids = _run_ids(root)
    return [root / name for run_id in sorted(ids) for name in sorted(ids[run_id])]


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` looks like a run directory (it has run.json or events.jsonl)."""
    p = Path(path)
    return (p / RUN_JSON).is_file() or (p / EVENTS).is_file()


# --------------------------------------------------------------------------------------------
# Files of one run


def check_preview_kind(kind: str) -> str:
    """``kind`` if it can name a preview file; ValueError otherwise."""
    if not _KIND_RE.match(kind):
        raise ValueError(f"preview kind {kind!r} must be lower-case letters, digits, '-' or '_'")
    return kind


def preview_pattern(kind: str) -> str:
    """previews/<kind>-{}.png, relative to the run directory, for ``str.format(tag)``."""
    return f"{PREVIEWS}/{check_preview_kind(kind)}-{{}}.png"


def parse_preview_name(name: str) -> tuple[str, float] | None:
    """(kind, kimg) of a preview file name like fakes-000012.png; None for any other name."""
    m = _TAGGED_RE.match(name)
    return (m.group("kind"), tag_kimg(m.group("kimg"))) if m else None


def kept_snapshot_pattern() -> str:
    """snapshots/network-snapshot-{}.json, relative to the run directory, for ``str.format(tag)``."""
    return f"{SNAPSHOTS}/{SNAPSHOT_PREFIX}-{{}}.json"


def rolling_stem(cur_nimg: int) -> str:
    """Stem of the rolling checkpoint at ``cur_nimg`` images: a name no earlier write used."""
    return f"{ROLLING_PREFIX}-{cur_nimg:012d}"


def snapshot_kimg(path: str | os.PathLike[str]) -> float | None:
    """The kimg a kept snapshot's file name carries (network-snapshot-000012.json -> 12.0), or None."""
    match = _SNAPSHOT_KIMG_RE.search(Path(path).name)
    return float(match.group(1)) if match else None


def snapshot_files(run_dir: str | os.PathLike[str], stem: str) -> list[str]:
    """The files of snapshot ``stem`` that exist, relative to the run directory, sorted."""
    folder = Path(run_dir) / SNAPSHOTS
    return sorted(f"{SNAPSHOTS}/{stem}{suffix}" for suffix in SNAPSHOT_SUFFIXES
                  if (folder / f"{stem}{suffix}").is_file())


def remove_snapshot(run_dir: str | os.PathLike[str], stem: str) -> None:
    """Delete every file of snapshot ``stem`` (the rolling checkpoint a newer one replaced)."""
    folder = Path(run_dir) / SNAPSHOTS
    for suffix in SNAPSHOT_SUFFIXES:
        (folder / f"{stem}{suffix}").unlink(missing_ok=True)


def _snapshot_markers(folder: Path) -> list[Path]:
    """The network-snapshot-*.json commit markers in ``folder`` (not their .resume.json companions)."""
    return [p for p in folder.glob(SNAPSHOT_GLOB) if not p.name.endswith(".resume.json")]


def kept_snapshots(run_dir: str | os.PathLike[str]) -> list[tuple[float, Path]]:
    """(kimg, .json) of every kept snapshot in ``<run_dir>/snapshots``, oldest first."""
    found = [(kimg, p) for p in _snapshot_markers(Path(run_dir) / SNAPSHOTS) if (kimg := snapshot_kimg(p)) is not None]
    return sorted(found)


def latest_snapshot(run_dir: str | os.PathLike[str]) -> Path | None:
    """The .json of the newest complete snapshot in ``<run_dir>/snapshots``, or None if none yet.

    ``snapshots/latest.json`` (``{"snapshot": "network-snapshot-000123", ...}``, written by the
    trainer) wins when it names a complete snapshot; otherwise the highest kimg among
    ``network-snapshot-*.json`` files.
    """
    folder = Path(run_dir) / SNAPSHOTS
    if not folder.is_dir():
        return None
    pointer = folder / LATEST
    if pointer.is_file():
        named = _read_latest_pointer(pointer)
        if named is not None:
            return named
    candidates = _snapshot_markers(folder)
    if not candidates:
        return None
    return max(candidates, key=lambda p: (snapshot_kimg(p) or -1, p.stat().st_mtime, p.name))


def _read_latest_pointer(pointer: Path) -> Path | None:
    try:
        doc = json.loads(pointer.read_text(encoding="utf-8"))
        name = doc["snapshot"]
        if not isinstance(name, str) or Path(name).name != name:
            raise ValueError(f"snapshot must be a file name in {SNAPSHOTS}/, got {name!r}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: unusable (%s); looking for the newest snapshot instead", pointer, exc)
        return None
    json_path = pointer.parent / f"{name}.json"
    if not json_path.is_file():
        log.warning("%s: names %s, which is missing; looking for the newest snapshot instead", pointer, name)
        return None
    return json_path


def resume_candidates(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Every snapshot and rolling checkpoint of a run (their .json commit markers), the one latest.json
    names first, then newest first: the order a resume tries them in."""
    folder = Path(run_dir) / SNAPSHOTS
    if not folder.is_dir():
        return []
    found: list[tuple[float, Path]] = []
    for p in folder.glob("*.json"):
        if p.name == LATEST or p.name.endswith(".resume.json"):
            continue
        kimg = snapshot_kimg(p)
        if kimg is None:
            kimg = _rolling_kimg(p.stem)
        if kimg is not None:
            found.append((kimg, p))
    ordered = [p for _, p in sorted(found, key=lambda kp: (kp[0], not kp[1].name.startswith(ROLLING_PREFIX)),
                                    reverse=True)]
    pointer = folder / LATEST
    named = _read_latest_pointer(pointer) if pointer.is_file() else None
    if named is not None and named in ordered:
        ordered.remove(named)
        ordered.insert(0, named)
    return ordered


def _rolling_kimg(stem: str) -> float | None:
    """The kimg of a rolling checkpoint's stem (checkpoint-000000000048 -> 0.048), or None for another name."""
    m = _ROLLING_RE.fullmatch(stem)
    return int(m.group(1)) / 1000 if m else None


def rolling_stems(run_dir: str | os.PathLike[str]) -> list[str]:
    """Stems of the rolling checkpoints in a run's snapshots/ (a continued run's earlier launches left one)."""
    folder = Path(run_dir) / SNAPSHOTS
    return sorted(p.stem for p in folder.glob(f"{ROLLING_PREFIX}-*.json") if _rolling_kimg(p.stem) is not None)

def metrics_path(run_dir: str | os.PathLike[str]) -> Path:
    """<run_dir>/metrics.jsonl."""
    return Path(run_dir) / METRICS


def run_dir_of_snapshot(snapshot: str | os.PathLike[str]) -> Path | None:
    """The run directory a snapshot file lies in (``RUN/snapshots/x.json`` -> RUN), or None."""
    p = Path(snapshot)
    return p.parent.parent if p.parent.name == SNAPSHOTS else None


def live_paths(run_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(live/G_ema.safetensors, live/G_ema.json) of a run."""
    folder = Path(run_dir) / LIVE
    return folder / LIVE_TENSORS, folder / LIVE_JSON
