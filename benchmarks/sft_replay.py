"""What sft's general-chat replay does to forgetting: the replayed instruction sets (`--replay`) and their share
(`--mix`), on two corpora and several seeds, scored on document QA, the IFEval subset, world-knowledge retention
and drift from the base (issue: retention after sft and recover, chosen on more than the example corpus).

Each cell is one `rlsd sft` run; runs already made (a folder with summary.json under --runs, named
`<corpus>-<setting>-s<seed>`) are read, not redone, so a long sweep can be stopped and continued. Prints one JSON
object: per corpus and setting, the mean, min and max of each measure over seeds, and the "leak": the share of
world-knowledge answers naming a capitalised word of the corpus that the base's answers and the questions never
use.

    python examples/build_docs.py   # the example's PDF and DOCX, once
    python benchmarks/sft_replay.py --runs DIR [--corpora example tests] [--settings g-m01 gf-m01 g-m03 gf-m03] \\
        [--seeds 0 1]

Settings are `<sets>-m<mix>`: `g` general, `gf` general+factual, `f` factual; `m03` is --mix 0.3. A cell costs one
sft run with its scoring: about 15 minutes at one thread on a 2-core AMD EPYC for the example corpus.
"""

from __future__ import annotations

import argparse
import json
import re
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


# A capitalised word of four letters or more: a name, as the documents' names leak into world answers.
NAME = re.compile(r"\b[A-Z][a-z]{3,}\b")
TEXT_SUFFIXES = {".md", ".txt", ".rst", ".html", ".json", ".jsonl"}


def corpus_names(folder: Path) -> set[str]:
    return {name for path in folder.rglob("*") if path.suffix in TEXT_SUFFIXES
            for name in NAME.findall(path.read_text(encoding="utf-8", errors="ignore"))}


def knowledge_rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "knowledge.jsonl").read_text().splitlines() if line.strip()]


def leak(run: Path, names: set[str]) -> float | None:
    """The share of the run's knowledge answers naming a corpus name that neither the questions nor the base's own
    answers use ("The capital of France is Tallowmere")."""
    from rlsd_cli.evaluate import reports_dir
    from rlsd_cli.model import resolve_model

    spec = json.loads((run / "run.json").read_text())["base_model"]["spec"]
    try:
        base = knowledge_rows(reports_dir(resolve_model(spec)))
        rows = knowledge_rows(run / "evals")
    except OSError:
        return None
    common = {name for row in base for name in NAME.findall(row["prompt"] + " " + row["response"])}
    own = names - common
    return round(sum(1 for row in rows if set(NAME.findall(row["response"])) & own) / max(len(rows), 1), 4)


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
    for setting in args.settings:  # before hours of runs, not after
        if not re.fullmatch(rf"({'|'.join(SETS)})-m\d\d", setting):
            parser.error(f"--settings {setting}: expected <{'|'.join(SETS)}>-m<two digits>, such as gf-m03 (--mix 0.3)")
    if "example" in args.corpora and not list((REPO / "examples" / "company").glob("*.pdf")):
        parser.error("the example's PDF and DOCX are not built: run python examples/build_docs.py first")
    args.runs.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    cells = {}
    for corpus in args.corpora:
        names = corpus_names(Path(CORPORA[corpus][0]))
        for setting in args.settings:
            summaries = [run_cell(args, corpus, setting, seed) for seed in args.seeds]
            leaks = [leak(args.runs / f"{corpus}-{setting}-s{seed}", names) for seed in args.seeds]
            cells[f"{corpus} | {setting}"] = {
                "flags": setting_flags(setting),
                "per_seed": {seed: {m: value(s, path) for m, path in MEASURES.items()} | {"steps": s.get("steps"), "leak": lk}
                             for seed, s, lk in zip(args.seeds, summaries, leaks, strict=True)},
                **{m: spread([v for v in (value(s, path) for s in summaries) if v is not None])
                   for m, path in MEASURES.items()},
                "leak": spread([v for v in leaks if v is not None]),
            }
    print(json.dumps({
        "benchmark": "sft_replay", "machine": machine(), "seeds": args.seeds, "eval_limit": args.eval_limit,
        "cells": cells,
        # Runs already on disk are not timed again: this is the time of this invocation only.
        "wall_seconds_this_invocation": round(time.perf_counter() - started, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
