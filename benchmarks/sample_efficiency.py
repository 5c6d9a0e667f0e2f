"""Sample efficiency of RLSD vs GRPO vs OPSD: held-out accuracy against training step and against rollouts on
`rlsd data math` problems, several seeds each (mean, min and max per point), and how many steps RLSD needs to reach
GRPO's final accuracy (target: half).

Where per-token credit should matter (issue: multi-step problems, longer completions, no wasted groups), as
measured on 2026-12-07 (docs/reason.md; 98 minutes on 2 cores for eight runs):

    python benchmarks/sample_efficiency.py --runs bench-multistep --problem-steps 3 --max-new-tokens 128 --steps 16 \
        --lr 5e-4 --variants rlsd grpo
    python benchmarks/sample_efficiency.py --runs bench-multistep --problem-steps 3 --max-new-tokens 128 --steps 16 \
        --lr 5e-4 --variants rlsd grpo "rlsd-wide=rlsd:--eps-w 0.6 --lambda 1.0" --seeds 0 1

Every run samples with dynamic sampling and the pass-rate curriculum on (`rlsd reason`'s defaults), so the runs
of one seed do not see the same rollouts count: the rollouts axis (completions generated, refills included) is
the fair one. A variant is `NAME=ALGO:EXTRA FLAGS` (or just an algorithm).

Each (algorithm, seed) is one `rlsd reason` run with `--eval-every`; two run at a time, one thread each (this
machine has 2 cores). Runs already made (`--runs DIR` holding folders named <algo>-seed<S>) are read, not redone,
so a long sweep can be stopped and continued. Prints one JSON object and writes a PNG of the mean curves.

The defaults are the largest sweep that fits in about 80 minutes of this 2-core CPU: nine runs of 16 steps, one
problem x 8 samples per step, held-out accuracy on 64 problems every 4 steps. That is far over the 10 minutes the
other benchmarks take: one step of the embedded model is 40-50 s on one core, so nine runs cannot fit in 10
minutes at any size that learns. `--steps 2 --seeds 0 --eval-every 1 --eval-limit 8` is a smoke run of minutes.

    python benchmarks/sample_efficiency.py --runs bench-runs [--steps 16] [--seeds 0 1 2] [--algos rlsd grpo opsd]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import machine

METRIC = "eval/math/accuracy"
# Fixed for every run of the sweep, and recorded in its JSON.
FIXED = {"num_generations": 8, "temperature": 0.7, "threads_per_run": 1}


def curve(run: Path) -> dict[int, float]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return {r["step"]: r[METRIC] for r in rows if isinstance(r.get(METRIC), (int, float))}


def rollouts_by_step(run: Path, group_size: int) -> dict[int, int]:
    """Completions generated up to each step (refills included; a run without the count drew its step's groups)."""
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    total, out = 0, {0: 0}
    for r in rows:
        if "reward" in r:
            total += int(r.get("groups/generated", 0)) * group_size
            out[r["step"]] = total
    return out


def spread(values: list[float]) -> dict[str, float]:
    return {"mean": round(statistics.mean(values), 4), "min": min(values), "max": max(values)}


def parse_variant(text: str) -> tuple[str, str, list[str]]:
    name, _, spec = text.partition("=")
    algo, _, extra = (spec or name).partition(":")
    return name, algo, extra.split()


def steps_to_reach(points: dict[int, float], target: float) -> int | None:
    return next((step for step, value in sorted(points.items()) if value >= target), None)


def launch(variant: str, seed: int, args, data: Path) -> subprocess.Popen:
    name, algo, extra = parse_variant(variant)
    exe = Path(sys.executable).with_name("rlsd")
    command = [str(exe), "reason", "--data", str(data), "--model", args.model, "--algo", algo, "--seed", str(seed),
               "--steps", str(args.steps), "--eval-every", str(args.eval_every), "--eval-limit", str(args.eval_limit),
               "--num-generations", str(FIXED["num_generations"]), "--prompts-per-step", str(args.prompts_per_step), "--max-new-tokens", str(args.max_new_tokens),
               "--temperature", str(FIXED["temperature"]), "--lr", str(args.lr), "--verifier", "math",
               "--runs-dir", str(args.runs), "--name", f"{name}-seed{seed}", "--no-forgetting",
               "--overlong-cache", "0",  # as the recorded studies ran, before the punishment became the default
               *extra]
    if (args.runs / f"{name}-seed{seed}").exists():  # a run stopped before its end: rlsd moves it to .trash/
        command.append("--force")
    # Output to a file, not a pipe: a pipe nobody reads fills up and blocks the run.
    with open(args.runs / f"{name}-seed{seed}.log", "w") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True,
                                env=dict(os.environ, OMP_NUM_THREADS=str(FIXED["threads_per_run"])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--variants", "--algos", nargs="+", default=["rlsd", "grpo", "opsd"],
                        help="algorithms, or NAME=ALGO:EXTRA FLAGS")
    parser.add_argument("--problem-steps", type=int, default=1, help="rlsd data math --max-steps (difficulty 1..N)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--prompts-per-step", type=int, default=1)
    parser.add_argument("--eval-every", type=int, default=4)
    parser.add_argument("--eval-limit", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-4)
    args = parser.parse_args()

    data = args.runs / f"arith-{args.problem_steps}step"
    if not (data / "train.jsonl").is_file():
        subprocess.run([str(Path(sys.executable).with_name("rlsd")), "data", "math", "--n", "1000",
                        "--max-steps", str(args.problem_steps),
                        "--test-fraction", "0.1", "--out", str(data)], check=True, capture_output=True)
    started = time.perf_counter()
    # Seed by seed, so a sweep stopped early holds whole seeds of every algorithm.
    names = [parse_variant(v)[0] for v in args.variants]
    todo = [(v, s) for s in args.seeds for v in args.variants
            if not (args.runs / f"{parse_variant(v)[0]}-seed{s}" / "summary.json").is_file()]
    running: list[tuple[str, int, subprocess.Popen]] = []
    while todo or running:
        while todo and len(running) < 2:
            variant, seed = todo.pop(0)
            running.append((variant, seed, launch(variant, seed, args, data)))
        time.sleep(5)
        for item in list(running):
            if item[2].poll() is not None:
                running.remove(item)
                if item[2].returncode != 0:
                    log = (args.runs / f"{parse_variant(item[0])[0]}-seed{item[1]}.log").read_text()
                    raise SystemExit(f"{item[0]} seed {item[1]} failed: {log[-2000:]}")

    group = FIXED["num_generations"]
    curves = {a: {s: curve(args.runs / f"{a}-seed{s}") for s in args.seeds} for a in names}
    rollouts = {a: {s: rollouts_by_step(args.runs / f"{a}-seed{s}", group) for s in args.seeds} for a in names}
    by_step, by_rollouts = {}, {}
    for algo, by_seed in curves.items():
        steps = sorted(set.intersection(*(set(c) for c in by_seed.values())))
        by_step[algo] = {step: spread([c[step] for c in by_seed.values()]) for step in steps}
        by_rollouts[algo] = {step: spread([rollouts[algo][s].get(step, 0) for s in args.seeds]) for step in steps}
    mean_curves = {a: {step: v["mean"] for step, v in points.items()} for a, points in by_step.items()}
    summaries = {a: {s: json.loads((args.runs / f"{a}-seed{s}" / "summary.json").read_text()) for s in args.seeds}
                 for a in names}
    result = {
        "benchmark": "sample_efficiency",
        "machine": machine(),
        "model": args.model, "steps": args.steps, "prompts_per_step": args.prompts_per_step, **FIXED,
        "problem_steps": args.problem_steps, "variants": args.variants,
        "seeds": args.seeds, "eval_limit": args.eval_limit, "max_new_tokens": args.max_new_tokens, "lr": args.lr,
        "mean_curves": mean_curves,
        "accuracy_by_step": by_step,
        "rollouts_by_step": by_rollouts,
        "zero_std_first": {a: spread([x["zero_std_first"] for x in by_seed.values() if x.get("zero_std_first") is not None] or [0.0])
                           for a, by_seed in summaries.items()},
        "final_by_seed": {a: {s: c[max(c)] if c else None for s, c in by_seed.items()} for a, by_seed in curves.items()},
        "seconds_per_step": {a: round(statistics.mean(x["seconds_per_step"] for x in by_seed.values()), 1)
                             for a, by_seed in summaries.items()},
        # Runs already on disk are not timed again: this is the time of this invocation only.
        "wall_seconds_this_invocation": round(time.perf_counter() - started, 1),
    }
    if "rlsd" in mean_curves and "grpo" in mean_curves and mean_curves["grpo"]:
        grpo_final = mean_curves["grpo"][max(mean_curves["grpo"])]
        result["grpo_final_accuracy"] = grpo_final
        if grpo_final <= mean_curves["grpo"][min(mean_curves["grpo"])]:
            # GRPO ended no better than it began: "steps to reach it" would be step 0, which says nothing.
            result["target_met"] = None
            result["target_note"] = "GRPO's final mean accuracy is not above its step-0 accuracy"
        else:
            reach = steps_to_reach(mean_curves["rlsd"], grpo_final)
            result["rlsd_steps_to_grpo_final"] = reach
            result["target_met"] = reach is not None and reach <= args.steps / 2
    from rlsd_cli.plots import plot_series_grid

    png = args.runs / "sample_efficiency.png"
    grid = {f"held-out accuracy vs step (mean of {len(args.seeds)} seeds)": {a: sorted(c.items()) for a, c in mean_curves.items()}}
    for label, pick in (("min", "min"), ("max", "max")):
        for a, points in by_step.items():
            grid[f"held-out accuracy vs step (mean of {len(args.seeds)} seeds)"][f"{a} {label}"] = sorted((k, v[pick]) for k, v in points.items())
    rollouts_panel = "held-out accuracy vs rollouts (mean)"
    grid[rollouts_panel] = {a: sorted((by_rollouts[a][k]["mean"], v) for k, v in mean_curves[a].items()) for a in names}
    plot_series_grid(grid, png, ylabel=METRIC, xlabels={rollouts_panel: "completions generated (refills included)"})
    result["plot"] = str(png)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
