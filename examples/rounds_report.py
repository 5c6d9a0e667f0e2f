"""The table, chart and gate of examples/continual_learning.sh: one row per stage of the two rounds.

    python examples/rounds_report.py RUNS PREFIX      # reads RUNS/PREFIX-r{1,2}-{sft,recover}/cli-summary.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROUND_TWO_QA = "qa-company_qa_revision2"  # the report of examples/company_qa_revision2.jsonl
IFEVAL = "inst_level_loose_acc"
COLUMNS = [  # (header, report, metric)
    ("QA round 1", "qa", "accuracy"),
    ("new", ROUND_TWO_QA, "accuracy/new"),
    ("updated", ROUND_TWO_QA, "accuracy/updated"),
    ("stale", ROUND_TWO_QA, "stale_rate"),
    ("kept", ROUND_TWO_QA, "accuracy/kept"),
    ("IFEval", "ifeval", IFEVAL),
    ("retention", "knowledge", "retention"),
    ("facts kept", "knowledge", "fact_retention"),  # the base's sure facts still said first (docs/forgetting.md)
    ("drift KL", "drift", "kl"),
]


def stages(runs: Path, prefix: str) -> list[tuple[str, dict]]:
    summaries = {name: json.loads((runs / f"{prefix}-{name}" / "cli-summary.json").read_text())
                 for name in ("r1-sft", "r1-recover", "r2-sft", "r2-recover")}
    # Round two's questions are first scored as round two starts: on the round-one model (its eval_before).
    return [("base model", summaries["r1-sft"]["eval_before"]),
            ("round 1 sft", summaries["r1-sft"]["eval_after"]),
            ("round 1 recover", summaries["r1-recover"]["eval_after"] | summaries["r2-sft"]["eval_before"]),
            ("round 2 sft", summaries["r2-sft"]["eval_after"]),
            ("round 2 recover", summaries["r2-recover"]["eval_after"])]


def value(scores: dict, report: str, metric: str) -> float:
    if report == "knowledge" and metric in ("retention", "fact_retention") and "knowledge" in scores:
        if "retention" not in scores["knowledge"]:
            return 1.0  # the base model: it keeps all it knows
        return scores["knowledge"].get(metric, float("nan"))  # no sure fact to count: "-", not a perfect score
    return scores.get(report, {}).get(metric, float("nan"))


def chart(rows: list[tuple[str, dict]], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for header, report, metric in COLUMNS:
        ax.plot(range(len(rows)), [value(s, report, metric) for _, s in rows], marker="o", label=header)
    ax.set_xticks(range(len(rows)), [label for label, _ in rows], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of questions (stale: of the updated; drift: nats per token)")
    ax.legend(fontsize=8)
    ax.set_title("rlsd: two rounds on a changing document folder")
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)


def main() -> int:
    runs, prefix = Path(sys.argv[1]), sys.argv[2]
    rows = stages(runs, prefix)
    print(f"\n{'':18}" + "".join(f"{header:>12}" for header, _, _ in COLUMNS))
    for label, scores in rows:
        print(f"{label:18}" + "".join(f"{value(scores, r, m):>12.3f}".replace("nan", "  -") for _, r, m in COLUMNS))
    png = runs / f"{prefix}-r2-recover" / "rounds.png"
    chart(rows, png)
    print(f"\nchart: {png}")
    base, first, before, second, final = (scores for _, scores in rows)
    # The gate: what two rounds reach on this machine in every measured run (a regression fails `make demo`).
    checks = [
        ("round 1 taught the documents", value(first, "qa", "accuracy") > value(base, "qa", "accuracy")),
        # After the round, not after its sft: the recovered model is the one handed over, and with the chat replay
        # some seeds' sft knew 1 new fact that their recover brought to 2 or 3 (docs/continual.md).
        ("round 2 taught the new facts (2 of 6 or more after the round)",
         value(final, ROUND_TWO_QA, "accuracy/new") >= 0.33),
        ("stale answers fell (to 0.2 or less)", value(final, ROUND_TWO_QA, "stale_rate") <= 0.2
         and value(final, ROUND_TWO_QA, "stale_rate") < value(before, ROUND_TWO_QA, "stale_rate")),
        ("unchanged round-one facts kept (90% or more)",
         value(final, ROUND_TWO_QA, "accuracy/kept") >= 0.9 * value(before, ROUND_TWO_QA, "accuracy/kept")),
        # What recover repairs is measured best by the drift: every measured round-two recover cut it by 40% or more.
        ("round 2's recover cut the drift from the base by a third or more",
         value(final, "drift", "kl") <= 2 / 3 * value(second, "drift", "kl")),
        # At most 0.1 below the base, not "above round two's sft": on 60 prompts one recipe's seeds differ by up to
        # 0.14, and the demo's recover moved it by -0.01 (the earlier recipe's seed 0 by -0.02), where the other
        # study runs gained 0.04 to 0.07 (docs/continual.md).
        ("instruction following back near the base (at most 0.1 below it) after the round",
         value(final, "ifeval", IFEVAL) >= value(base, "ifeval", IFEVAL) - 0.1),
    ]
    # The targets rlsd works toward (docs/continual.md says where it stands); reported, not gated.
    targets = [
        ("new facts at least 0.5 after the round", value(final, ROUND_TWO_QA, "accuracy/new") >= 0.5),
        ("updated facts at least 0.6 after the round", value(final, ROUND_TWO_QA, "accuracy/updated") >= 0.6),
        ("IFEval within 0.02 of the base after the round", value(final, "ifeval", IFEVAL) >= value(base, "ifeval", IFEVAL) - 0.02),
    ]
    for name, passed in checks:
        print(f"{'pass' if passed else 'FAIL'}  {name}")
    for name, met in targets:
        print(f"{'met ' if met else 'not met'}  target: {name}")
    failed = [name for name, passed in checks if not passed]
    print("GATE FAILED: " + "; ".join(failed) if failed else "gate passed")
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())
