"""core/rundir is the one home of the run directory's names: no other module of core/ or viz/ spells
a file or folder name of a run directory, a snapshot name or a stat name (issue: one home)."""

from __future__ import annotations

import re
from pathlib import Path

from core.rundir import layout, schema

REPO = Path(__file__).resolve().parents[3]
HOME = REPO / "core" / "rundir"


def _names() -> list[str]:
    files = [layout.RUN_JSON, layout.LOG_TXT, layout.EVENTS, layout.METRICS, layout.LATEST, layout.LIVE_TENSORS,
             layout.LIVE_JSON, layout.CONTROL]
    folders = [layout.SNAPSHOTS, layout.LIVE, layout.PREVIEWS, layout.TB]
    stats = [v for k, v in vars(schema).items() if k.startswith("STAT_")]
    return files + folders + stats + [layout.SNAPSHOT_PREFIX, f"{layout.ROLLING_PREFIX}-"]


def _literal_re() -> re.Pattern[str]:
    # A name as a whole string literal, or starting one ("snapshots/x", "network-snapshot-...").
    alternatives = "|".join(re.escape(n) for n in _names())
    return re.compile(rf"""["']({alternatives})(["'/]|-\{{|-\d)""")


def test_no_module_outside_core_rundir_spells_a_run_directory_name() -> None:
    pattern = _literal_re()
    offenders = []
    for folder in ("core", "viz"):
        for path in sorted((REPO / folder).rglob("*.py")):
            if HOME in path.parents:
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if pattern.search(line) and not line.lstrip().startswith("#"):
                    offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not offenders, "run-directory names belong in core/rundir (layout, schema):\n" + "\n".join(offenders)


def test_the_check_finds_a_planted_literal() -> None:
    pattern = _literal_re()
    planted = ('p = run / "run.json"', "x = f'snapshots/{stem}'", 'k = "Loss/signs/real"',
               'n = "network-snapshot-000012"', "values['Progress/augment'] = p")
    for line in planted:
        assert pattern.search(line), line
    assert not pattern.search('label = "live weights"') and not pattern.search('help="the run directory"')


def test_docs_list_every_file_of_the_layout() -> None:
    doc = (REPO / "docs" / "run-directory.md").read_text(encoding="utf-8")
    for name in (layout.RUN_JSON, layout.LOG_TXT, layout.EVENTS, layout.METRICS, layout.LATEST, layout.LIVE_TENSORS,
                 layout.LIVE_JSON, layout.CONTROL, f"{layout.SNAPSHOTS}/", f"{layout.PREVIEWS}/", f"{layout.TB}/"):
        assert name in doc, f"docs/run-directory.md does not mention {name}"
