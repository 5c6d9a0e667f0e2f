"""Does the label-free drift meter track forgetting? Scores every given run (sft and recover runs of different
settings) with `rlsd eval drift` and `rlsd eval knowledge`, takes each run's IFEval subset from its summary, and
prints the Spearman rank correlation of drift (KL to the base) with the IFEval loss and the retention loss, with
every run listed. Also says what one drift measurement costs: teacher forcing on the base's cached answers, beside
generating those 96 answers (done once per base; a generation-based comparison would pay it for every run).

    python benchmarks/forgetting_measures.py RUN [RUN ...]       # at least 8 runs for a correlation worth reading
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import machine, rlsd

IFEVAL = "inst_level_loose_acc"


def spearman(xs: list[float], ys: list[float]) -> float:
    def ranks(values: list[float]) -> list[float]:
        order = sorted(range(len(values)), key=values.__getitem__)
        out = [0.0] * len(values)
        i = 0
        while i < len(order):  # ties share their mean rank
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out

    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sx = sum((a - mx) ** 2 for a in rx) ** 0.5
    sy = sum((b - my) ** 2 for b in ry) ** 0.5
    return round(cov / (sx * sy), 3) if sx and sy else float("nan")


def summary_of(run: Path) -> dict:
    for name in ("summary.json", "cli-summary.json"):
        if (run / name).is_file():
            return json.loads((run / name).read_text())
    raise SystemExit(f"{run}: no summary.json; pass finished runs")


def measure(run: Path) -> dict:
    started = time.perf_counter()
    drift = json.loads(rlsd("eval", "drift", "--model", str(run), "--json").stdout)
    drift_seconds = time.perf_counter() - started
    knowledge = json.loads(rlsd("eval", "knowledge", "--model", str(run), "--json").stdout)
    summary = summary_of(run)
    base_ifeval = None
    if "ifeval" in summary["eval_after"]:  # the base model on the same IFEval items (its report is cached)
        base = json.loads((run / "run.json").read_text())["base_model"]["spec"]
        base_ifeval = json.loads(rlsd("eval", "ifeval", "--model", base, "--limit", "60", "--max-new-tokens", "128",
                                      "--json").stdout)["metrics"][IFEVAL]
    return {"run": run.name, "verb": summary["verb"], "kl": drift["metrics"]["kl"],
            "early_divergence": drift["metrics"]["early_divergence"], "drift_seconds": round(drift_seconds, 1),
            "drift_cached": drift.get("cached", False), "drift_scoring_seconds": drift.get("seconds"),
            "base_answers_seconds": drift.get("base_answers_seconds"), "knowledge": knowledge["metrics"]["accuracy"],
            "retention": knowledge["metrics"].get("retention"),
            "ifeval": summary["eval_after"].get("ifeval", {}).get(IFEVAL), "ifeval_base": base_ifeval}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    rows = [measure(run) for run in args.runs]
    scored = [r for r in rows if r["ifeval"] is not None and r["ifeval_base"] is not None and r["retention"] is not None]
    kl = [r["kl"] for r in scored]
    correlations = {
        "kl_vs_ifeval_loss": spearman(kl, [r["ifeval_base"] - r["ifeval"] for r in scored]),
        "kl_vs_retention_loss": spearman(kl, [1 - r["retention"] for r in scored]),
        "early_divergence_vs_ifeval_loss": spearman([r["early_divergence"] for r in scored],
                                                    [r["ifeval_base"] - r["ifeval"] for r in scored]),
        "early_divergence_vs_retention_loss": spearman([r["early_divergence"] for r in scored],
                                                       [1 - r["retention"] for r in scored]),
    }
    print(json.dumps({"machine": machine(), "runs": rows, "n": len(scored), "spearman": correlations}, indent=2))


if __name__ == "__main__":
    main()
