"""One no-grad teacher pass over a step's rollouts: every row scored whole (prompt + completion, the way before
the sixth session) vs `teachers.shared_prefix_completion_logps` (each distinct prompt once, its key/value cache
copied to its samples' rows). RLSD's informed teacher and recover's sampled-token teachers use the second.
Prints one JSON object.

    python benchmarks/teacher_pass.py [--problems 2] [--samples 8] [--prompt-tokens 100] [--completion-tokens 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from common import machine

from rlsd_cli.model import load_model
from rlsd_cli.teachers import completion_logps, shared_prefix_completion_logps


def seconds(fn, repeats: int) -> tuple[float, torch.Tensor]:
    out = fn()  # warm-up: first allocation of every buffer
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 3), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--problems", type=int, default=2)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--prompt-tokens", type=int, default=100)  # RLSD's hint prompt is about this long
    parser.add_argument("--completion-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = load_model(args.model).model.eval()
    generator = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    # Random tokens: the cost depends on the shapes, not the text. Each problem's prompt repeats for its samples.
    prompts = torch.randint(1, vocab, (args.problems, args.prompt_tokens), generator=generator)
    prefix_ids = prompts.repeat_interleave(args.samples, dim=0)
    completion_ids = torch.randint(1, vocab, (len(prefix_ids), args.completion_tokens), generator=generator)
    prefix_mask, completion_mask = torch.ones_like(prefix_ids), torch.ones_like(completion_ids)
    with torch.no_grad():
        whole_s, whole = seconds(lambda: completion_logps(
            model, torch.cat([prefix_ids, completion_ids], 1), torch.cat([prefix_mask, completion_mask], 1),
            args.completion_tokens)[0], args.repeats)
        shared_s, shared = seconds(lambda: shared_prefix_completion_logps(
            model, prefix_ids, prefix_mask, completion_ids, completion_mask), args.repeats)
    print(json.dumps({
        "benchmark": "teacher_pass",
        "machine": {**machine(), "torch_threads": torch.get_num_threads()},
        "model": args.model,
        "rows": f"{args.problems} problems x {args.samples} samples, {args.prompt_tokens} prompt + {args.completion_tokens} completion tokens",
        "every_row_whole_s": whole_s,
        "shared_prefix_s": shared_s,
        "speedup": round(whole_s / shared_s, 2),
        "max_abs_logp_difference": float((whole - shared).abs().max()),
    }, indent=2))


if __name__ == "__main__":
    main()
