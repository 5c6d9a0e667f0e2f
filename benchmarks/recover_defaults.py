"""Which recover settings repair forgetting best, measured broadly: every (prompt set, divergence) from each given
sft run, several seeds, scored on the IFEval subset, world-knowledge retention, drift from the base and the sft
run's own document QA together (issue: choose recover's defaults on all of them, on two corpora).

Each cell is one `rlsd recover` run; runs already made (a folder with summary.json under --runs) are read, not
redone, so a long sweep can be stopped and continued. Prints one JSON object: per sft run and setting, the mean,
min and max of each measure over seeds, and the settings ranked by their mean rank over the four measures.

    python benchmarks/recover_defaults.py --runs DIR --sft runs/sft-tests-corpus runs/sft-example \\
        [--prompts format general all my_prompts.jsonl] [--divergences full sampled] [--seeds 0 1 2]

A cell costs one recover run (about 9 minutes on 2 cores with `--recipe cpu-demo-recover` and a 60-prompt IFEval
subset): the full grid of 2 corpora x 4 prompt sets x 2 divergences x 3 seeds is about 7 hours.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from common import machine, rlsd

from rlsd_cli.recover import general_prompts

# (summary path, higher is better) per measure; QA is the sft run's own `--eval-qa` file.
MEASURES = {
    "ifeval": (("ifeval", "inst_level_loose_acc"), True),
    "retention": (("knowledge", "retention"), True),
    "drift_kl": (("drift", "kl"), False),
    "qa": (("qa", "accuracy"), True),
}


def cell_name(sft: Path, prompts: str, divergence: str, seed: int) -> str:
    return f"{sft.name}-{Path(prompts).stem}-{divergence}-seed{seed}"


def value(summary: dict, path: tuple[str, str]) -> float | None:
    found = summary.get("eval_after", {}).get(path[0], {}).get(path[1])
    return found if isinstance(found, (int, float)) else None


def run_cell(args, sft: Path, prompts: str, divergence: str, seed: int) -> dict:
    name = cell_name(sft, prompts, divergence, seed)
    folder = args.runs / name
    if (folder / "summary.json").is_file():
        # A cell is reused by its name; one made when the same flags read other prompts would be reused silently.
        made_with = json.loads((folder / "summary.json").read_text()).get("general_prompts")
        if made_with != general_prompts(prompts)[1]:
            raise SystemExit(f"{folder}: made with {made_with!r}, not what --prompts {prompts} reads now; move it "
                             "away to rerun the cell")
    else:
        command = ["recover", "--from", str(sft), "--recipe", args.recipe, "--prompts", prompts,
                   "--divergence", divergence, "--seed", str(seed), "--eval", "ifeval", "--eval-limit",
                   str(args.eval_limit), "--eval-max-new-tokens", "128", "--runs-dir", str(args.runs), "--name", name]
        if folder.exists():  # a run stopped before its end
            command.append("--force")
        rlsd(*command)
    return json.loads((folder / "summary.json").read_text())


def spread(values: list[float]) -> dict[str, float] | None:
    return {"mean": round(statistics.mean(values), 4), "min": min(values), "max": max(values)} if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--sft", type=Path, nargs="+", required=True, help="sft runs (one per corpus)")
    parser.add_argument("--prompts", nargs="+", default=["format", "general", "all"])
    parser.add_argument("--divergences", nargs="+", default=["full", "sampled"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--recipe", default="cpu-demo-recover")
    parser.add_argument("--eval-limit", type=int, default=60)
    args = parser.parse_args()
    args.runs.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    cells: dict[str, dict] = {}
    for sft in args.sft:
        sft_summary = json.loads((sft / "summary.json").read_text())
        for prompts in args.prompts:
            for divergence in args.divergences:
                summaries = [run_cell(args, sft, prompts, divergence, seed) for seed in args.seeds]
                cells[f"{sft.name} | {prompts} | {divergence}"] = {
                    "sft": str(sft), "prompts": prompts, "divergence": divergence,
                    "sft_after": {m: value(sft_summary, path) for m, (path, _) in MEASURES.items()},
                    **{m: spread([v for v in (value(s, path) for s in summaries) if v is not None])
                       for m, (path, _) in MEASURES.items()},
                }
    # Rank each measure within its sft run (1 = best), then average the four ranks.
    for sft in args.sft:
        mine = [key for key, cell in cells.items() if cell["sft"] == str(sft)]
        for measure, (_, higher) in MEASURES.items():
            scored = [key for key in mine if cells[key][measure]]
            ordered = sorted(scored, key=lambda k: cells[k][measure]["mean"], reverse=higher)
            for rank, key in enumerate(ordered, 1):
                cells[key].setdefault("ranks", {})[measure] = rank
        for key in mine:
            ranks = cells[key].get("ranks", {})
            cells[key]["mean_rank"] = round(statistics.mean(ranks.values()), 2) if ranks else None
    print(json.dumps({
        "benchmark": "recover_defaults",
        "machine": machine(),
        "recipe": args.recipe, "seeds": args.seeds, "eval_limit": args.eval_limit,
        "cells": dict(sorted(cells.items(), key=lambda kv: (kv[1]["sft"], kv[1]["mean_rank"] or 99))),
        # Runs already on disk are not timed again: this is the time of this invocation only.
        "wall_seconds_this_invocation": round(time.perf_counter() - started, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
