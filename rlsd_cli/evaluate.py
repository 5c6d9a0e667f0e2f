"""`rlsd eval`: score a model (or given responses) on a suite, save the report, gate on a threshold.

Reports live beside the model they describe: `runs/<name>/evals/<suite>.json` (+ `.jsonl`, one line per
item with its prompt, response and verdict) for a run, `$RLSD_HOME/evals/<model>-<hash>/` for a base model.
A report is reused when model weights, adapter, suite, data, the sampled items and generation parameters
are all the same (the cache key), unless `--no-cache`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import __version__, env
from .chat_format import render_prompt
from .console import say
from .errors import BadInputError, ThresholdNotMet
from .fsutil import atomic_write_json, atomic_write_text, finite_number, read_json
from .generation import GenerationSettings, eval_mode, generate, teacher_forced_batches
from .model import DEFAULT_MODEL, ResolvedModel, choose_precision, resolve_model, weights_hash
from .suites import Item, Suite, get_suite
from .suites.base import read_jsonl


@dataclass
class EvalConfig:
    suite: str
    model: str = DEFAULT_MODEL
    data: Path | None = None
    responses: Path | None = None
    limit: int | None = None
    seed: int = 0
    max_new_tokens: int | None = None  # None: the suite's default
    # Decoding a 135M model on a CPU is bound by reading the weights once per step: 64 rows per step generated
    # 76.8 tokens/s vs 46.3 at 16 (IFEval prompts, 128 tokens, fp32, 2 cores).
    batch_size: int = 64
    temperature: float = 0.0
    quant: str = "auto"
    use_cache: bool = True
    min_score: float | None = None
    max_score: float | None = None
    report_name: str | None = None  # the report's file name (default: the suite's), when one suite scores several files
    metric: str | None = None
    out: Path | None = None

    def __post_init__(self):
        for name in ("temperature", "min_score", "max_score"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise BadInputError(f"--{name.replace('_', '-')} must be a finite number, got {value}")
        if self.limit is not None and self.limit <= 0:
            raise BadInputError(f"--limit must be a positive integer, got {self.limit}")
        if self.max_new_tokens is not None and self.max_new_tokens <= 0:
            raise BadInputError(f"--max-new-tokens must be a positive integer, got {self.max_new_tokens}")
        if self.batch_size <= 0:
            raise BadInputError(f"--batch-size must be a positive integer, got {self.batch_size}")
        if self.temperature < 0:
            raise BadInputError(f"--temperature must be 0 (greedy) or positive, got {self.temperature}")
        if self.data is not None:
            self.data = Path(self.data)
        if self.responses is not None:
            self.responses = Path(self.responses)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def seeded_sample(rows: list, limit: int | None, seed: int) -> list:
    """A seeded sample, kept in data order: the same `limit` and `seed` pick the same items for every model."""
    if limit is None or limit >= len(rows):
        return rows
    chosen = sorted(random.Random(seed).sample(range(len(rows)), limit))
    return [rows[i] for i in chosen]


def reports_dir(resolved: ResolvedModel) -> Path:
    if resolved.run_dir is not None:
        return resolved.run_dir / "evals"
    slug = re.sub(r"[^\w.\-]+", "_", resolved.spec.strip("/")).strip("_")[-60:] or "model"
    return Path(env.rlsd_home()) / "evals" / f"{slug}-{weights_hash(resolved.path)[:12]}"


def adapter_hash(resolved: ResolvedModel) -> str | None:
    if resolved.adapter_path is None:
        return None
    digest = hashlib.sha256()
    # The config too: its lora_alpha scales the weights, so an edited alpha is a different model.
    for file in sorted([*resolved.adapter_path.glob("*.safetensors"), *resolved.adapter_path.glob("adapter_config.json")]):
        digest.update(_sha256_file(file).encode())
    return digest.hexdigest()


def cache_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _read_responses(path: Path, suite: Suite, items: list[Item]) -> tuple[list[Item], list[str]]:
    by_key = {str(item.key): item for item in items}
    chosen, responses, seen = [], [], {}
    for number, record in read_jsonl(path):
        if suite.key_field not in record or not isinstance(record.get("response"), str):
            raise BadInputError(
                f"{path}:{number}: each line needs '{suite.key_field}' (the {suite.name} key field) and a string 'response'"
            )
        key = str(record[suite.key_field])
        if key not in by_key:
            raise BadInputError(f"{path}:{number}: no item with {suite.key_field}={key} in the data")
        if key in seen:
            raise BadInputError(f"{path}:{number}: a second response for {suite.key_field}={key} (line {seen[key]} has one); "
                                "keep one response per item")
        seen[key] = number
        chosen.append(by_key[key])
        responses.append(record["response"])
    return chosen, responses


def write_report(folder: Path, suite_name: str, report: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{suite_name}.json"
    if target.is_file():
        # A report for other parameters is kept, not overwritten.
        try:
            old_key = str(read_json(target, "moved to history/")["cache_key"])
        except (BadInputError, KeyError, TypeError, OSError):
            old_key = time.strftime("%Y%m%d-%H%M%S")
        old_key = re.sub(r"[^A-Za-z0-9_.-]", "_", old_key)[:80]  # it names a file
        history = folder / "history"
        history.mkdir(exist_ok=True)
        for suffix in (".json", ".jsonl"):
            old = folder / f"{suite_name}{suffix}"
            if old.is_file():
                os.replace(old, history / f"{suite_name}-{old_key}{suffix}")
    atomic_write_text(folder / f"{suite_name}.jsonl", "".join(json.dumps(r, default=str) + "\n" for r in rows))
    atomic_write_json(target, report)
    return target


def _data_id(suite: Suite, data: Path | None) -> dict[str, Any]:
    """What a report records of its data: the file and its hash (the embedded copy says so), or the hub id."""
    path = suite.data_file(data)
    if path is None:
        return {"hub": suite.hub_dataset}
    return {"path": str(path), "sha256": _sha256_file(path)} | ({"embedded": True} if data is None else {})


def report_damage(report: Any) -> str | None:
    """What keeps a saved report from being used as rlsd wrote it (a hand edit, a damaged disk), or None: the
    readers format its metrics as numbers, gate on them and group reports by suite."""
    if not isinstance(report, dict):
        return "not a JSON object"
    if not isinstance(report.get("suite"), str) or not isinstance(report.get("primary_metric"), str):
        return "'suite' or 'primary_metric' is not a name"
    metrics = report.get("metrics")
    # NaN is a float rlsd may write; an integer of 400 digits is not
    if not isinstance(metrics, dict) or not all(isinstance(v, float) or finite_number(v) for v in metrics.values()):
        return "'metrics' does not map each metric to a number"
    if isinstance(report.get("n"), bool) or not isinstance(report.get("n"), int):
        return "'n' is not a count of items"
    if not isinstance(report.get("params") or {}, dict):
        return "'params' is not a JSON object"
    return None


def cached_report(path: Path, key: str) -> dict[str, Any] | None:
    """The report saved at `path` if it was made with the same cache key (same model, data and parameters). A
    damaged one is computed again, with a note (write_report moves it to history/, so nothing is lost)."""
    try:
        previous = read_json(path, "computing it again")
    except FileNotFoundError:
        return None
    except (OSError, BadInputError) as exc:
        say(str(exc))
        return None
    if not isinstance(previous, dict) or previous.get("cache_key") != key:
        return None
    damage = report_damage(previous)
    if damage is not None:
        say(f"{path}: damaged ({damage}); computing it again")
        return None
    say(f"reusing {path} (same model, data and parameters; --no-cache recomputes)")
    return previous | {"cached": True}


def check_eval_data(configs) -> None:
    """Read every given evaluation file now, so a bad line stops a training verb before it loads a model or
    makes a run folder, not after the first minutes of work."""
    for config in configs:
        get_suite(config.suite).load(config.data)


def run_eval(config: EvalConfig, loaded=None) -> dict[str, Any]:
    """Score `config.model` (or `config.responses`) on `config.suite`; returns the report. Under several
    training processes only rank 0 scores (the others get an empty report)."""
    from .distributed import is_main_process

    if not is_main_process():
        return {"metrics": {}}
    suite = get_suite(config.suite)
    items = suite.load(config.data)
    data_id = _data_id(suite, config.data)
    params = {
        "max_new_tokens": config.max_new_tokens or suite.default_max_new_tokens,
        "temperature": config.temperature,
        "limit": config.limit,
        "seed": config.seed,
    }

    check_report_out(config.out)
    if config.responses is not None:
        answered = list(zip(*_read_responses(config.responses, suite, items), strict=True))
        if len(answered) < len(items) and (config.min_score is not None or config.max_score is not None):
            raise BadInputError(f"{config.responses}: no response for {len(items) - len(answered)} of the {len(items)} "
                                "items; a gate on the rest could pass by leaving answers out, so answer every item")
        pairs = seeded_sample(answered, config.limit, config.seed)
        report = _score(suite, [item for item, _ in pairs], [{"response": response} for _, response in pairs])
        report.pop("_rows")
        report.update(suite=suite.name, model=None, responses=str(config.responses), data=data_id, params=params,
                      rlsd_version=__version__, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        _maybe_copy(config.out, report)
        return report

    items = seeded_sample(items, config.limit, config.seed)
    resolved = loaded.resolved if loaded is not None else resolve_model(config.model)
    precision = loaded.precision if loaded is not None else choose_precision(config.quant)
    key = cache_key({
        "suite": suite.name,
        "weights": weights_hash(resolved.path),
        "adapter": adapter_hash(resolved),
        "data": data_id.get("sha256") or data_id.get("hub"),
        "items": [str(item.key) for item in items],
        "prompts": hashlib.sha256(json.dumps([i.messages for i in items]).encode()).hexdigest(),
        "params": {k: params[k] for k in ("max_new_tokens", "temperature")},
        "precision": asdict(precision),
    } | ({"base_facts": SURE_GAP} if suite.relative_to_base else {}))
    folder = reports_dir(resolved)
    report_name = config.report_name or suite.name
    previous = cached_report(folder / f"{report_name}.json", key) if config.use_cache else None
    if previous is not None:
        _maybe_copy(config.out, previous)
        return previous

    if loaded is None:
        from .model import load_model

        loaded = load_model(config.model, quant=config.quant)
    settings = GenerationSettings(
        max_new_tokens=params["max_new_tokens"], temperature=config.temperature, batch_size=config.batch_size
    )
    say(f"{suite.name}: generating {len(items)} responses with {config.model}")
    completions, stats = generate(loaded, [item.messages for item in items], settings, progress_label=suite.name)
    report = _score(suite, items, [asdict(c) | {"response": c.text} for c in completions])
    report.update(
        suite=suite.name,
        model=config.model,
        model_kind=resolved.kind,
        base_model=resolved.base,
        weights_sha256=weights_hash(resolved.path),
        adapter_sha256=adapter_hash(resolved),
        precision=asdict(loaded.precision),
        data=data_id,
        params=params,
        generation=stats.as_dict(),
        cache_key=key,
        cached=False,
        rlsd_version=__version__,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    rows = report.pop("_rows")
    if suite.relative_to_base and resolved.run_dir is None:
        base_facts(loaded, rows)
    if suite.relative_to_base and resolved.run_dir is not None:
        report["metrics"].update(_retention(config, loaded, suite, rows))
    report["report_path"] = str(write_report(folder, report_name, report, rows))
    _maybe_copy(config.out, report)
    return report


def _retention(config: EvalConfig, loaded, suite: Suite, rows: list[dict[str, Any]]) -> dict[str, float]:
    """`retention`: of the items the run's base model answers right (scored with the adapter switched off, and
    cached as the base's own report), the share the run still answers right; and `fact_retention` (below)."""
    from dataclasses import replace

    from .model import LoadedModel

    base = resolve_model(loaded.resolved.base)
    view = LoadedModel(model=loaded.model, tokenizer=loaded.tokenizer, resolved=base, precision=loaded.precision)
    with loaded.model.disable_adapter():
        run_eval(replace(config, model=base.spec, min_score=None, max_score=None, out=None), loaded=view)
    base_rows = [record for _, record in read_jsonl(reports_dir(base) / f"{config.report_name or suite.name}.jsonl")]
    return retention(base_rows, rows, suite.key_field) | fact_retention(loaded, base_rows, rows, suite.key_field)


def retention(base_rows: list[dict[str, Any]], rows: list[dict[str, Any]], key_field: str) -> dict[str, float]:
    """Of the items right in `base_rows`, the share right in `rows` (none when the base got none right)."""
    right = {str(r[key_field]) for r in base_rows if r["verdict"]["correct"]}
    kept = [r["verdict"]["correct"] for r in rows if str(r[key_field]) in right]
    return {"retention": sum(kept) / len(kept)} if kept else {}


# The base states a fact surely when, where its right answer's matched alias begins, its top token leads the second
# by this many nats. Below it a fact is a near-tie that flips without any forgetting (docs/forgetting.md).
SURE_GAP = 1.0


def _fact_examples(tokenizer, rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list[int], list[int]]]:
    """(row, prompt ids, the answer's ids up to and including the first token of its matched alias) for every
    right row whose alias appears in its answer: what follows the fact is not read. None for a slow tokenizer: the
    alias is found through character offsets, which only fast tokenizers give."""
    examples = []
    if not getattr(tokenizer, "is_fast", False):
        return examples
    for row in rows:
        matched = row["verdict"].get("matched")
        found = (re.search(rf"(?<!\w){re.escape(str(matched))}(?!\w)", row["response"], re.IGNORECASE)
                 if row["verdict"]["correct"] and matched else None)
        if found is None:
            continue
        at = found.start()
        answer = tokenizer(row["response"], add_special_tokens=False, return_offsets_mapping=True)
        token = next(i for i, (_, end) in enumerate(answer["offset_mapping"]) if end > at)
        prompt = tokenizer(render_prompt(tokenizer, [{"role": "user", "content": row["prompt"]}]), add_special_tokens=False)
        examples.append((row, prompt["input_ids"], answer["input_ids"][: token + 1]))
    return examples


def _fact_logits(loaded, examples):
    """Per example, the logits that predict the fact's first token (one teacher-forced pass per batch)."""
    import torch

    for batch, inputs, spans in teacher_forced_batches(loaded, [(p, a) for _, p, a in examples]):
        with torch.no_grad(), loaded.autocast(greedy=True), eval_mode(loaded.model):
            logits = loaded.model(**inputs).logits
        for i, (index, span) in enumerate(zip(batch, spans, strict=True)):
            yield examples[index], logits[i, span.stop - 1].float()


def base_facts(loaded, rows: list[dict[str, Any]], sure_gap: float = SURE_GAP) -> None:
    """Marks each right answer of the base's knowledge report with the fact it states (`fact`: the fact's first
    token, the gap in nats between the base's top two tokens there, and whether the base is sure of it: its top
    token is the one it said, by `sure_gap` or more). Runs read them from the base's cached report."""
    import torch

    for (row, _, answer), logits in _fact_logits(loaded, _fact_examples(loaded.tokenizer, rows)):
        top = torch.log_softmax(logits, -1).topk(2)
        gap = float(top.values[0] - top.values[1])
        row["fact"] = {"token": answer[-1], "base_gap": round(gap, 4),
                       "sure": int(top.indices[0]) == answer[-1] and gap >= sure_gap}


def fact_retention(loaded, base_rows: list[dict[str, Any]], rows: list[dict[str, Any]], key_field: str) -> dict[str, float]:
    """`fact_retention`: of the facts the base states surely in its right answers (`base_facts`), the share the run
    still puts first, given the base's own words up to the fact ("Paris" after "The capital of France is").
    `retention` compares greedy strings, so a run that words an answer differently loses it though it still knows
    the fact: a tenth of a recovered adapter lost 9 of the base's 79 right answers and none of its 60 sure facts.
    Each of the run's rows for a sure fact gets `fact: {"kept": ...}`."""
    examples = _fact_examples(loaded.tokenizer, [row for row in base_rows if (row.get("fact") or {}).get("sure")])
    kept = {str(row[key_field]): int(logits.argmax()) == row["fact"]["token"]
            for (row, _, _), logits in _fact_logits(loaded, examples)}
    for row in rows:
        if str(row[key_field]) in kept:
            row["fact"] = {"kept": kept[str(row[key_field])]}
    return {"fact_retention": sum(kept.values()) / len(kept)} if kept else {}


def score_in_memory(config: EvalConfig, loaded) -> dict[str, Any]:
    """Metrics of a model that is still training (no cache, no report files): for `--eval-every`."""
    suite = get_suite(config.suite)
    items = seeded_sample(suite.load(config.data), config.limit, config.seed)
    settings = GenerationSettings(max_new_tokens=config.max_new_tokens or suite.default_max_new_tokens,
                                  temperature=config.temperature, batch_size=config.batch_size)
    completions, _ = generate(loaded, [item.messages for item in items], settings)
    return _score(suite, items, [asdict(c) | {"response": c.text} for c in completions])["metrics"]


def _score(suite: Suite, items: list[Item], completions: list[dict[str, Any]]) -> dict[str, Any]:
    rows = []
    verdicts = []
    for item, completion in zip(items, completions, strict=True):
        verdict = suite.score(item, completion["response"])
        verdicts.append(verdict)
        row = {suite.key_field: item.key, "prompt": item.messages[-1]["content"], "response": completion["response"]}
        for extra in ("new_tokens", "finished"):
            if extra in completion:
                row[extra] = completion[extra]
        rows.append(row | {"verdict": verdict})
    metrics = suite.aggregate(verdicts)
    return {"n": len(items), "metrics": metrics, "primary_metric": suite.primary_metric, "_rows": rows}


def check_report_out(out: Path | None) -> None:
    """--out replaces only a report rlsd wrote: a JSON object with its marks, in a plain file. Checked before the
    work and again before the write; a FIFO or a device is refused unread (reading one would block or never end)."""
    if out is None:
        return
    out = Path(out)
    if not (out.exists() or out.is_symlink()):
        return
    if out.is_symlink() or not out.is_file():
        raise BadInputError(f"{out}: exists and is not a regular file (a link, a folder, a pipe or a device); pass "
                            "another --out")
    try:
        previous = read_json(out, "pass another --out")
    except (OSError, BadInputError):
        previous = None
    if not (isinstance(previous, dict) and {"suite", "rlsd_version", "metrics"} <= previous.keys()):
        raise BadInputError(f"{out}: exists and is not an rlsd eval report; pass another --out")


def _maybe_copy(out: Path | None, report: dict[str, Any]) -> None:
    if out is None:
        return
    check_report_out(out)  # again: the scoring took time
    atomic_write_json(out, {k: v for k, v in report.items() if k != "_rows"})


# Metrics where lower is better: gated with --max-score (a stale answer given is a failure).
LOWER_IS_BETTER = ("stale_rate", "kl", "early_divergence")


def lower_is_better(metric: str) -> bool:
    return metric.split("/")[0] in LOWER_IS_BETTER


def threshold_verdict(report: dict[str, Any], min_score: float | None, metric: str | None,
                      max_score: float | None = None) -> dict[str, Any] | None:
    """Whether the report meets `--min-score` (at least; the default for every metric where higher is better) or
    `--max-score` (at most; for metrics where lower is better, such as stale_rate) on `--metric` (the suite's
    primary metric by default)."""
    if metric is not None and metric not in report["metrics"]:
        raise BadInputError(f"--metric {metric!r}: the {report['suite']} suite reports {', '.join(report['metrics'])}")
    if min_score is None and max_score is None:
        return None
    if min_score is not None and max_score is not None:
        raise BadInputError("pass --min-score or --max-score, not both: one gate per command")
    name = metric or report["primary_metric"]
    if name not in report["metrics"]:
        raise BadInputError(f"--metric {name!r}: the {report['suite']} suite reports {', '.join(report['metrics'])}")
    if min_score is not None and lower_is_better(name):
        raise BadInputError(f"--metric {name}: lower is better, so gate it with --max-score {min_score} (exit 3 above it)")
    if max_score is not None and not lower_is_better(name):
        raise BadInputError(f"--metric {name}: higher is better, so gate it with --min-score {max_score} (exit 3 below it)")
    threshold, flag = (min_score, "--min-score") if min_score is not None else (max_score, "--max-score")
    if not name.startswith("kl") and not 0 <= threshold <= 1:
        raise BadInputError(f"{flag} {threshold}: {name} is a share from 0 to 1, so the gate would always or never "
                            "pass; pass a threshold from 0 to 1")
    value = report["metrics"][name]
    if min_score is not None:
        return {"metric": name, "value": value, "min_score": min_score, "passed": value >= min_score}
    return {"metric": name, "value": value, "max_score": max_score, "passed": value <= max_score}


def enforce_threshold(verdict: dict[str, Any] | None, suite: str) -> None:
    if verdict is None or verdict["passed"]:
        return
    if "reason" in verdict:
        raise ThresholdNotMet(f"{suite} {verdict['metric']}: {verdict['reason']}, so the gate cannot pass")
    if "min_score" in verdict:
        raise ThresholdNotMet(f"{suite} {verdict['metric']} = {verdict['value']:.4f} is below --min-score {verdict['min_score']}")
    raise ThresholdNotMet(f"{suite} {verdict['metric']} = {verdict['value']:.4f} is above --max-score {verdict['max_score']}")


# ---------------------------------------------------------------- compare


def load_reports(spec: str) -> tuple[Path, dict[str, dict[str, Any]]]:
    folder = reports_dir(resolve_model(spec))
    reports = {}
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            fix = f"skipped (`rlsd eval SUITE --model {spec}` writes it again)"
            try:
                report = read_json(path, fix)
            except (OSError, BadInputError) as exc:
                say(str(exc))
                continue
            if not (isinstance(report, dict) and "metrics" in report and "suite" in report):
                continue  # not a report (rlsd writes nothing else here as .json)
            damage = report_damage(report)
            if damage is not None:
                say(f"{path}: damaged ({damage}); {fix}")
                continue
            reports[report["suite"]] = report
    return folder, reports


def _items_key(report: dict[str, Any]) -> tuple:
    """What decides which items a report scored: the data's content (one file named by two paths is the same
    data), the seeded sample and its size."""
    data = report.get("data")
    params = report.get("params") or {}
    return (data.get("sha256") if isinstance(data, dict) else data, report.get("n"), params.get("limit"), params.get("seed"))


def compare(specs: list[str], plot: Path | None = None, force: bool = False) -> dict[str, Any]:
    if len(specs) < 2:
        raise BadInputError("eval compare needs at least two model specs")
    loaded = [(spec, *load_reports(spec)) for spec in specs]
    for spec, folder, reports in loaded:
        if not reports:
            raise BadInputError(f"{spec}: no saved eval reports in {folder}; run `rlsd eval SUITE --model {spec}` first")
    suites = sorted(set.intersection(*(set(r) for _, _, r in loaded)))
    if not suites:
        raise BadInputError("the models have no evaluation suite in common; evaluate them on the same suite first")
    rows = []
    for suite in suites:
        first = loaded[0][2][suite]
        comparable = all(_items_key(r[suite]) == _items_key(first) for _, _, r in loaded)
        for metric in first["metrics"]:
            values = [r[suite]["metrics"].get(metric) for _, _, r in loaded]
            rows.append({
                "suite": suite,
                "metric": metric,
                "values": values,
                "deltas": [None if v is None or values[0] is None else v - values[0] for v in values],
                "n": [r[suite].get("n") for _, _, r in loaded],
                "same_items": comparable,
            })
    target = Path(plot) if plot else loaded[0][1] / "compare.png"
    if plot and target.exists() and not force:
        raise BadInputError(f"{target}: exists; pass another --plot or --force to replace it")
    _plot(specs, rows, target)
    return {"models": specs, "rows": rows, "plot": str(target)}


def _plot(specs: list[str], rows: list[dict[str, Any]], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['suite']}\n{r['metric']}" for r in rows]
    width = 0.8 / len(specs)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(rows) * len(specs) / 2 + 3), 4.5))
    for j, spec in enumerate(specs):
        xs = [i + (j - (len(specs) - 1) / 2) * width for i in range(len(rows))]
        ax.bar(xs, [r["values"][j] or 0 for r in rows], width, label=Path(spec).name if Path(spec).is_dir() else spec)
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylabel("score")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("rlsd eval compare")
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, target)
