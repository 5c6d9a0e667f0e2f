"""The full-vocabulary KL on the CPU: rlsd's `chunked_reverse_kl` (only the counted positions are projected)
against the stock way, TRL 1.16's `_chunked_divergence_loss` on a device without Triton (every position is
projected, the masked ones zeroed), on the embedded model's shapes (hidden 576, vocabulary 49152).

Two batches: recover's on-policy samples (8 rows of 64 sampled tokens, a quarter past the end of an answer) and a
teacher-forced batch of answers (8 rows of 300 tokens: a prompt, an answer of about 40% of the row, padding).
Forward and backward, timed alternately after one warm-up each, in one process; prints one JSON object.

    python benchmarks/chunked_kl.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from common import machine

from rlsd_cli.losses import chunked_reverse_kl

VOCAB, HIDDEN = 49152, 576
BATCHES = {"on-policy samples, 8 x 64": (8, 64, 0.0, 0.75), "teacher-forced answers, 8 x 300": (8, 300, 0.3, 0.4)}


def stock(student_hidden, teacher_hidden, head, mask):
    """TRL 1.16 without Triton: every position projected, the masked ones zeroed afterwards."""
    from trl.kernels.chunked_divergence import ChunkedDivergenceFunction

    h_s = student_hidden.reshape(-1, HIDDEN)
    h_t = teacher_hidden.reshape(-1, HIDDEN)
    divergence, _ = ChunkedDivergenceFunction.apply(h_s, head, None, h_t, head, None, 1.0, 1.0, 1.0, None, 1.0, None)
    valid = mask.reshape(-1) != 0
    return divergence.masked_fill(~valid, 0).sum() / valid.sum()


def ours(student_hidden, teacher_hidden, head, mask):
    return chunked_reverse_kl(student_hidden, teacher_hidden, head, head, mask)[0]


def timed(fn, student_hidden, teacher_hidden, head, mask) -> tuple[float, float]:
    student_hidden = student_hidden.detach().requires_grad_(True)
    started = time.perf_counter()
    loss = fn(student_hidden, teacher_hidden, head, mask)
    loss.backward()
    return time.perf_counter() - started, float(loss.detach())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    head = torch.randn(VOCAB, HIDDEN) * 0.02
    results = {}
    for name, (rows, length, start, share) in BATCHES.items():
        student, teacher = torch.randn(rows, length, HIDDEN), torch.randn(rows, length, HIDDEN)
        mask = torch.zeros(rows, length)
        first = int(length * start)
        mask[:, first:first + int(length * share)] = 1
        times = {"stock": [], "rlsd": []}
        values = {}
        for label, fn in (("stock", stock), ("rlsd", ours)):  # warm-up
            values[label] = timed(fn, student, teacher, head, mask)[1]
        for _ in range(args.repeats):
            for label, fn in (("stock", stock), ("rlsd", ours)):
                times[label].append(timed(fn, student, teacher, head, mask)[0])
        best = {label: min(t) for label, t in times.items()}
        results[name] = {"counted_positions": int(mask.sum()), "positions": rows * length,
                         "seconds_best": {k: round(v, 3) for k, v in best.items()},
                         "seconds_all": {k: [round(x, 3) for x in v] for k, v in times.items()},
                         "speedup": round(best["stock"] / best["rlsd"], 2),
                         "same_value": abs(values["stock"] - values["rlsd"]) <= 1e-5 * max(1.0, abs(values["stock"]))}
    print(json.dumps({"machine": machine(), "what": "full-vocabulary reverse KL, forward + backward, CPU",
                      "batches": results}, indent=2))


if __name__ == "__main__":
    main()
