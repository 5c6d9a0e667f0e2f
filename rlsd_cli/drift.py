"""`rlsd eval drift`: how far a run has moved from its base model on everyday tasks, with no labels.

The base model answers a built-in set of general prompts once (greedy; `data/forgetting/drift_prompts.jsonl`,
written for this project: 96 everyday tasks in 12 categories, none used in training, replay, recover or a recipe,
none from an evaluation set); the answers are cached per base. A run is then scored by teacher forcing on those
answers (one forward per batch for the run, one for the base with the adapter off; no generation):

- `kl`: the mean per-token KL(base || run) over the answers' tokens, and `kl/<category>` per category;
- `early_divergence`: the share of answers where the run's greedy choice first departs from the base's answer
  before its tenth token.

"RL's Razor" (arXiv 2509.04259) finds that forgetting tracks the KL to the base; docs/forgetting.md checks it here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import __version__, env
from .chat_format import render_prompt
from .console import say
from .evaluate import adapter_hash, cache_key, cached_report, reports_dir, write_report
from .fsutil import atomic_write_text, read_json_lines, seed_cache
from .generation import GenerationSettings, eval_mode, generate, teacher_forced_batches
from .model import LoadedModel, choose_precision, resolve_model, weights_hash
from .suites.base import read_jsonl

PROMPTS = Path(__file__).resolve().parent / "data" / "forgetting" / "drift_prompts.jsonl"
EARLY = 10  # tokens: a first departure before this one counts as early
ANSWER_TOKENS = 64


def drift_prompts() -> list[dict[str, Any]]:
    return [record for _, record in read_jsonl(PROMPTS)]


def shipped_answers(cache_name: str) -> Path:
    """Where the embedded model's drift answers ship (made by `base_answers`), named as their cache file."""
    return PROMPTS.parent / f"drift_answers-{cache_name}"


def answers_cache(base_hash: str) -> Path:
    """Where a base's drift answers are cached: named by its weights, the prompts and the answer length."""
    digest = hashlib.sha256(PROMPTS.read_bytes()).hexdigest()[:8]
    return Path(env.rlsd_home()) / "drift" / f"{base_hash[:16]}-{digest}-{ANSWER_TOKENS}.jsonl"


def base_answers(loaded, base_hash: str) -> list[dict[str, Any]]:
    """The base model's greedy answers to the drift prompts, generated once per base (adapter off) and cached."""
    prompts = drift_prompts()
    cache = answers_cache(base_hash)
    seed_cache(cache, shipped_answers(cache.name))
    if cache.is_file():
        return read_json_lines(cache, ("id", "category", "prompt", "answer"),
                               "delete it and rlsd generates the base model's answers again")
    with loaded.model.disable_adapter() if hasattr(loaded.model, "disable_adapter") else contextlib.nullcontext():
        completions, _ = generate(loaded, [[{"role": "user", "content": p["prompt"]}] for p in prompts],
                                  GenerationSettings(max_new_tokens=ANSWER_TOKENS, temperature=0.0, batch_size=32),
                                  progress_label="drift: base answers")
    rows = [{**p, "answer": c.text} for p, c in zip(prompts, completions, strict=True)]
    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cache, "".join(json.dumps(r) + "\n" for r in rows))
    return rows


def drift_metrics(loaded, answers: list[dict[str, Any]], batch_size: int = 16) -> tuple[dict[str, float], list[dict]]:
    """Teacher-forced KL(base || run) on the base's answers, and where the run's greedy choice first departs."""
    import torch

    tokenizer = loaded.tokenizer
    examples = []
    order = {row["id"]: i for i, row in enumerate(answers)}
    for row in answers:
        prompt = tokenizer(render_prompt(tokenizer, [{"role": "user", "content": row["prompt"]}]), add_special_tokens=False)["input_ids"]
        answer = tokenizer(row["answer"], add_special_tokens=False)["input_ids"]
        if answer:
            examples.append((row, prompt, answer))
    per_row = []
    for batch, inputs, spans in teacher_forced_batches(loaded, [(p, a) for _, p, a in examples], batch_size):
        with torch.no_grad(), loaded.autocast(greedy=True), eval_mode(loaded.model):
            run_logits = loaded.model(**inputs).logits
            with loaded.model.disable_adapter():
                base_logits = loaded.model(**inputs).logits
        for i, (index, span) in enumerate(zip(batch, spans, strict=True)):
            row, _, answer = examples[index]
            base_logp = torch.log_softmax(base_logits[i, span].float(), -1)
            run_logp = torch.log_softmax(run_logits[i, span].float(), -1)
            kl = (base_logp.exp() * (base_logp - run_logp)).sum(-1)
            departs = (run_logp.argmax(-1) != torch.tensor(answer, device=run_logp.device)).nonzero()
            first = int(departs[0]) if len(departs) else None
            per_row.append({"id": row["id"], "category": row["category"], "tokens": len(answer),
                            "kl_sum": float(kl.sum()), "first_departure": first})
    per_row.sort(key=lambda r: order[r["id"]])
    tokens = sum(r["tokens"] for r in per_row) or 1
    metrics = {"kl": sum(r["kl_sum"] for r in per_row) / tokens,
               "early_divergence": sum(1 for r in per_row if r["first_departure"] is not None and r["first_departure"] < EARLY)
               / max(len(per_row), 1)}
    for category in sorted({r["category"] for r in per_row}):
        rows = [r for r in per_row if r["category"] == category]
        metrics[f"kl/{category}"] = sum(r["kl_sum"] for r in rows) / max(sum(r["tokens"] for r in rows), 1)
    return {k: round(v, 6) for k, v in metrics.items()}, per_row


def run_drift(model: str, quant: str = "auto", use_cache: bool = True, loaded: LoadedModel | None = None) -> dict[str, Any]:
    """The drift report of `model` (a run; a base model scores 0), saved beside the model's other reports as
    `drift.json` and reused while the weights, adapter, prompts and precision are the same. Under several training
    processes only rank 0 scores (the others get an empty report), as with every evaluation."""
    from .distributed import is_main_process

    if not is_main_process():
        return {"metrics": {}}
    resolved = loaded.resolved if loaded is not None else resolve_model(model)
    precision = loaded.precision if loaded is not None else choose_precision(quant)
    base_hash = weights_hash(resolved.path)
    key = cache_key({"suite": "drift", "weights": base_hash, "adapter": adapter_hash(resolved),
                      "prompts": hashlib.sha256(PROMPTS.read_bytes()).hexdigest(), "tokens": ANSWER_TOKENS,
                      "precision": asdict(precision)})
    folder = reports_dir(resolved)
    previous = cached_report(folder / "drift.json", key) if use_cache else None
    if previous is not None:
        return previous
    started = time.perf_counter()
    answers_seconds = 0.0
    if resolved.adapter_path is None:
        metrics, rows = {"kl": 0.0, "early_divergence": 0.0}, []  # the base model itself: nothing to load
    else:
        if loaded is None:
            from .model import load_model

            loaded = load_model(model, quant=quant)
            precision = loaded.precision
        answers = base_answers(loaded, base_hash)
        answers_seconds = time.perf_counter() - started
        say(f"drift: scoring {len(answers)} base answers with {model} (teacher forcing, no generation)")
        metrics, rows = drift_metrics(loaded, answers)
        if not rows:
            # A KL of 0 here would read as "no drift"; the report says instead that nothing could be measured.
            say(f"drift: warning: the base model's answers to all {len(answers)} prompts were empty, so no token "
                f"was scored and the KL of 0 means nothing; see {answers_cache(base_hash)}")
    report = {"suite": "drift", "model": model, "n": len(drift_prompts()), "metrics": metrics, "primary_metric": "kl",
              # None for a base model: its KL to itself is 0 by definition, not for want of tokens to score
              "scored_answers": len(rows) if resolved.adapter_path is not None else None,
              "base_model": resolved.base, "weights_sha256": base_hash, "adapter_sha256": adapter_hash(resolved),
              "precision": asdict(precision), "seconds": round(time.perf_counter() - started, 1),
              "base_answers_seconds": round(answers_seconds, 1),  # 0 when the base's answers were cached
              "cache_key": key, "cached": False, "rlsd_version": __version__,
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    report["report_path"] = str(write_report(folder, "drift", report, rows))
    return report
