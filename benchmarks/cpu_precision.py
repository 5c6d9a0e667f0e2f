"""Greedy decoding on a CPU: fp32 (what rlsd uses for greedy answers) vs bf16 autocast, each with transformers'
default `sdpa` attention and with `eager`, on the same left-padded batches, in one process.

For each setting: tokens/s, and how many answers differ from the same prompt decoded alone in fp32 (the reference).
On a CPU without fast bf16 (no AVX512-BF16 or AMX) bf16 is emulated and slow, so its speed means nothing there; its
answers still show the batch dependence. Prints one JSON object.

    python benchmarks/cpu_precision.py [--prompts 48] [--batch-size 16] [--max-new-tokens 48] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time

from common import machine

from rlsd_cli import env

env.configure()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from rlsd_cli.chat_format import end_of_turn_ids, left_padding, render_prompt
    from rlsd_cli.model import load_model
    from rlsd_cli.suites import get_suite

    torch.set_num_threads(args.threads)
    loaded = load_model("smollm2-135m", quant="fp32")
    model, tokenizer = loaded.model, loaded.tokenizer
    items = get_suite("ifeval").load(None)[: args.prompts]
    prompts = [render_prompt(tokenizer, item.messages) for item in items]
    stop = end_of_turn_ids(tokenizer)

    def decode(batch: list[str], bf16: bool) -> tuple[list[str], int]:
        with left_padding(tokenizer), torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            inputs = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False)
            output = model.generate(**inputs, max_new_tokens=args.max_new_tokens, do_sample=False, eos_token_id=stop,
                                    pad_token_id=tokenizer.pad_token_id)
        rows = [row.tolist() for row in output[:, inputs["input_ids"].shape[1]:]]
        rows = [row[: next((i + 1 for i, t in enumerate(row) if t in stop), len(row))] for row in rows]
        return [tokenizer.decode(row, skip_special_tokens=True) for row in rows], sum(map(len, rows))

    model.set_attn_implementation("sdpa")
    reference = [decode([p], bf16=False)[0][0] for p in prompts]
    results = {}
    for attention in ("sdpa", "eager"):
        model.set_attn_implementation(attention)
        for bf16 in (False, True):
            answers, tokens, started = [], 0, time.perf_counter()
            for start in range(0, len(prompts), args.batch_size):
                texts, n = decode(prompts[start : start + args.batch_size], bf16)
                answers += texts
                tokens += n
            seconds = time.perf_counter() - started
            results[f"{'bf16-autocast' if bf16 else 'fp32'}/{attention}"] = {
                "tokens_per_second": round(tokens / seconds, 1),
                "answers_differing_from_fp32_alone": sum(a != r for a, r in zip(answers, reference, strict=True)),
            }
    print(json.dumps({"machine": machine(), "settings": vars(args), "prompts": len(prompts), "results": results}, indent=2))


if __name__ == "__main__":
    main()
