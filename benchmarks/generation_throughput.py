"""Generation throughput: rlsd's batched generation (evaluation and, through the same sampler and eval mode,
the rollouts of `reason` and `recover`) vs plain transformers `generate` as its docs show it.

Same model folder, prompts (chat-templated math problems), batch size, sampling temperature and token budget, in
one process, one after the other:

  rlsd        rlsd_cli.generation.generate: prompts sorted by length (less left padding), eval mode, the
              precision rlsd picks for this CPU, the inverse-CDF sampler instead of torch.multinomial, and rows
              dropped from the batch as they finish
  stock       AutoModelForCausalLM.from_pretrained(folder) (+ PeftModel.from_pretrained for a run) +
              model.generate(do_sample=True, or greedy at --temperature 0) on left-padded batches in the given order

Prompts are chat-templated math problems, or the questions of a JSONL file (`--data`, a "question" or "prompt"
field), answered by the embedded model or a run (`--model runs/NAME`: a trained run's answers are short, the
case where dropping finished rows pays). Tokens counted are the new tokens up to and including end-of-turn. At
--temperature 0 it also counts the answers that are the same both ways. Prints one JSON object.

    python benchmarks/generation_throughput.py [--prompts 32] [--batch-size 16] [--max-new-tokens 64]
    python benchmarks/generation_throughput.py --model runs/NAME --data examples/company_qa.jsonl --temperature 0 \
        --batch-size 64 --max-new-tokens 64
"""

from __future__ import annotations

import argparse
import json
import time

from common import machine

from rlsd_cli import env

env.configure()


def prompts(n: int, data: str | None) -> list[list[dict[str, str]]]:
    if data:
        rows = [json.loads(line) for line in open(data, encoding="utf-8") if line.strip()][:n]
        return [[{"role": "user", "content": row.get("question", row.get("prompt"))}] for row in rows]
    from rlsd_cli.mathgen import generate_problems
    from rlsd_cli.suites.math import MATH_PROMPT

    return [[{"role": "user", "content": MATH_PROMPT.format(question=p.prompt)}] for p in generate_problems(n, seed=1)]


def stock_generate(resolved, conversations, batch_size: int, max_new_tokens: int, temperature: float) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolved.path, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(resolved.path)
    if resolved.adapter_path is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, resolved.adapter_path)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    new_tokens, texts, started = 0, [], time.perf_counter()
    for start in range(0, len(conversations), batch_size):
        batch = conversations[start : start + batch_size]
        inputs = tokenizer.apply_chat_template(batch, add_generation_prompt=True, padding=True, return_dict=True,
                                               return_tensors="pt")
        with torch.no_grad():
            sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, **sampling,
                                    eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
        for row in output[:, inputs["input_ids"].shape[1] :].tolist():
            new_tokens += row.index(eos) + 1 if eos in row else len(row)
            texts.append(tokenizer.decode(row[: row.index(eos)] if eos in row else row, skip_special_tokens=True).strip())
    seconds = time.perf_counter() - started
    return {"new_tokens": new_tokens, "seconds": round(seconds, 2), "tokens_per_second": round(new_tokens / seconds, 1),
            "texts": texts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--data", help="JSONL questions instead of math problems")
    args = parser.parse_args()

    import torch

    from rlsd_cli.generation import GenerationSettings, generate
    from rlsd_cli.model import load_model, resolve_model

    conversations = prompts(args.prompts, args.data)
    torch.manual_seed(0)
    loaded = load_model(args.model)
    completions, stats = generate(loaded, conversations, GenerationSettings(args.max_new_tokens, args.temperature, args.batch_size))
    ours = stats.as_dict()
    precision = loaded.precision
    del loaded
    torch.manual_seed(0)
    stock = stock_generate(resolve_model(args.model), conversations, args.batch_size, args.max_new_tokens,
                           args.temperature)
    print(json.dumps({
        "benchmark": "generation_throughput",
        "machine": machine(),
        "model": args.model, "data": args.data or "math problems",
        "prompts": len(conversations), "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature,
        "rlsd": {**ours, "precision": {"weights": precision.weights_dtype, "autocast": precision.autocast_dtype}},
        "stock_transformers": {k: v for k, v in stock.items() if k != "texts"},
        "speedup": round(ours["tokens_per_second"] / stock["tokens_per_second"], 2),
        "same_answers": (sum(c.text == t for c, t in zip(completions, stock["texts"], strict=True))
                         if args.temperature == 0 else None),
    }, indent=2))


if __name__ == "__main__":
    main()
