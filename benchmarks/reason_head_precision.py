"""How far the student's log-probs in `rlsd reason` are from the informed teacher's code path under bf16 autocast:
TRL's fused LM head as GRPOTrainer sets it (bf16 under autocast, the stock way) against the same head in fp32 (what
`reason` uses since 2026-12-07), in one process on the same sampled completions. The floor is rlsd's own fp32-head
scoring of the same rows in two batch layouts (whole rows, and the shared prompt run once), which differ only by the
bf16 backbone's rounding. RLSD's delta = log pi_T - log pi_S takes the difference as noise.

On a CPU without fast bf16 rlsd trains in fp32 and none of this applies; the script still runs the autocast (slowly).
Prints one JSON object (mean, 90th percentile and largest |difference| in nats per token).

    python benchmarks/reason_head_precision.py [--problems 4] [--samples 2] [--max-new-tokens 64] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from common import machine

from rlsd_cli import env

env.configure()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--problems", type=int, default=4)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch
    from trl.trainer.utils import add_fused_lm_head

    from rlsd_cli.chat_format import left_padding
    from rlsd_cli.mathgen import generate_problems
    from rlsd_cli.model import load_model
    from rlsd_cli.teachers import completion_logps, shared_prefix_completion_logps

    torch.set_num_threads(args.threads)
    loaded = load_model(args.model, quant="auto")
    tokenizer, model = loaded.tokenizer, loaded.model
    problems = generate_problems(args.problems, seed=0, max_steps=3)
    with left_padding(tokenizer) as tok:
        encoded = tok.apply_chat_template([[{"role": "user", "content": p.prompt}] for p in problems],
                                          add_generation_prompt=True, tokenize=True, padding=True, return_dict=True,
                                          return_tensors="pt")
    prompt_ids = encoded["input_ids"].repeat_interleave(args.samples, 0)
    prompt_mask = encoded["attention_mask"].repeat_interleave(args.samples, 0)
    torch.manual_seed(0)
    with torch.no_grad(), loaded.autocast():
        out = model.generate(input_ids=prompt_ids, attention_mask=prompt_mask, do_sample=True,
                             temperature=args.temperature, top_k=0, max_new_tokens=args.max_new_tokens,
                             pad_token_id=tokenizer.pad_token_id)
    completion = out[:, prompt_ids.size(1):]
    # Every token up to and including the first end token is scored, as TRL's completion mask does.
    ended = (completion == tokenizer.eos_token_id).int().cumsum(1)
    completion_mask = ((ended == 0) | ((ended == 1) & (completion == tokenizer.eos_token_id))).long()
    ids = torch.cat([prompt_ids, completion], 1)
    mask = torch.cat([prompt_mask, completion_mask], 1)
    length = completion.size(1)
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :-length] = -100
    # Loaded without an adapter: at step 0 reason's zero-initialised LoRA gives these same log-probs.
    base = model.get_base_model() if hasattr(model, "get_base_model") else model

    with torch.no_grad():
        teacher_path = shared_prefix_completion_logps(model, prompt_ids, prompt_mask, completion, completion_mask,
                                                      loaded.autocast(), temperature=args.temperature)
        whole_rows, _ = completion_logps(model, ids, mask, length, loaded.autocast(), temperature=args.temperature)
        student = {}
        for name, fp32 in (("trl_bf16_head", False), ("fp32_head", True)):
            base.__dict__.pop("forward", None)
            add_fused_lm_head(base, temperature=args.temperature, cast_lm_head_to_fp32=fp32, outputs=("log_probs", "entropy"))
            with loaded.autocast():
                scored = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
            student[name] = scored.log_probs[:, -length:].float()

    scored_tokens = completion_mask.bool()

    def difference(a, b) -> dict[str, float]:
        d = (a - b)[scored_tokens].abs()
        return {"mean": round(d.mean().item(), 5), "p90": round(d.quantile(0.9).item(), 5), "max": round(d.max().item(), 5)}

    print(json.dumps({
        "benchmark": "reason_head_precision", "machine": machine(), "model": args.model,
        "precision": asdict(loaded.precision),
        "completions": int(ids.size(0)), "scored_tokens": int(scored_tokens.sum()),
        "student_vs_teacher_path": {name: difference(value, teacher_path) for name, value in student.items()},
        "floor_two_batch_layouts": difference(whole_rows, teacher_path),
    }, indent=2))


if __name__ == "__main__":
    main()
