"""`rlsd export RUN --out DIR`: hand a run to whoever serves it.

- Default: a standard Hugging Face model folder, the adapter merged into the full-precision base (PEFT's
  `merge_and_unload`), with the tokenizer, its chat template and a generation config that stops at the end of turn.
  It loads with plain `transformers`, no rlsd and no PEFT. A run trained on a 4-bit base is merged into the
  full-precision base weights: the output says how far the merged model's logits are from the 4-bit run's.
- `--adapter-only`: the PEFT adapter folder naming its base model, the form vLLM and TGI serve as LoRA adapters.
- Both carry a `README.md` model card: the base model and its weights hash, the lineage (every run: verb, round,
  documents, settings) and every evaluation recorded before and after.

The folder is written beside `--out` under a temporary name and renamed into place: an interrupted export leaves
nothing half-written. A non-empty `--out` is refused unless `--force`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from .console import say
from .errors import BadInputError
from .fsutil import atomic_write_text, read_json, replace_directory, sibling_tempdir
from .lineage import ancestors
from .model import EMBEDDED_MODELS, load_model, resolve_model, weights_hash
from .run_record import read_run_record, read_summary

PROBE_PROMPTS = ["What is the capital of France?", "Write one sentence about rivers.", "List three colours."]
# The settings a model card lists per run (the rest stay in each run's run.json).
CARD_SETTINGS = ("lr", "epochs", "max_steps", "steps", "mix", "replay", "knowledge_replay", "prompts", "divergence", "keep_with",
                 "keep_mix", "algo", "quant", "seed")


def export_run(spec: str, out: Path, *, adapter_only: bool = False, force: bool = False) -> dict[str, Any]:
    resolved = resolve_model(spec)
    if resolved.kind != "run":
        raise BadInputError(f"{spec}: export takes a run folder (runs/NAME); a base model is already a model folder")
    out = Path(out).absolute()
    run_dir, target = resolved.run_dir.resolve(), out.resolve()
    if target == run_dir or target in run_dir.parents or run_dir in target.parents:
        raise BadInputError(f"--out {out}: {'is' if target == run_dir else 'holds' if target in run_dir.parents else 'is inside'} "
                            f"the run being exported; pass a folder outside {resolved.run_dir}")
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out}: is a file; pass a folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise BadInputError(f"--out {out}: not empty; pass an empty or new folder, or --force to replace it")
        if not is_earlier_export(out):
            raise BadInputError(f"--out {out}: --force replaces only an earlier export (rlsd's model card README.md and "
                                "only the files an export writes); this folder holds others, so pass a new folder")
    parent = next((p for p in out.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise BadInputError(f"--out {out}: {parent} is a file, not a folder; pass a folder under a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = sibling_tempdir(out)
    try:
        if adapter_only:
            result = _write_adapter(resolved, tmp)
        else:
            result = _write_merged(resolved, tmp)
        atomic_write_text(tmp / "README.md", model_card(resolved, result))
        replace_directory(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"exported {resolved.run_dir} to {out}")
    return {"run": str(resolved.run_dir), "out": str(out), **result}


CARD_MARK = "Exported by rlsd from the run"


# What a model folder written by `export` holds (transformers' and PEFT's save_pretrained, and the card): flat files.
EXPORT_FILE = re.compile(r"README\.md|.+\.(json|safetensors|jinja)|tokenizer\.model|merges\.txt|vocab\.txt")


def is_earlier_export(folder: Path) -> bool:
    """Whether `--force` may replace `folder`: what `rlsd export` wrote there (its card, and only files an export
    writes, no subfolder), not a run, a runs folder or a user's folder."""
    try:
        card = (folder / "README.md").read_text(encoding="utf-8", errors="replace")
        entries = list(folder.iterdir())
    except OSError:
        return False
    return (CARD_MARK in card and not (folder / "run.json").exists()
            and all(entry.is_file() and not entry.is_symlink() and EXPORT_FILE.fullmatch(entry.name) for entry in entries))


def base_model_name(resolved) -> str:
    """The base model as a server names it: the hub id of an embedded model, else the spec the run recorded."""
    embedded = EMBEDDED_MODELS.get(resolved.base)
    return embedded.hub_id if embedded else resolved.base


def _write_adapter(resolved, folder: Path) -> dict[str, Any]:
    source = resolved.adapter_path / "adapter_config.json"
    fix = "train the run again or restore its adapter from a backup"
    config = read_json(source, fix)
    if not isinstance(config, dict):
        raise BadInputError(f"{source}: damaged (not a JSON object); {fix}")
    shutil.copytree(resolved.adapter_path, folder, dirs_exist_ok=True)
    config["base_model_name_or_path"] = base_model_name(resolved)
    atomic_write_text(folder / "adapter_config.json", json.dumps(config, indent=2))
    return {"form": "adapter", "base_model": base_model_name(resolved)}


def _write_merged(resolved, folder: Path) -> dict[str, Any]:
    trained_quant = ((resolved.run_record or {}).get("base_model") or {}).get("precision", {}).get("quant", "none")
    merged = load_model(str(resolved.run_dir), quant="fp32")
    merged.model = merged.model.merge_and_unload()
    difference = None
    if trained_quant != "none":  # a QLoRA adapter merged into dequantised weights is not bit-identical: say how far
        trained = load_model(str(resolved.run_dir), quant=trained_quant)
        difference = _logit_difference(trained, merged)
        say(f"merged into the full-precision base: logits differ from the {trained_quant} run's by at most "
            f"{difference['max_abs']:.4g} (mean {difference['mean_abs']:.3g}) on {len(PROBE_PROMPTS)} prompts")
        del trained
    merged.model.save_pretrained(folder, safe_serialization=True)
    merged.tokenizer.save_pretrained(folder)
    return {"form": "merged", "trained_precision": trained_quant, "logit_difference": difference}


def _logit_difference(trained, merged) -> dict[str, float]:
    import torch

    from .chat_format import render_prompt

    worst, total, count = 0.0, 0.0, 0
    for question in PROBE_PROMPTS:
        text = render_prompt(merged.tokenizer, [{"role": "user", "content": question}])
        ids = merged.tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            with trained.autocast():
                a = trained.model(ids.to(trained.device)).logits.float().cpu()
            b = merged.model(ids.to(merged.device)).logits.float().cpu()
        gap = (a - b).abs()
        worst, total, count = max(worst, gap.max().item()), total + gap.sum().item(), count + gap.numel()
    return {"max_abs": round(worst, 6), "mean_abs": round(total / count, 6)}


def model_card(resolved, result: dict[str, Any]) -> str:
    base = resolved.base
    lines = [f"# {resolved.run_dir.name}", "",
             f"{CARD_MARK} `{resolved.run_dir}`: "
             + ("the LoRA adapter merged into its base model. Load it with `transformers.AutoModelForCausalLM` and "
                "`AutoTokenizer`; no rlsd or PEFT needed." if result["form"] == "merged" else
                f"the LoRA adapter alone, for a server that applies it to `{result['base_model']}`."), "",
             "## Base model", "",
             f"- `{base_model_name(resolved)}` (rlsd spec `{base}`), weights SHA-256 `{weights_hash(resolved.path)}`"]
    if result.get("logit_difference"):
        diff = result["logit_difference"]
        lines.append(f"- Trained on a {result['trained_precision']} base; merged into full-precision weights, whose logits "
                     f"differ from the trained run's by at most {diff['max_abs']:.4g} (mean {diff['mean_abs']:.3g}) on "
                     f"{len(PROBE_PROMPTS)} probe prompts.")
    lines += ["", "## Lineage (oldest first)", "", "| run | verb | round | documents new / changed / removed | settings |",
              "| --- | --- | --- | --- | --- |"]
    chain = list(reversed(ancestors(resolved.run_dir)))
    for run in chain:
        record = read_run_record(run)
        config = record.get("config") or {}
        changes = (record.get("round") or {}).get("changes") or {}
        counts = " / ".join(str(len(changes.get(k, []))) for k in ("new", "changed", "removed")) if changes else "-"
        settings = ", ".join(f"{k}={config[k]}" for k in CARD_SETTINGS if config.get(k) not in (None, "", []))
        lines.append(f"| {run.name} | {record.get('verb')} | {(record.get('round') or {}).get('number', '-')} | {counts} | {settings} |")
    lines += ["", "## Evaluations", "", "| run | stage | report | metric | value |", "| --- | --- | --- | --- | --- |"]
    for run in chain:
        summary = read_summary(run)
        if summary is None:
            continue
        for stage in ("eval_base", "eval_before", "eval_after"):
            scores = summary.get(stage) if isinstance(summary.get(stage), dict) else {}
            if scores and not isinstance(next(iter(scores.values())), dict):
                scores = {"held-out": scores}
            for report, metrics in scores.items():
                for metric, value in (metrics if isinstance(metrics, dict) else {}).items():
                    if isinstance(value, (int, float)):
                        lines.append(f"| {run.name} | {stage.removeprefix('eval_')} | {report} | {metric} | {value:.4f} |")
    return "\n".join(lines) + "\n"
