"""Run directories: everything a training verb produces, in one folder that is never overwritten.

runs/<name>/
  run.json        resolved config, command line, package versions, base model (spec + weights hash), parent run
  adapter/        the final PEFT adapter (safetensors), written in one rename
  metrics.jsonl   one JSON line per logged step
  summary.json    final metrics, wall time, tokens/s, peak memory
  checkpoints/    Trainer's checkpoint-N/ folders (adapter, optimizer, scheduler, RNG and data position)
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .distributed import RUN_STAMP, is_main_process, wait_for_everyone, world_size
from .errors import BadInputError, RlsdError
from .fsutil import (
    append_jsonl,
    atomic_write_json,
    atomic_write_text,
    dir_size_bytes,
    finite_number,
    replace_directory,
    sibling_tempdir,
)
from .run_record import RUN_RECORD, read_run_record, read_summary

RUN_LOCK = ".lock"
RUNS_ROOT = Path(os.environ.get("RLSD_RUNS", "runs"))
# Settings a resumed run may change: where and how often it reports, not what or how it trains.
RESUME_MAY_CHANGE = frozenset({
    "resume", "force", "name", "runs_dir", "save_every", "model", "dry_run",
    "eval_qa", "eval", "eval_data", "eval_limit", "eval_max_new_tokens", "eval_every", "test_data",
})

_held_locks: dict[Path, int] = {}  # run folder -> open file descriptor holding its lock for this process's life
_unstarted: list[Path] = []  # run folders this process created and has not trained in yet
PACKAGES = ("rlsd", "torch", "transformers", "peft", "trl", "bitsandbytes", "accelerate", "datasets")


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def default_run_name(verb: str) -> str:
    return f"{verb}-{os.environ.get(RUN_STAMP) or time.strftime('%Y%m%d-%H%M%S')}"


def run_path(name_or_path: str | Path, root: Path | None = None) -> Path:
    """A run is named by its folder, or by its bare name under the runs root."""
    path = Path(name_or_path)
    if path.is_dir() or len(path.parts) > 1:
        return path
    return (root or RUNS_ROOT) / path


def check_run_name(name: str) -> None:
    if not name or "/" in name or name.startswith("."):
        raise BadInputError(f"--name {name!r}: a run name is one folder name, without '/' or a leading '.'")
    if not name.isprintable():  # undecodable bytes arrive as unprintable surrogates
        raise BadInputError(f"--name {name[:40]!r}: a run name is printable characters only (no newline, tab or "
                            "control character); pass another --name")
    if len(os.fsencode(name)) > 200:
        raise BadInputError(f"--name {name[:40]!r}...: a run name is at most 200 bytes; pass a shorter --name")


@dataclass
class Run:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def create(
        cls,
        verb: str,
        *,
        name: str | None = None,
        root: Path | None = None,
        force: bool = False,
        resume: bool = False,
        record: dict[str, Any] | None = None,
    ) -> Run:
        """Make runs/<name>/ and write run.json. An existing run is an error unless `resume` (reuse it)
        or `force` (move the old one to runs/.trash/ first: nothing is deleted). With several processes rank 0
        makes it and the others use it."""
        if world_size() > 1:
            if is_main_process():
                run = cls._create_here(verb, name=name, root=root, force=force, resume=resume, record=record)
                wait_for_everyone()
                return run
            wait_for_everyone()
            path = (root or RUNS_ROOT) / (name or default_run_name(verb))
            if not (path / RUN_RECORD).is_file():
                raise RlsdError(f"{path}: rank 0 did not make this run folder")
            return cls(path)
        return cls._create_here(verb, name=name, root=root, force=force, resume=resume, record=record)

    @staticmethod
    def check_target(verb: str, *, name: str | None, root: Path | None, force: bool, resume: bool) -> None:
        """What `create` would refuse, found before a model loads (and by --dry-run); creates nothing."""
        root = root or RUNS_ROOT
        name = default_run_name(verb) if name is None else name
        check_run_name(name)
        if root.exists() and not root.is_dir():
            raise BadInputError(f"{root}: is a file, not a folder; pass a folder as --runs-dir")
        path = root / name
        is_run = path.is_dir() and not path.is_symlink() and ((path / RUN_RECORD).is_file() or not any(path.iterdir()))
        if (path.exists() or path.is_symlink()) and not is_run and (resume or force):
            # --force moves only a run (or an empty folder) aside, never a user's file or folder bearing the name
            raise BadInputError(f"{path}: exists and is not a run folder (a folder, not a link, holding {RUN_RECORD}); "
                                "pass another --name")
        if path.exists() and not (resume or force):
            raise BadInputError(f"{path}: a run with this name exists; pass --resume to continue it, "
                                "--force to move it to runs/.trash/, or another --name")
        if resume and not path.exists():
            raise BadInputError(f"{path}: --resume given but no such run exists")

    @classmethod
    def _create_here(cls, verb: str, *, name: str | None, root: Path | None, force: bool, resume: bool,
                     record: dict[str, Any] | None) -> Run:
        root = root or RUNS_ROOT
        name = default_run_name(verb) if name is None else name
        cls.check_target(verb, name=name, root=root, force=force, resume=resume)  # checked again: time has passed
        path = root / name
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInputError(f"{root}: cannot create the runs folder ({exc.strerror}); pass a writable --runs-dir") from None
        if path.exists() and resume:
            hold_run_lock(path)
            check_resumable(path, read_run_record(path), record or {})
            return cls(path)
        if path.exists():  # --force (check_target refused the rest)
            hold_run_lock(path)  # never move a run another process is training in
            release_run_lock(path)
            trash = root / ".trash"
            trash.mkdir(exist_ok=True)
            os.rename(path, trash / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            # mkdir is atomic: of two processes asking for the same name, exactly one wins.
            path.mkdir()
        except FileExistsError:
            raise BadInputError(f"{path}: another process just created a run with this name; pass another --name") from None
        except OSError as exc:
            raise BadInputError(f"{path}: cannot create the run folder ({exc.strerror})") from None
        hold_run_lock(path)
        _unstarted.append(path)
        run = cls(path)
        full_record = {
            "name": name,
            "verb": verb,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": sys.argv,
            "versions": package_versions(),
        }
        full_record.update(record or {})
        atomic_write_json(path / RUN_RECORD, full_record)
        (path / "checkpoints").mkdir()
        return run

    def record(self) -> dict[str, Any]:
        return read_run_record(self.path)

    def mark_started(self) -> None:
        """From here on the folder holds training: a failure no longer removes it (see discard_unstarted)."""
        with contextlib.suppress(ValueError):
            _unstarted.remove(self.path)

    def mark_failed(self, step: int, reason: str) -> None:
        """failure.json: training stopped for good at `step` (`runs list` shows the run as failed)."""
        if is_main_process():
            atomic_write_json(self.path / "failure.json", {"step": step, "reason": reason,
                                                           "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})

    def log_metrics(self, step: int, **metrics: Any) -> None:
        if not is_main_process():  # Trainer and TRL already reduced the values across ranks
            return
        append_jsonl(self.path / "metrics.jsonl", {"step": step, "time": round(time.time(), 3), **metrics})

    def metrics(self) -> list[dict[str, Any]]:
        rows = []
        path = self.path / "metrics.jsonl"
        if path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                # A torn last line after a crash, or a line edited by hand (nested past the parser's depth)
                with contextlib.suppress(ValueError, RecursionError):
                    row = json.loads(line)
                    if isinstance(row, dict) and finite_number(row.get("step")):  # rlsd logs every row with its step
                        rows.append(row)
        return rows

    def drop_metrics_after(self, step: int) -> int:
        """Rows logged after `step` describe training a crash threw away (a resume redoes those steps): move
        them to metrics-discarded.jsonl so each step appears once in metrics.jsonl. Returns how many moved."""
        if not is_main_process():
            return 0
        rows = self.metrics()
        kept, dropped = [r for r in rows if r.get("step", 0) <= step], [r for r in rows if r.get("step", 0) > step]
        if dropped:
            for row in dropped:
                append_jsonl(self.path / "metrics-discarded.jsonl", row)
            atomic_write_text(self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in kept))
        return len(dropped)

    def write_summary(self, summary: dict[str, Any]) -> None:
        if not is_main_process():
            return
        atomic_write_json(self.path / "summary.json", summary)

    def summary(self) -> dict[str, Any] | None:
        return read_summary(self.path)

    def save_adapter(self, model, tokenizer=None) -> Path:
        """Write the PEFT adapter to adapter/ in one rename (the previous one stays until the new one is in)."""
        final = self.path / "adapter"
        if not is_main_process():
            wait_for_everyone()  # the others go on once rank 0's adapter is in place (they may load it)
            return final
        # A fresh temporary name each time: a folder left by a killed save never blocks the next one.
        tmp = sibling_tempdir(final)
        try:
            model.save_pretrained(tmp, safe_serialization=True)
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp)
            replace_directory(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        wait_for_everyone()
        return final


def hold_run_lock(path: Path) -> None:
    """Lock runs/<name>/ for the rest of this process's life (flock: the kernel drops it when the process ends,
    however it ends), so a second process can never train into the same folder."""
    path = Path(path)
    if path.resolve() in _held_locks:
        return
    try:
        import fcntl
    except ImportError:  # not a POSIX system: no lock, as before
        return
    fd = os.open(path / RUN_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise BadInputError(f"{path}: in use by another rlsd process (pid {holder}); wait for it to end, or pass "
                            "another --name") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _held_locks[path.resolve()] = fd


def check_resumable(path: Path, stored: dict[str, Any], record: dict[str, Any]) -> None:
    """--resume continues the same training: refuse a finished run, another base model, or changed settings."""
    if (path / "summary.json").is_file():
        raise BadInputError(f"{path}: this run is finished (summary.json); nothing to resume. Start a new run with "
                            "another --name")
    old_hash = (stored.get("base_model") or {}).get("weights_sha256")
    new_hash = (record.get("base_model") or {}).get("weights_sha256")
    if old_hash and new_hash and old_hash != new_hash:
        raise BadInputError(f"{path}: this run was trained on {stored['base_model'].get('spec')} (weights sha256 "
                            f"{old_hash[:12]}), not on the --model given (sha256 {new_hash[:12]}); pass the run's "
                            "own --model to resume it")
    old_config, new_config = stored.get("config") or {}, record.get("config") or {}
    for key in sorted(set(old_config) & set(new_config) - RESUME_MAY_CHANGE):
        if _as_path(old_config[key]) != _as_path(new_config[key]):
            flag = "--" + key.replace("_", "-")
            raise BadInputError(f"{path}: the run was started with {flag} {old_config[key]!r}, not {new_config[key]!r}; "
                                f"resume with the same settings (see {path / RUN_RECORD}) or start a new run with "
                                "another --name")


def _as_path(value: Any) -> Any:
    """A string setting as an absolute path: runs recorded before paths were stored absolute kept them as typed,
    and a resume from the same folder must still match. Two different strings stay different (a model name or a
    method becomes a path under this folder), so only spellings of one path become equal."""
    return os.path.abspath(value) if isinstance(value, str) else value


def discard_unstarted() -> list[Path]:
    """Remove the run folders this process created but never trained in (it failed or was stopped while
    setting up): they hold only what the next attempt writes again, and would block its --name."""
    removed = []
    while _unstarted:
        path = _unstarted.pop()
        release_run_lock(path)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def release_run_lock(path: Path) -> None:
    fd = _held_locks.pop(Path(path).resolve(), None)
    if fd is not None:
        os.close(fd)


def list_runs(root: Path | None = None) -> list[dict[str, Any]]:
    root = root or RUNS_ROOT
    rows = []
    if root.exists() and not root.is_dir():
        raise BadInputError(f"{root}: is a file, not a folder; pass a folder as --runs-dir (or RLSD_RUNS)")
    if not root.is_dir():
        return rows
    for path in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not (path / RUN_RECORD).is_file():
            continue
        try:
            rows.append(describe_run(path))
        except BadInputError as exc:  # one damaged run is listed as such, and the others still are
            rows.append({"name": path.name, "path": str(path), "verb": None, "created": None, "base_model": "-",
                         "parent": None, "status": f"unreadable: {exc}", "steps": 0, "adapter_size_bytes": 0,
                         "summary": {}, "record": {}})
    return rows


def describe_run(path: Path) -> dict[str, Any]:
    record = read_run_record(path)
    run = Run(path)
    summary = run.summary() or {}
    metrics = run.metrics()
    status = "finished" if (path / "adapter" / "adapter_config.json").is_file() and summary else "incomplete"
    if (path / "failure.json").is_file():
        status = "failed"
    return {
        "name": path.name,
        "path": str(path),
        "verb": record.get("verb"),
        "created": record.get("created"),
        "base_model": record["base_model"].get("spec"),
        "parent": record.get("parent"),
        "status": status,
        "steps": metrics[-1]["step"] if metrics else 0,
        "adapter_size_bytes": dir_size_bytes(path / "adapter") if (path / "adapter").is_dir() else 0,
        "summary": summary,
        "record": record,
    }


def plot_runs(paths: list[Path], metrics: list[str], out: Path, force: bool = False) -> dict[str, Any]:
    """One PNG with a line per (run, metric) from each run's metrics.jsonl."""
    from .plots import metric_points, plot_series

    out = Path(out)
    if out.exists() and not force:
        raise BadInputError(f"{out}: already exists; choose another --out or pass --force")
    if out.suffix.lower() != ".png":
        raise BadInputError(f"--out {out}: write a .png file")
    series = {}
    names = distinct_names(paths)
    for path, name in zip(paths, names, strict=True):
        if not (path / RUN_RECORD).is_file():
            raise BadInputError(f"{path}: not a run folder (no {RUN_RECORD})")
        rows = Run(path).metrics()
        for metric in metrics:
            label = name if len(metrics) == 1 else f"{name}: {metric}"
            series[label] = metric_points(rows, metric)
    empty = [label for label, points in series.items() if not points]
    if len(empty) == len(series):
        raise BadInputError(f"no run has points for {', '.join(metrics)}; see the keys with `rlsd runs show NAME --json`")
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_series(series, out, " vs ".join(names), ylabel=metrics[0] if len(metrics) == 1 else "value")
    return {"plot": str(out), "points": {label: len(points) for label, points in series.items()}}


def distinct_names(paths: list[Path]) -> list[str]:
    """Each run's folder name, or as many of its path's last parts as tell it from the other runs (runs/p and
    other/p are `runs/p` and `other/p`): two runs of one name would otherwise be drawn as one line."""
    parts = [Path(os.path.abspath(path)).parts for path in paths]
    names = []
    for mine in parts:
        for size in range(1, len(mine) + 1):
            if all(other[-size:] != mine[-size:] for other in parts if other != mine):
                break
        names.append(str(Path(*mine[-size:])))
    return names
