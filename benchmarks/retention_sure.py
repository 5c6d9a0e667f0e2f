"""Is a run's lost retention forgetting, or answers the base barely gave (issue 29)? For each run, `rlsd eval
knowledge -m RUN` gives `retention` (greedy answers compared as strings) and `fact_retention` (the facts the base
states with a margin of at least 1 nat, teacher-forced on the base's own words). The base's report marks each fact
with its margin, so both are counted again here on the facts the base was sure of by 2 nats and more.

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
    parser.add_argument("--base", default="smollm2-135m")
    args = parser.parse_args()

    from rlsd_cli.evaluate import reports_dir
    from rlsd_cli.model import resolve_model

    rlsd("eval", "knowledge", "-m", args.base)
    base_items = (reports_dir(resolve_model(args.base)) / "knowledge.jsonl").read_text().splitlines()
    base = {item["id"]: item.get("fact") for item in map(json.loads, base_items) if item["verdict"]["correct"]}
    rows = []
    for run in args.runs:
        report = json.loads(rlsd("eval", "knowledge", "-m", run, "--json").stdout)
        items = [json.loads(line) for line in (Path(run) / "evals" / "knowledge.jsonl").read_text().splitlines()]
        kept = {item["id"]: item["verdict"]["correct"] for item in items}
        said = {item["id"]: item["fact"]["kept"] for item in items if "fact" in item}
        right = [key for key, fact in base.items() if fact is not None]
        sure = [key for key in right if base[key]["sure"]]
        gap2 = [key for key in sure if base[key]["base_gap"] >= 2]
        rows.append({"run": run, "retention": report["metrics"]["retention"],
                     "fact_retention": report["metrics"].get("fact_retention"),
                     **{f"{name}_facts": len(keys) for name, keys in (("right", right), ("sure", sure), ("gap2", gap2))},
                     **{f"{name}_answers_kept": sum(kept[k] for k in keys) for name, keys in (("right", right), ("sure", sure), ("gap2", gap2))},
                     **{f"{name}_facts_said": sum(said[k] for k in keys) for name, keys in (("sure", sure), ("gap2", gap2))}})
    print(json.dumps({"what": "retention against fact_retention (issue 29)", "machine": machine(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
