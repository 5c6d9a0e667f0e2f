"""Where output goes: results to stdout (a table, or one JSON object with --json), status lines to stderr."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from rich.console import Console

from .distributed import is_main_process

# A pipe or a file gets every value whole: rich would fit tables to 80 columns and cut names and paths.
# No markup: what is printed holds users' file names, and a name such as `[/red]notes.md` is not a style tag.
stdout = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 10_000, markup=False)
stderr = Console(stderr=True, soft_wrap=True, markup=False)


def printable(text: str) -> str:
    """`text` with control characters written as escapes: a file name holding a newline or a terminal escape
    sequence must not split a line or drive the terminal."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in str(text))


def shorten(text: str, longest: int = 200) -> str:
    """`text` with each run of more than `longest` non-space characters cut in the middle: a message names paths and
    values as the user gave them, and one of 5,000 characters would bury what the line says. Both ends stay (the end
    of a path is its file's name)."""
    keep = (longest - 3) // 2
    return re.sub(rf"\S{{{longest + 1},}}", lambda match: f"{match[0][:keep]}...{match[0][-keep:]}", text)


def say(message: str) -> None:
    """A status line for a person; stderr keeps stdout clean for --json and pipes. Rank 0 speaks for all."""
    if not is_main_process():
        return
    message = printable(message)
    if stderr.is_terminal:
        stderr.print(message, style="dim", highlight=False)
    else:
        print(message, file=sys.stderr, flush=True)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def human_bytes(n: int | float | None) -> str:
    if not n:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


class Progress:
    """A rich progress bar on a terminal; otherwise a plain status line about every 10% of the work."""

    def __init__(self, total: int, label: str):
        self.total, self.label, self.done = max(total, 1), label, 0
        self._bar = None
        self._next_report = 0.1

    def __enter__(self) -> Progress:
        if stderr.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(  # the column reads its own markup; the console (markup off) would print it
                TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TimeRemainingColumn(), console=stderr, transient=True,
            )
            self._bar.start()
            from rich.markup import escape

            self._task = self._bar.add_task(escape(printable(self.label)), total=self.total)
        return self

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.advance(self._task, n)
        elif self.done / self.total >= self._next_report or self.done == self.total:
            say(f"{self.label}: {self.done}/{self.total}")
            while self._next_report <= self.done / self.total:
                self._next_report += 0.1

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
