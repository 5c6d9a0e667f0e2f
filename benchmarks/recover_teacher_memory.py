"""What the teacher costs in `recover`: the adapter-off base vs a separate teacher copy vs stock TRL.

Three runs of the same work (on-policy distillation of an sft run toward its base model, same prompts,
batch and completion length), each in its own process so peak RSS is its own:

  adapter_off      rlsd recover --teacher base             (the student's weights with the adapter switched off)
  separate_copy    rlsd recover --teacher <base model>     (a second copy of the base weights)
  stock_trl        TRL DistillationTrainer(teacher_model=<base copy>) + the sft adapter, as TRL's docs show

Prints one JSON object: peak RSS and seconds per step of each, and the teacher's memory overhead.

    python benchmarks/recover_teacher_memory.py [--from runs/<sft-run>] [--steps 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import machine, rlsd

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "tests" / "data" / "docs"


def run_rlsd_recover(parent: Path, runs: Path, teacher: str, steps: int, tokens: int) -> dict:
    # Pinned to the settings of the recorded results (recover's defaults until 2026-12-04), so figures compare.
    result = rlsd("recover", "--from", str(parent), "--teacher", teacher, "--steps", str(steps), "--keep-mix", "0",
                  "--samples-per-prompt", "4", "--divergence", "sampled", "--prompts", "general",
                  "--max-new-tokens", str(tokens), "--runs-dir", str(runs), "--name", f"bench-{teacher.replace('/', '_')}", "--json")
    summary = json.loads(result.stdout)
    return {"peak_rss_bytes": summary["peak_rss_bytes"], "seconds_per_step": summary["seconds_per_step"],
            "teacher": summary["teachers"]["general"]}


STOCK_TRL = r'''
import json, resource, sys, time
from datasets import Dataset
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DistillationConfig, DistillationTrainer
from rlsd_cli.model import cpu_has_fast_bf16
from rlsd_cli.replay import builtin_instructions

base_dir, adapter_dir, out_dir, steps, tokens = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
tokenizer = AutoTokenizer.from_pretrained(base_dir)
tokenizer.padding_side = "left"
student = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), adapter_dir, is_trainable=True)
teacher = AutoModelForCausalLM.from_pretrained(base_dir)
prompts = [[{"role": "user", "content": r["prompt"]}] for r in builtin_instructions()][: steps * 16]
args = DistillationConfig(output_dir=out_dir, per_device_train_batch_size=16, max_steps=steps, learning_rate=1e-3,
                          max_completion_length=tokens, bf16=cpu_has_fast_bf16(), use_cpu=True,
                          gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False},
                          report_to=[], logging_steps=1, save_strategy="no", beta=1.0)
trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
                              processing_class=tokenizer)
started = time.perf_counter()
trainer.train()
print(json.dumps({"seconds_per_step": round((time.perf_counter() - started) / steps, 2),
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
'''


def run_stock_trl(base_dir: Path, adapter_dir: Path, steps: int, tokens: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        result = subprocess.run([sys.executable, "-c", STOCK_TRL, str(base_dir), str(adapter_dir), out, str(steps), str(tokens)],
                                capture_output=True, text=True, check=False, env=dict(os.environ, HF_HUB_DISABLE_TELEMETRY="1"))
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="from_run", type=Path, help="an sft run (default: a short one is trained first)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    args = parser.parse_args()

    from rlsd_cli.model import resolve_model

    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        parent = args.from_run
        if parent is None:
            rlsd("sft", str(DOCS), "--max-steps", "20", "--runs-dir", str(runs), "--name", "sft", "--json")
            parent = runs / "sft"
        resolved = resolve_model(str(parent))
        results = {
            "adapter_off": run_rlsd_recover(parent, runs, "base", args.steps, args.max_new_tokens),
            "separate_copy": run_rlsd_recover(parent, runs, resolved.base_spec, args.steps, args.max_new_tokens),
            "stock_trl": run_stock_trl(resolved.path, resolved.adapter_path, args.steps, args.max_new_tokens),
        }
    off, copy = results["adapter_off"]["peak_rss_bytes"], results["separate_copy"]["peak_rss_bytes"]
    print(json.dumps({
        "benchmark": "recover_teacher_memory",
        "machine": machine(),
        "model": resolved.base_spec,
        "steps": args.steps,
        "batch": "4 prompts x 4 samples (rlsd) / 16 prompts x 1 sample (stock TRL)",
        "max_new_tokens": args.max_new_tokens,
        "results": results,
        "separate_copy_extra_rss_bytes": copy - off,
        "separate_copy_extra_rss_fraction": round((copy - off) / off, 3),
    }, indent=2))


if __name__ == "__main__":
    main()
