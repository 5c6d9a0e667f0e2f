"""Atomic file and folder writes (a reader, or a crash, never sees a half-written file), and reading rlsd's own JSON
files back."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import BadInputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; keep the user's usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def parse_json(text: str) -> Any:
    """json.loads of user input, every failure a ValueError whose text says what is wrong: a syntax error, a
    number too long to convert, nesting too deep, or a lone surrogate escape ("\\ud800"), which parses but is
    not text and fails later, when it is encoded."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(exc.msg if exc.lineno == 1 else f"{exc.msg} at line {exc.lineno}") from None
    except ValueError as exc:  # int() of more than 4300 digits
        raise ValueError(str(exc).split(";")[0]) from None
    except RecursionError:
        raise ValueError("nested too deeply to read") from None
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a lone surrogate escape such as \\ud800, which is not text") from None
    return obj


def read_json(path: str | Path, fix: str) -> Any:
    """A JSON file rlsd wrote (a run record, a summary, an eval report, a model record, a checkpoint's state), parsed.
    Such a file may still have been damaged or edited by hand: one that is not a regular file, not UTF-8, not JSON, or
    nested deeper than the parser goes is one BadInputError naming it and `fix`, never a traceback. A missing file
    raises FileNotFoundError: whether that is an error is the caller's to say."""
    path = Path(path)
    if path.exists() and not path.is_file():  # a FIFO would block the read forever, a device never end
        raise BadInputError(f"{path}: damaged (not a regular file); {fix}")
    try:
        return parse_json(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text, byte {exc.start}"
    except ValueError as exc:
        reason = f"not valid JSON: {exc}"
    raise BadInputError(f"{path}: damaged ({reason}); {fix}")


def read_json_lines(path: str | Path, fields: tuple[str, ...], fix: str) -> list[dict[str, Any]]:
    """The rows of a JSONL file rlsd wrote (a cache of a base model's answers), each a JSON object holding `fields`.
    A damaged file is one BadInputError naming it, the line and `fix`."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{path}: damaged (not UTF-8 text, byte {exc.start}); {fix}") from None
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = parse_json(line)
        except ValueError as exc:
            reason = f"not valid JSON: {exc}"
        else:
            if isinstance(row, dict) and all(field in row for field in fields):
                rows.append(row)
                continue
            reason = f"not a JSON object with {', '.join(fields)}"
        raise BadInputError(f"{path}:{number}: damaged ({reason}); {fix}")
    return rows


def finite_number(value: Any) -> bool:
    """A number a plot or a format can use: an int or float (not a bool) within float range and not NaN or infinite.
    JSON allows integers of any length, and Python parses NaN and Infinity."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def append_jsonl(path: str | Path, obj: Any) -> None:
    """Append one line; a single write of a complete line, so a crash leaves at most a torn last line."""
    line = json.dumps(obj, default=str) + "\n"
    with open(path, "a+b") as f:
        # After a crash mid-write the file ends in a torn line: start afresh on the next line, or the new row
        # would be glued to the fragment and lost with it.
        if os.fstat(f.fileno()).st_size > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                line = "\n" + line
        f.write(line.encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def sibling_tempdir(final: Path) -> Path:
    """A new hidden folder beside `final` (same file system, so a rename moves it in), with normal permissions."""
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    os.chmod(tmp, 0o777 & ~_umask())
    return tmp


@contextlib.contextmanager
def atomic_directory(final: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it is renamed to `final` in one step.

    `final` must not exist (callers decide what to do with an old one). On any error, including
    Ctrl-C, the temporary folder is removed and `final` is untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = sibling_tempdir(final)
    try:
        yield tmp
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(final.parent)


def restore_replaced_directory(final: Path) -> None:
    """After a kill between replace_directory's two renames, `final` is missing and its previous version sits
    in `.NAME.old`: put it back, so the last complete version is what readers see."""
    old = final.with_name(f".{final.name}.old")
    if not final.exists() and old.is_dir():
        os.rename(old, final)


def replace_directory(tmp: Path, final: Path) -> None:
    """Swap `tmp` in as `final`, keeping the previous `final` until the new one is in place."""
    restore_replaced_directory(final)
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
    os.rename(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(final.parent)


def seed_cache(cache: Path, shipped: Path) -> None:
    """Copy a file shipped with rlsd into an empty cache slot: the embedded model's greedy answers ship with the
    package, so a fresh machine skips generating them. Any other model generates its own once."""
    if not cache.is_file() and shipped.is_file():
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache, shipped.read_text(encoding="utf-8"))


def dir_size_bytes(path: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
