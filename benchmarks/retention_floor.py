"""How far `retention` moves when almost nothing was forgotten (issue 29): a run's adapter scaled toward the base
(`lora_alpha` x scale, the weights that share of the way from the base), each scored with `rlsd eval` on document
QA, the knowledge suite and drift. Retention counts the base's right knowledge answers a model still gets right;
the lost and gained answers show how much of its change is answers flipping both ways.

    python benchmarks/retention_floor.py --run runs/<recover-run> --work DIR [--scales 0.1 0.3 0.5 0.7 1.0]

The base decoded in bf16 (the other row of docs/forgetting.md's table) is a probe rlsd cannot run by design:
greedy decoding on a CPU is always fp32. Its code is in `results/retention_floor-2026-12-07.json`.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from common import machine, rlsd

REPO = Path(__file__).resolve().parents[1]


def scaled_copy(run: Path, scale: float, target: Path) -> Path:
    """A run folder whose adapter is the run's at `scale` of its strength (LoRA's update is alpha / r x B A)."""
    target.mkdir(parents=True, exist_ok=False)
    shutil.copytree(run / "adapter", target / "adapter")
    for name in ("run.json", "summary.json"):  # a finished run's files: rlsd loads no run without its summary
        shutil.copy2(run / name, target / name)
    config_file = target / "adapter" / "adapter_config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "lora_alpha": config["lora_alpha"] * scale}, indent=2))
    return target


def answers(spec: str) -> dict[str, bool]:
    """The knowledge suite's per-item verdicts that `rlsd eval knowledge -m SPEC` has just written."""
    from rlsd_cli.evaluate import reports_dir
    from rlsd_cli.model import resolve_model

    rows = (reports_dir(resolve_model(spec)) / "knowledge.jsonl").read_text().splitlines()
    return {row["id"]: row["verdict"]["correct"] for row in map(json.loads, rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a run folder with an adapter (sft or recover)")
    parser.add_argument("--work", type=Path, required=True, help="new folder for the scaled copies")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.1, 0.3, 0.5, 0.7, 1.0])
    parser.add_argument("--qa", type=Path, default=REPO / "examples" / "company_qa.jsonl")
    args = parser.parse_args()

    base_spec = json.loads((args.run / "run.json").read_text())["base_model"]["spec"]
    base_report = json.loads(rlsd("eval", "knowledge", "-m", base_spec, "--json").stdout)
    base = answers(base_spec)
    right = [key for key, correct in base.items() if correct]
    rows = []
    for scale in args.scales:
        model = str(scaled_copy(args.run, scale, args.work / f"scale-{scale}"))
        qa = json.loads(rlsd("eval", "qa", "-m", model, "--data", str(args.qa), "--max-new-tokens", "64", "--json").stdout)
        knowledge = json.loads(rlsd("eval", "knowledge", "-m", model, "--json").stdout)
        drift = json.loads(rlsd("eval", "drift", "-m", model, "--json").stdout)
        got = answers(model)
        rows.append({"scale": scale, "qa": qa["metrics"]["accuracy"], "knowledge": knowledge["metrics"]["accuracy"],
                     "retention": knowledge["metrics"]["retention"],
                     f"lost_of_{len(right)}": sum(not got[key] for key in right),
                     f"gained_of_{len(base) - len(right)}": sum(got[key] and not base[key] for key in base),
                     "drift_kl": drift["metrics"]["kl"]})
    print(json.dumps({"run": str(args.run), "machine": machine(), "base_knowledge": base_report["metrics"]["accuracy"],
                      "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
