"""Is a run's lost retention forgetting, or answers the base barely gave (issue 29)? The base's margin on each
knowledge answer it gets right: teacher-forced on its own greedy answer, the log-probability gap between its top
two tokens at the first token of the matched answer ("Paris" in "The capital of France is Paris."). Retention is
then counted again on the answers the base was sure of (gap at least 1 or 2 nats), for every run given, each
scored with `rlsd eval knowledge -m RUN` (fp32 greedy decoding, as rlsd always decodes on a CPU).

    python benchmarks/retention_sure.py --runs RUN [RUN ...] [--base smollm2-135m]

A floor probe's scaled adapter (benchmarks/retention_floor.py) is a run like any other here.
"""

from __future__ import annotations

import argparse
import json

from common import machine, rlsd
from retention_floor import answers

THRESHOLDS = (1.0, 2.0)


def base_right_rows(spec: str) -> list[dict]:
    from rlsd_cli.evaluate import reports_dir
    from rlsd_cli.model import resolve_model

    rows = [json.loads(line) for line in (reports_dir(resolve_model(spec)) / "knowledge.jsonl").read_text().splitlines()]
    return [row for row in rows if row["verdict"]["correct"]]


def answer_token_scores(model: str, rows: list[dict]) -> dict[str, dict]:
    """Per base-right item, `model` teacher-forced on the base's own answer: at the first token of the matched
    alias ("Paris" in "The capital of France is Paris."), its top-two gap (nats) and whether its top token is the
    base's (it would still say the fact given the base's words so far)."""
    import torch

    from rlsd_cli.chat_format import render_prompt
    from rlsd_cli.model import load_model

    loaded = load_model(model)
    tokenizer = loaded.tokenizer
    scores = {}
    with torch.no_grad(), loaded.autocast(greedy=True):
        for row in rows:
            prompt = tokenizer(render_prompt(tokenizer, [{"role": "user", "content": row["prompt"]}]),
                               add_special_tokens=False)["input_ids"]
            answer = tokenizer(row["response"], add_special_tokens=False, return_offsets_mapping=True)
            at = row["response"].lower().find(str(row["verdict"]["matched"]).lower())
            token = next(i for i, (_, end) in enumerate(answer["offset_mapping"]) if end > at)
            logits = loaded.model(input_ids=torch.tensor([prompt + answer["input_ids"]])).logits[0, len(prompt) - 1 + token]
            top = torch.log_softmax(logits.float(), -1).topk(2)
            scores[row["id"]] = {"gap": float(top.values[0] - top.values[1]),
                                 "says_it": int(top.indices[0]) == answer["input_ids"][token]}
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="run folders (sft, recover, or scaled copies)")
    parser.add_argument("--base", default="smollm2-135m")
    args = parser.parse_args()

    rlsd("eval", "knowledge", "-m", args.base, "--json")
    right = base_right_rows(args.base)
    margins = {key: score["gap"] for key, score in answer_token_scores(args.base, right).items()}
    subsets = {"all right": list(margins)} | {f"gap >= {t:g}": [k for k, m in margins.items() if m >= t]
                                              for t in THRESHOLDS}
    rows = []
    for run in args.runs:
        rlsd("eval", "knowledge", "-m", run, "--json")
        got = answers(run)
        says = {key: score["says_it"] for key, score in answer_token_scores(run, right).items()}
        rows.append({"run": run, **{name: {"kept": sum(got[k] for k in keys), "of": len(keys),
                                           "retention": round(sum(got[k] for k in keys) / max(len(keys), 1), 3),
                                           "says_it_given_base_words": sum(says[k] for k in keys)}
                                    for name, keys in subsets.items()}})
    print(json.dumps({"base": args.base, "machine": machine(), "margins": margins, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
