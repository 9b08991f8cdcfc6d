"""The run directory, the one contract between a trainer and any GUI: its layout (layout), the
events and stats it carries (schema), the trainer's writer, the GUI's reader, and control.json.

No other module spells a file or folder name of a run directory or a stat name; they import them
from here. docs/run-directory.md describes every file for users.
"""

from core.rundir import layout, schema
from core.rundir.control import (
    ControlError,
    ControlPoller,
    ControlRequest,
    parse_control,
    read_control,
    write_control,
)
from core.rundir.layout import (
    dataset_name,
    is_run_dir,
    kept_snapshots,
    kimg_tag,
    latest_snapshot,
    list_run_dirs,
    new_run_dir,
    run_desc,
    snapshot_stem,
    tag_kimg,
)
from core.rundir.reader import LiveWeights, RunReader, RunStatus
from core.rundir.writer import RunLogHandler, RunWriter

__all__ = [
    "ControlError",
    "ControlPoller",
    "ControlRequest",
    "LiveWeights",
    "RunLogHandler",
    "RunReader",
    "RunStatus",
    "RunWriter",
    "dataset_name",
    "is_run_dir",
    "kept_snapshots",
    "kimg_tag",
    "latest_snapshot",
    "layout",
    "list_run_dirs",
    "new_run_dir",
    "parse_control",
    "read_control",
    "run_desc",
    "schema",
    "snapshot_stem",
    "tag_kimg",
    "write_control",
]
