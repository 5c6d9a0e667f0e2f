"""Sampling one token per row on the CPU: torch.multinomial (what transformers' `generate` calls) vs the
inverse-CDF sampler `rlsd` swaps in while generating. Prints one JSON object.

    python benchmarks/cpu_sampling.py [--rows 16] [--vocab 49152] [--repeats 50]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from rlsd_cli.generation import inverse_cdf_multinomial


def milliseconds(fn, probs, repeats: int) -> float:
    fn(probs, 1)
    started = time.perf_counter()
    for _ in range(repeats):
        fn(probs, 1)
    return round((time.perf_counter() - started) / repeats * 1000, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--vocab", type=int, default=49152)  # SmolLM2's vocabulary
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(args.rows, args.vocab) * 3, dim=-1)
    stock = milliseconds(torch.multinomial, probs, args.repeats)
    ours = milliseconds(inverse_cdf_multinomial, probs, args.repeats)
    print(json.dumps({
        "benchmark": "cpu_sampling",
        "machine": {"cpus": os.cpu_count(), "threads": torch.get_num_threads(), "platform": platform.platform()},
        "rows": args.rows, "vocab": args.vocab,
        "torch_multinomial_ms": stock, "inverse_cdf_ms": ours, "speedup": round(stock / ours, 2),
    }, indent=2))


if __name__ == "__main__":
    main()
