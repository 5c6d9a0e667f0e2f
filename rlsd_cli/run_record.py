"""The record a run folder keeps of how it was made (run.json): read by the model loader, which loads a run as a
model, and by the run folders' own code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import BadInputError
from .fsutil import read_json

RUN_RECORD = "run.json"
# The fields other code reads from a record, by the types rlsd writes (a hand-edited file fails here, in one line).
RECORD_FIELD_TYPES = {"parent": (str,), "verb": (str,), "config": (dict,), "round": (dict,), "command": (list,)}


def read_run_record(run_dir: Path) -> dict[str, Any]:
    record_path = run_dir / RUN_RECORD
    try:
        record = read_json(record_path, "restore it from a backup")
    except FileNotFoundError:
        raise BadInputError(f"{run_dir}: not a run folder (no {RUN_RECORD})") from None
    if not isinstance(record, dict) or not isinstance(record.get("base_model"), dict) or "spec" not in record["base_model"]:
        raise BadInputError(f"{record_path}: missing base_model.spec; this file was not written by rlsd")
    if not isinstance(record["base_model"]["spec"], str) or not record["base_model"]["spec"].strip():
        raise BadInputError(f"{record_path}: base_model.spec is not a model name or path; restore the file from a "
                            "backup (rlsd writes it)")
    for field, kinds in RECORD_FIELD_TYPES.items():
        if record.get(field) is not None and not isinstance(record[field], kinds):
            raise BadInputError(f"{record_path}: '{field}' is a {type(record[field]).__name__}, where rlsd writes a "
                                f"{' or '.join(k.__name__ for k in kinds)}; restore the file from a backup")
    return record


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """A run's summary.json, or None when it is missing, unreadable or not what rlsd writes (a JSON object)."""
    try:
        summary = read_json(run_dir / "summary.json", "restore it from a backup")
    except (OSError, BadInputError):
        return None
    return summary if isinstance(summary, dict) else None
