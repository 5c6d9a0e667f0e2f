"""Is a run's lost retention forgetting, or answers the base barely gave (issue 29)? For each run, `rlsd eval
knowledge -m RUN` gives `retention` (greedy answers compared as strings) and `fact_retention` (the facts the base
states with a margin of at least 1 nat, teacher-forced on the base's own words); its per-item rows carry the
base's margin, so both are counted again here on the facts the base was sure of by 2 nats and more.

    python benchmarks/retention_sure.py --runs RUN [RUN ...]

A floor probe's scaled adapter (benchmarks/retention_floor.py) is a run like any other here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import machine, rlsd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="run folders (sft, recover, or scaled copies)")
    args = parser.parse_args()

    rows = []
    for run in args.runs:
        report = json.loads(rlsd("eval", "knowledge", "-m", run, "--json").stdout)
        items = [json.loads(line) for line in (Path(run) / "evals" / "knowledge.jsonl").read_text().splitlines()]
        facts = [item["fact"] for item in items if "fact" in item]
        rows.append({"run": run, "retention": report["metrics"]["retention"],
                     "fact_retention": report["metrics"].get("fact_retention"),
                     "base_right_answers": len(facts),
                     "strings_kept": sum(item["verdict"]["correct"] for item in items if "fact" in item),
                     "sure_facts": sum(f["sure"] for f in facts), "sure_kept": sum(f["sure"] and f["kept"] for f in facts),
                     "gap2_facts": sum(f["sure"] and f["base_gap"] >= 2 for f in facts),
                     "gap2_kept": sum(f["sure"] and f["base_gap"] >= 2 and f["kept"] for f in facts)})
    print(json.dumps({"what": "retention against fact_retention (issue 29)", "machine": machine(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
