"""`rlsd sft` training throughput vs the stock TRL way, and model FLOPs utilisation against this machine's peak.

Same model, same examples, same batch and steps. `--data qa` (default) is what `rlsd sft` trains on by
default: the test corpus's document chunks plus its question/answer pairs in the chat template (no chat mix, so
both sides see exactly the same examples); `--data chunks` is the document chunks alone (every token a target).

  rlsd        rlsd sft tests/data/docs --mix 0 [--no-augment] --max-steps N
  stock_trl   SFTTrainer(model=<same folder>, peft_config=LoraConfig(r=16, alpha=32, all-linear)), SFTConfig with
              TRL's defaults except the batch, length and steps, as TRL's PEFT docs show (TRL's defaults turn on
              gradient checkpointing; bf16 stays off where the CPU has no fast bf16). It gets each example as a
              prompt/completion pair of strings (TRL's completion-only loss), split where rlsd's target tokens begin.

The peak is measured here: the best of a few square matmuls (2048) in the dtype training computes in (bf16 where
the CPU has fast bf16, else fp32). Utilisation counts 6 x parameters FLOPs per token (forward + backward, the
usual convention; a LoRA backward skips the frozen weights' gradients, so 4 x would be the work actually done).
Each side runs in its own process, one after the other. Prints one JSON object.

    python benchmarks/sft_throughput.py [--steps 12] [--batch-size 8] [--max-length 256]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine, rlsd

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "tests" / "data" / "docs"


def matmul_peak_gflops(dtype_name: str, size: int = 2048, repeats: int = 8) -> float:
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


STOCK_TRL = r'''
import json, resource, sys, time
from datasets import Dataset
from peft import LoraConfig
from trl import SFTConfig, SFTTrainer
from rlsd_cli.model import cpu_has_fast_bf16

model_dir, texts_file, out_dir, steps, batch, length = sys.argv[1], sys.argv[2], sys.argv[3], *map(int, sys.argv[4:7])
texts = json.load(open(texts_file))
args = SFTConfig(output_dir=out_dir, max_steps=steps, per_device_train_batch_size=batch, max_length=length,
                 learning_rate=2e-4, bf16=cpu_has_fast_bf16(), use_cpu=True, report_to=[], logging_steps=1,
                 save_strategy="no", include_num_input_tokens_seen="non_padding", seed=0)
trainer = SFTTrainer(model=model_dir, args=args, train_dataset=Dataset.from_list(texts),
                     peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear",
                                            task_type="CAUSAL_LM"))
started = time.perf_counter()
trainer.train()
seconds = time.perf_counter() - started
tokens = int(trainer.state.num_input_tokens_seen)
print(json.dumps({"tokens": tokens, "train_seconds": round(seconds, 1), "tokens_per_second": round(tokens / seconds, 1),
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
'''


def stock_examples(model_dir: Path, max_length: int, with_pairs: bool) -> list[dict[str, str]]:
    """The examples `rlsd sft` trains on, as TRL prompt/completion strings split where the targets begin."""
    from rlsd_cli.model import load_tokenizer
    from rlsd_cli.sft import SFTConfig, chat_example, plan

    tokenizer = load_tokenizer(model_dir)
    the_plan = plan(SFTConfig(docs=DOCS, max_length=max_length, chunk_overlap=max_length // 8, augment=with_pairs), lambda: tokenizer)
    pairs = [chat_example(tokenizer, p.messages(), max_length, "qa") for p in the_plan.qa_pairs]
    out = []
    for example in the_plan.chunks + [e for e in pairs if e]:
        first = example["assistant_masks"].index(1)
        ids = example["input_ids"]
        out.append({"prompt": tokenizer.decode(ids[:first]), "completion": tokenizer.decode(ids[first:])})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--data", choices=["qa", "chunks"], default="qa")
    args = parser.parse_args()

    from rlsd_cli.model import cpu_has_fast_bf16, resolve_model

    model = resolve_model(args.model)
    dtype = "bfloat16" if cpu_has_fast_bf16() else "float32"
    peak = matmul_peak_gflops(dtype)
    with tempfile.TemporaryDirectory() as tmp:
        augment = [] if args.data == "qa" else ["--no-augment"]
        result = rlsd("sft", str(DOCS), "--model", args.model, *augment, "--mix", "0", "--max-steps", str(args.steps),
                      "--batch-size", str(args.batch_size), "--max-length", str(args.max_length), "--chunk-overlap",
                      str(args.max_length // 8), "--runs-dir", str(Path(tmp) / "runs"), "--name", "bench", "--json")
        summary = json.loads(result.stdout)
        ours = {"tokens": summary["tokens_trained"], "train_seconds": summary["train_seconds"],
                "tokens_per_second": summary["tokens_per_second"], "peak_rss_bytes": summary["peak_rss_bytes"]}
        texts_file = Path(tmp) / "texts.json"
        texts_file.write_text(json.dumps(stock_examples(model.path, args.max_length, args.data == "qa")))
        stock_run = subprocess.run([sys.executable, "-c", STOCK_TRL, str(model.path), str(texts_file), str(Path(tmp) / "stock"),
                                    str(args.steps), str(args.batch_size), str(args.max_length)],
                                   capture_output=True, text=True, check=False)
        if stock_run.returncode != 0:
            raise SystemExit(stock_run.stderr[-3000:])
        stock = json.loads(stock_run.stdout.strip().splitlines()[-1])
    from safetensors import safe_open

    # Tied embeddings are stored once and used twice (lookup, ~free, and the output projection): one count is right.
    with safe_open(str(next(model.path.glob("*.safetensors"))), "pt") as weights:
        params = sum(math.prod(weights.get_slice(key).get_shape()) for key in weights.keys())

    def utilisation(tokens_per_second: float) -> float:
        return round(6 * params * tokens_per_second / 1e9 / peak, 3)

    speedup = ours["tokens_per_second"] / stock["tokens_per_second"]
    print(json.dumps({
        "benchmark": "sft_throughput",
        "machine": {**machine(), "fast_bf16": cpu_has_fast_bf16()},
        "model": args.model,
        "parameters": params,
        "data": args.data, "steps": args.steps, "batch_size": args.batch_size, "max_length": args.max_length,
        "matmul_peak_gflops": {dtype: round(peak, 1)},
        "rlsd": {**ours, "utilisation": utilisation(ours["tokens_per_second"])},
        "stock_trl": {**stock, "utilisation": utilisation(stock["tokens_per_second"])},
        "speedup": round(speedup, 2),
        "targets": {"speedup >= 2": speedup >= 2, "rlsd utilisation >= 0.30": utilisation(ours["tokens_per_second"]) >= 0.30},
    }, indent=2))


if __name__ == "__main__":
    main()
