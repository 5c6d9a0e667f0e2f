"""What makes an updated fact win in a second training round: the example company's two revisions, round two run
with several settings and seeds from one round-one run, scored on round two's held-out questions.

  round 1 (once): rlsd sft examples/company --recipe cpu-demo-sft, then recover --recipe cpu-demo-recover
  round 2 (per setting and seed): rlsd sft <revision 2> --from <round 1> --recipe cpu-demo-sft-round [flags] --seed S,
          then recover --recipe cpu-demo-recover --seed S

Settings (round two's sft):
  plain        (the default)                the new revision's chunks and Q/A pairs, unchanged documents replayed
  update       --update-pairs               plus 'is this still true?' pairs for every rewritten fact sentence
  no-retire    --no-update-pairs, and the changed documents' old Q/A pairs replayed too (what retiring prevents)
  no-replay    --knowledge-replay 0         nothing of the unchanged documents replayed
  chat-mix     --mix 0.3 --replay general+factual   three times the recipe's general chat, with the base's answers
                                            to world-knowledge questions (sft's default replay; docs/forgetting.md)

Prints one JSON object: for each setting and seed, the round-two questions' accuracy per kind (new, updated,
kept), the stale rate and the IFEval subset after round two's sft and after its recover.

    python benchmarks/continual_rounds.py [--settings plain update no-retire] [--seeds 0 1 2] [--parallel 2] [--no-recover]
        [--round-one chat-mix]     # round one's sft with a setting's flags too (it runs once, seed 0)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import machine

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
RLSD = str(Path(sys.executable).with_name("rlsd"))
EVAL = ["--eval", "ifeval", "--eval-limit", "60", "--eval-max-new-tokens", "128"]
SETTINGS = {
    "plain": [],
    "update": ["--update-pairs"],
    "no-retire": ["--no-update-pairs"],
    "no-replay": ["--knowledge-replay", "0"],
    "chat-mix": ["--mix", "0.3", "--replay", "general+factual"],
}
# Round two without retirement: the changed documents' old pairs are carried (and replayed) as if still true.
NO_RETIRE = ("import sys, rlsd_cli.lineage as lineage; "
             "lineage.carried_knowledge = lambda pairs, plan: [p for p in pairs if p.get('source') not in plan.removed]; "
             "from rlsd_cli.cli import main; main(sys.argv[1:])")


def rlsd(args: list[str], log: Path, threads: int, setting: str = "") -> dict:
    command = [sys.executable, "-c", NO_RETIRE, *args] if setting == "no-retire" else [RLSD, *args]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    with open(log, "w") as err:
        result = subprocess.run([*command, "--json"], stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed; see {log}")
    return json.loads(result.stdout)


def scores(summary: dict) -> dict:
    round_two = summary["eval_after"].get("qa-company_qa_revision2", {})
    keys = ("accuracy/new", "accuracy/updated", "accuracy/kept", "stale_rate")
    after = summary["eval_after"]
    return {**{k: round_two.get(k) for k in keys}, "ifeval": after["ifeval"]["inst_level_loose_acc"],
            "qa_round_one": after["qa"]["accuracy"], "retention": after.get("knowledge", {}).get("retention"),
            "fact_retention": after.get("knowledge", {}).get("fact_retention"),
            "drift_kl": after.get("drift", {}).get("kl")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=["plain", "update", "no-retire"], choices=list(SETTINGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--parallel", type=int, default=2, help="round-two runs at once, one thread each")
    parser.add_argument("--recover", action=argparse.BooleanOptionalAction, default=True,
                        help="also recover after each round-two sft (--no-recover: compare the sft settings only)")
    parser.add_argument("--round-one", default="plain", choices=list(SETTINGS),
                        help="the setting whose flags round one's sft takes too (default: the recipe alone)")
    parser.add_argument("--runs", type=Path, default=Path("runs/continual-rounds"))
    args = parser.parse_args()
    runs = args.runs
    runs.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, str(EXAMPLES / "build_docs.py")], check=True, capture_output=True)
    revision2 = runs / "company-revision2"
    if not revision2.is_dir():
        shutil.copytree(EXAMPLES / "company", revision2)
        (revision2 / "culture_and_events.md").unlink()
        for path in (EXAMPLES / "company_revision2").iterdir():
            shutil.copy2(path, revision2 / path.name)
    qa = ["--eval-qa", str(EXAMPLES / "company_qa.jsonl"), "--eval-qa", str(EXAMPLES / "company_qa_revision2.jsonl")]
    # Round one's runs are named by its setting, so a folder of another setting's round one is not reused.
    one = "r1" if args.round_one == "plain" else f"r1-{args.round_one}"
    first = runs / f"{one}-recover"
    if not (runs / f"{one}-sft" / "summary.json").is_file():
        rlsd(["sft", str(EXAMPLES / "company"), "--recipe", "cpu-demo-sft", *SETTINGS[args.round_one], *qa, *EVAL, "--runs-dir", str(runs),
              "--name", f"{one}-sft"], runs / f"{one}-sft.log", threads=2)
    if not (first / "summary.json").is_file():
        shutil.rmtree(first, ignore_errors=True)  # an interrupted attempt
        rlsd(["recover", "--from", str(runs / f"{one}-sft"), "--recipe", "cpu-demo-recover", *EVAL, "--runs-dir", str(runs),
              "--name", f"{one}-recover"], runs / f"{one}-recover.log", threads=2)
    round_one = json.loads((first / "summary.json").read_text())
    round_one_sft = json.loads((runs / f"{one}-sft" / "summary.json").read_text())

    def round_two(setting: str, seed: int) -> dict:
        name = f"r2-{setting}-s{seed}" if one == "r1" else f"{one}-r2-{setting}-s{seed}"
        sft = rlsd(["sft", str(revision2), "--from", str(first), "--recipe", "cpu-demo-sft-round", *SETTINGS[setting],
                    "--seed", str(seed), *EVAL, "--runs-dir", str(runs), "--name", f"{name}-sft"],
                   runs / f"{name}-sft.log", threads=1, setting=setting)
        if not args.recover:
            return {"setting": setting, "seed": seed, "after_sft": scores(sft), "sft_seconds": sft["wall_seconds"]}
        recover = rlsd(["recover", "--from", str(runs / f"{name}-sft"), "--recipe", "cpu-demo-recover", "--seed", str(seed),
                        *EVAL, "--runs-dir", str(runs), "--name", f"{name}-recover"], runs / f"{name}-recover.log", threads=1)
        return {"setting": setting, "seed": seed, "after_sft": scores(sft), "after_recover": scores(recover),
                "sft_seconds": sft["wall_seconds"], "recover_seconds": recover["wall_seconds"]}

    jobs = [(s, seed) for seed in args.seeds for s in args.settings]
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        results = list(pool.map(lambda job: round_two(*job), jobs))
    print(json.dumps({"machine": machine(), "settings": {s: SETTINGS[s] for s in args.settings}, "seeds": args.seeds,
                      "round_one": {"setting": args.round_one, "base": scores({"eval_after": round_one["eval_base"]}),
                                    "after_sft": scores(round_one_sft), "after_recover": scores(round_one)},
                      "round_two": results, "minutes": round((time.perf_counter() - started) / 60, 1)}, indent=2))


if __name__ == "__main__":
    main()
