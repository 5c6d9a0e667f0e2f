"""PNG charts of metrics: one function draws every chart rlsd writes (training curves, run comparisons).

Depends on nothing of rlsd's above the process layout, so any module may draw."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import BadInputError
from .fsutil import finite_number


def plot_curve(rows: list[dict[str, Any]], key: str, target: Path, title: str) -> Path | None:
    return plot_curves(rows, [key], target, title)


def plot_curves(rows: list[dict[str, Any]], keys: list[str], target: Path, title: str) -> Path | None:
    """One PNG with a line per metric key (steps on x), written atomically; None when no key has points."""
    return plot_panels(rows, {title: keys}, target)


def metric_points(rows: list[dict[str, Any]], key: str) -> list[tuple[float, float]]:
    return [(r["step"], r[key]) for r in rows if finite_number(r.get(key))]


def plot_panels(rows: list[dict[str, Any]], panels: dict[str, list[str]], target: Path, title: str | None = None) -> Path | None:
    """One PNG with a panel per title, a line per metric key in it; panels without points are left out."""
    grid = {name: {key: metric_points(rows, key) for key in keys} for name, keys in panels.items()}
    return plot_series_grid(grid, target, title)


def plot_series(series: dict[str, list[tuple[float, float]]], target: Path, title: str, ylabel: str = "value") -> Path | None:
    """One PNG with a line per labelled series of (step, value) points; None when no series has points."""
    return plot_series_grid({title: series}, target, ylabel=ylabel)


def plot_series_grid(grid: dict[str, dict[str, list[tuple[float, float]]]], target: Path, title: str | None = None,
                     ylabel: str | None = None, xlabels: dict[str, str] | None = None) -> Path | None:
    """Panels (title -> {label: [(step, value)]}) in a grid of at most 3 columns, written atomically; the x axis is
    "step" unless `xlabels` names another for a panel."""
    from .distributed import is_main_process

    if not is_main_process():
        return target
    grid = {name: {label: pts for label, pts in series.items() if pts} for name, series in grid.items()}
    grid = {name: series for name, series in grid.items() if series}
    if not grid:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(3, len(grid))
    lines = -(-len(grid) // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(6 if columns == 1 else 4.2 * columns, 3.5 * lines), squeeze=False)
    for ax, (name, series) in zip(axes.flat, grid.items(), strict=False):
        for label, points in series.items():
            ax.plot([p[0] for p in points], [p[1] for p in points], label=label, marker="o" if len(points) < 12 else None)
        ax.set_xlabel((xlabels or {}).get(name, "step"))
        ax.set_ylabel(ylabel or (next(iter(series)) if len(series) == 1 else "value"))
        if len(series) > 1:
            ax.legend(fontsize=8)
        ax.set_title(name, fontsize=10)
    for ax in list(axes.flat)[len(grid):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if target.is_dir():
        plt.close(fig)
        raise BadInputError(f"{target}: is a folder; pass a .png file name")
    tmp = target.with_name(f".{target.name}.tmp.png")
    try:
        fig.savefig(tmp, dpi=110)
        tmp.replace(target)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return target
