"""Where output goes: results to stdout (a table, or one JSON object with --json), status lines to stderr."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


def interactive() -> bool:
    return sys.stdout.isatty()


def say(message: str) -> None:
    """A status line for a person; stderr keeps stdout clean for --json and pipes."""
    if stderr.is_terminal:
        stderr.print(f"[dim]{message}[/dim]", highlight=False)
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
