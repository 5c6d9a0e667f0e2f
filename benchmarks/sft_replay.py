"""What sft's general-chat replay does to forgetting: the replayed instruction sets (`--replay`) and their share
(`--mix`), on two corpora and several seeds, scored on document QA, the IFEval subset, world-knowledge retention
and drift from the base (issue: retention after sft and recover, chosen on more than the example corpus).

Each cell is one `rlsd sft` run; runs already made (a folder with summary.json under --runs, named
`<corpus>-<setting>-s<seed>`) are read, not redone, so a long sweep can be stopped and continued. Prints one JSON
object: per corpus and setting, the mean, min and max of each measure over seeds.

    python examples/build_docs.py   # the example's PDF and DOCX, once
    python benchmarks/sft_replay.py --runs DIR [--corpora example tests] [--settings g-m01 gf-m01 g-m03 gf-m03] \\
        [--seeds 0 1]

Settings are `<sets>-m<mix>`: `g` general, `gf` general+factual, `f` factual; `m03` is --mix 0.3. A cell costs one
sft run with its scoring: about 15 minutes at one thread on a 2-core AMD EPYC for the example corpus.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from common import machine, rlsd

REPO = Path(__file__).resolve().parent.parent
# The example with its demo recipe (short and harsh), and the tests' corpus as its end-to-end fixture trains it.
CORPORA = {
    "example": [str(REPO / "examples" / "company"), "--recipe", "cpu-demo-sft",
                "--eval-qa", str(REPO / "examples" / "company_qa.jsonl")],
    "tests": [str(REPO / "tests" / "data" / "docs"), "--lr", "0.002", "--epochs", "4", "--lora-dropout", "0",
              "--eval-qa", str(REPO / "tests" / "data" / "docs_qa.jsonl")],
}
SETS = {"g": "general", "gf": "general+factual", "f": "factual"}
MEASURES = {
    "qa": ("qa", "accuracy"),
    "ifeval": ("ifeval", "inst_level_strict_acc"),
    "knowledge": ("knowledge", "accuracy"),
    "retention": ("knowledge", "retention"),
    "drift_kl": ("drift", "kl"),
}


def setting_flags(setting: str) -> list[str]:
    sets, mix = setting.split("-m")
    return ["--replay", SETS[sets], "--mix", str(int(mix) / 10)]


def run_cell(args, corpus: str, setting: str, seed: int) -> dict:
    name = f"{corpus}-{setting}-s{seed}"
    folder = args.runs / name
    if not (folder / "summary.json").is_file():
        command = ["sft", *CORPORA[corpus], *setting_flags(setting), "--seed", str(seed), "--eval", "ifeval",
                   "--eval-limit", str(args.eval_limit), "--eval-max-new-tokens", "128", "--runs-dir", str(args.runs),
                   "--name", name]
        if folder.exists():  # a run stopped before its end
            command.append("--force")
        rlsd(*command)
    return json.loads((folder / "summary.json").read_text())


def value(summary: dict, path: tuple[str, str]) -> float | None:
    found = summary.get("eval_after", {}).get(path[0], {}).get(path[1])
    return found if isinstance(found, (int, float)) else None


def spread(values: list[float]) -> dict | None:
    return {"mean": round(statistics.mean(values), 4), "min": min(values), "max": max(values), "n": len(values)} \
        if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--corpora", nargs="+", default=list(CORPORA), choices=list(CORPORA))
    parser.add_argument("--settings", nargs="+", default=["g-m01", "gf-m01", "g-m03", "gf-m03"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--eval-limit", type=int, default=60)
    args = parser.parse_args()
    args.runs.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    cells = {}
    for corpus in args.corpora:
        for setting in args.settings:
            summaries = [run_cell(args, corpus, setting, seed) for seed in args.seeds]
            cells[f"{corpus} | {setting}"] = {
                "flags": setting_flags(setting),
                "per_seed": {seed: {m: value(s, path) for m, path in MEASURES.items()} | {"steps": s.get("steps")}
                             for seed, s in zip(args.seeds, summaries, strict=True)},
                **{m: spread([v for v in (value(s, path) for s in summaries) if v is not None])
                   for m, path in MEASURES.items()},
            }
    print(json.dumps({
        "benchmark": "sft_replay", "machine": machine(), "seeds": args.seeds, "eval_limit": args.eval_limit,
        "cells": cells,
        # Runs already on disk are not timed again: this is the time of this invocation only.
        "wall_seconds_this_invocation": round(time.perf_counter() - started, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
