"""Forgetting measured where nothing was tuned: `rlsd eval drift` (KL to the base on the base's own answers to
everyday prompts) and `rlsd eval knowledge` (world knowledge, with retention relative to the base), both reported
by every training verb unless --no-forgetting."""

from __future__ import annotations

import collections
import json
import re
from pathlib import Path

import pytest

from conftest import run_cli
from rlsd_cli import drift, replay
from rlsd_cli.evaluate import retention
from rlsd_cli.suites import get_suite
from rlsd_cli.suites.knowledge import KNOWLEDGE_DATA

CHAT = Path(__file__).parent / "data" / "chat_small.jsonl"
DOCS = Path(__file__).parent / "data" / "docs"
TINY_SFT = ["--chat-data", str(CHAT), "--max-length", "64", "--chunk-overlap", "8", "--batch-size", "4", "--lr", "0.05",
            "--max-steps", "3"]


def _word_runs(text: str, n: int = 6) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def _prompts(path: Path, field: str) -> list[str]:
    return [json.loads(line)[field] for line in path.read_text().splitlines() if line.strip()]


def test_the_built_in_sets_are_their_own():
    """Nothing the forgetting measures ask is trained on by replay or recover, or taken from an evaluation set."""
    measured = [*(p["prompt"] for p in drift.drift_prompts()), *_prompts(KNOWLEDGE_DATA, "question")]
    used = [*(i["prompt"] for i in replay.builtin_instructions(replay.GENERAL_INSTRUCTIONS)),
            *(i["prompt"] for i in replay.builtin_instructions(replay.FORMAT_INSTRUCTIONS)),
            *(i["prompt"] for i in replay.builtin_instructions(replay.FACTUAL_INSTRUCTIONS)),
            *_prompts(get_suite("ifeval").data_file(None), "prompt"), *_prompts(get_suite("gsm8k").data_file(None), "question")]
    elsewhere = set().union(*(_word_runs(text) for text in used))
    assert not [text for text in measured if _word_runs(text) & elsewhere]
    assert not set(measured) & set(used)


def test_the_factual_recover_prompts_name_no_knowledge_answer():
    """recover's `factual` set distills the base on short factual questions; naming a knowledge answer in one of
    them would be training retention's own items."""
    answers = {a.lower() for line in KNOWLEDGE_DATA.read_text().splitlines() if line.strip()
               for a in (json.loads(line)["answer"], *json.loads(line)["aliases"]) if len(a) >= 4}
    factual = replay.builtin_instructions(replay.FACTUAL_INSTRUCTIONS)
    named = {i["id"]: sorted(a for a in answers if re.search(rf"\b{re.escape(a)}\b", i["prompt"].lower())) for i in factual}
    assert len(factual) >= 150 and not {k: v for k, v in named.items() if v}


def test_the_built_in_sets_are_broad():
    prompts = drift.drift_prompts()
    assert len(prompts) >= 90 and len({p["id"] for p in prompts}) == len(prompts)
    assert min(collections.Counter(p["category"] for p in prompts).values()) >= 8
    items = get_suite("knowledge").load(None)
    assert len(items) >= 150 and len({i.record["kind"] for i in items}) >= 6


def test_the_embedded_models_drift_answers_ship_for_the_current_prompts(smollm_dir, tmp_path, monkeypatch):
    """A fresh machine reads them instead of generating (about a minute): their name must follow the weights and
    the prompts, and their rows the prompts, or they are silently never used."""
    from rlsd_cli.model import weights_hash

    monkeypatch.setenv("RLSD_HOME", str(tmp_path))
    shipped = drift.shipped_answers(drift.answers_cache(weights_hash(smollm_dir)).name)
    assert shipped.is_file(), f"no shipped drift answers named {shipped.name}"
    rows = drift.base_answers(None, weights_hash(smollm_dir))  # no model: only the shipped file can answer
    assert [(r["id"], r["prompt"]) for r in rows] == [(p["id"], p["prompt"]) for p in drift.drift_prompts()]
    assert sum(1 for r in rows if r["answer"].strip()) >= 90


def test_retention_counts_only_what_the_base_answered_right():
    base = [{"id": i, "verdict": {"correct": i < 4}} for i in range(10)]
    run = [{"id": i, "verdict": {"correct": i in (0, 1, 2, 7, 8)}} for i in range(10)]
    assert retention(base, run, "id") == {"retention": 0.75}
    assert retention([{"id": 0, "verdict": {"correct": False}}], run, "id") == {}


def _answers_for_the_tiny_base(tiny_model_dir, home: Path, monkeypatch) -> None:
    """The tiny random model's greedy first token is a near-tie of almost equal logits; on some CPU kinds it is the
    end token for every prompt, leaving no answer token to score. Its cached answers are fixed here instead, so the
    test measures drift, not that near-tie."""
    from rlsd_cli.model import weights_hash

    monkeypatch.setenv("RLSD_HOME", str(home))
    cache = drift.answers_cache(weights_hash(tiny_model_dir))
    cache.parent.mkdir(parents=True)
    cache.write_text("".join(json.dumps({**p, "answer": f"Here is a short answer to: {p['prompt'][:40]}"}) + "\n"
                             for p in drift.drift_prompts()))


def test_drift_is_zero_for_the_base_and_grows_with_the_adapter(tiny_model_dir, tmp_path, monkeypatch):
    _answers_for_the_tiny_base(tiny_model_dir, tmp_path / "home", monkeypatch)
    base = run_cli("eval", "drift", "--model", str(tiny_model_dir), "--json", env_extra={"RLSD_HOME": str(tmp_path / "home")})
    assert base.returncode == 0, base.stderr
    assert json.loads(base.stdout)["metrics"] == {"kl": 0.0, "early_divergence": 0.0}

    runs = tmp_path / "runs"
    trained = run_cli("sft", str(DOCS), "--model", str(tiny_model_dir), *TINY_SFT, "--runs-dir", str(runs), "--name", "a",
                      "--json", env_extra={"RLSD_HOME": str(tmp_path / "home")})
    assert trained.returncode == 0, trained.stderr
    summary = json.loads(trained.stdout)
    assert summary["eval_before"]["drift"] == {"kl": 0.0, "early_divergence": 0.0}
    after = summary["eval_after"]["drift"]
    assert after["kl"] > 0 and 0 <= after["early_divergence"] <= 1
    assert set(summary["eval_after"]["knowledge"]) <= {"accuracy", "retention", "fact_retention"}
    report = json.loads((runs / "a" / "evals" / "drift.json").read_text())
    assert report["metrics"]["kl"] == pytest.approx(after["kl"]) and len(report["metrics"]) > 2  # per category too
    assert report["scored_answers"] == len(drift.drift_prompts())
    assert (runs / "a" / "evals" / "knowledge.json").is_file()
    # the base's answers are cached: the CLI reuses the run's report, and the gate reads it
    gate = run_cli("eval", "drift", "--model", str(runs / "a"), "--max-score", str(after["kl"] / 2), "--json",
                   env_extra={"RLSD_HOME": str(tmp_path / "home")})
    assert gate.returncode == 3 and json.loads(gate.stdout)["threshold"]["passed"] is False, gate.stderr
    assert "reusing" in gate.stderr
    early = run_cli("eval", "drift", "--model", str(runs / "a"), "--metric", "early_divergence", "--max-score", "1",
                    env_extra={"RLSD_HOME": str(tmp_path / "home")})
    assert early.returncode == 0, early.stderr

    off = run_cli("sft", str(DOCS), "--model", str(tiny_model_dir), *TINY_SFT, "--runs-dir", str(runs), "--name", "b",
                  "--no-forgetting", "--json", env_extra={"RLSD_HOME": str(tmp_path / "home")})
    assert off.returncode == 0, off.stderr
    assert not {"drift", "knowledge"} & set(json.loads(off.stdout)["eval_after"])


def test_drift_matches_a_direct_kl_computation(tiny_model_dir, tmp_path, monkeypatch):
    """The teacher-forced KL is KL(base || run) over the answer tokens only, computed here from plain logits."""
    import torch
    from peft import LoraConfig, get_peft_model

    from rlsd_cli.chat_format import render_prompt
    from rlsd_cli.model import load_model

    monkeypatch.setenv("RLSD_HOME", str(tmp_path))
    loaded = load_model(str(tiny_model_dir), quant="fp32")
    torch.manual_seed(0)
    loaded.model = get_peft_model(loaded.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    answers = [{"id": "x", "category": "c", "prompt": "Name a colour.", "answer": "Blue is a colour of the sky."},
               {"id": "y", "category": "c", "prompt": "Say hi.", "answer": "Hi there, nice to meet you today."}]
    metrics, rows = drift.drift_metrics(loaded, answers, batch_size=2)
    tok = loaded.tokenizer
    total, tokens = 0.0, 0
    for row in answers:
        prompt = tok(render_prompt(tok, [{"role": "user", "content": row["prompt"]}]), add_special_tokens=False)["input_ids"]
        answer = tok(row["answer"], add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt + answer])
        with torch.no_grad():
            run = torch.log_softmax(loaded.model(input_ids=ids).logits[0, len(prompt) - 1:-1].float(), -1)
            with loaded.model.disable_adapter():
                base = torch.log_softmax(loaded.model(input_ids=ids).logits[0, len(prompt) - 1:-1].float(), -1)
        total += float((base.exp() * (base - run)).sum())
        tokens += len(answer)
    assert metrics["kl"] == pytest.approx(total / tokens, rel=1e-3)
    assert [r["tokens"] for r in rows] == [len(tok(a["answer"], add_special_tokens=False)["input_ids"]) for a in answers]


def test_drift_says_when_no_base_answer_could_be_scored(tiny_model_dir, tmp_path, monkeypatch):
    """Empty base answers leave no token to score: the report says so and a gate fails rather than reading KL 0."""
    from rlsd_cli.model import weights_hash

    home = tmp_path / "home"
    monkeypatch.setenv("RLSD_HOME", str(home))
    cache = drift.answers_cache(weights_hash(tiny_model_dir))
    cache.parent.mkdir(parents=True)
    cache.write_text("".join(json.dumps({**p, "answer": ""}) + "\n" for p in drift.drift_prompts()))
    runs = tmp_path / "runs"
    trained = run_cli("sft", str(DOCS), "--model", str(tiny_model_dir), *TINY_SFT, "--runs-dir", str(runs), "--name", "a",
                      "--no-forgetting", env_extra={"RLSD_HOME": str(home)})
    assert trained.returncode == 0, trained.stderr
    gate = run_cli("eval", "drift", "--model", str(runs / "a"), "--max-score", "1", "--json", env_extra={"RLSD_HOME": str(home)})
    assert gate.returncode == 3, gate.stderr
    report = json.loads(gate.stdout)
    assert report["scored_answers"] == 0 and report["threshold"]["passed"] is False
    assert "no token was scored" in gate.stderr and "no base answer had a token to score" in gate.stderr


def test_a_damaged_drift_answers_cache_is_one_line_naming_it(tmp_path, monkeypatch):
    """The base's cached drift answers, damaged: a line of 100,000 '[' raised RecursionError, a row without its answer
    KeyError later on."""
    from rlsd_cli.errors import BadInputError

    monkeypatch.setenv("RLSD_HOME", str(tmp_path))
    cache = drift.answers_cache("f" * 64)
    cache.parent.mkdir(parents=True)
    for line in ("[" * 100_000, json.dumps(drift.drift_prompts()[0])):
        cache.write_text(line + "\n")
        with pytest.raises(BadInputError, match=rf"{re.escape(str(cache))}:1: damaged .*delete it"):
            drift.base_answers(None, "f" * 64)


def test_fact_retention_keeps_what_the_base_states_surely_and_counts_what_a_run_no_longer_says(smollm_dir, tmp_path, monkeypatch):
    """The embedded model states these facts with a wide margin. An adapter that changes nothing keeps all of them
    (as a tenth of a recovered adapter did on the suite, where greedy retention lost 9 answers); one that wrecks the
    model keeps fewer. Items the base got wrong or whose alias is missing from the answer are not counted."""
    import torch
    from peft import LoraConfig, get_peft_model

    from rlsd_cli.evaluate import base_facts, fact_retention
    from rlsd_cli.model import load_model

    monkeypatch.setenv("RLSD_HOME", str(tmp_path))
    facts = [("What is the capital of France?", "The capital of France is Paris.", "Paris"),
             ("What is the capital of Italy?", "The capital of Italy is Rome.", "Rome"),
             ("What is the capital of Japan?", "The capital of Japan is Tokyo.", "Tokyo")]
    base_rows = [{"id": f"k{i}", "prompt": q, "response": a, "verdict": {"correct": True, "matched": m}}
                 for i, (q, a, m) in enumerate(facts)]
    base_rows += [{"id": "wrong", "prompt": "What is 2 + 2?", "response": "5", "verdict": {"correct": False, "matched": None}},
                  {"id": "absent", "prompt": "Say hi.", "response": "Hi!", "verdict": {"correct": True, "matched": "Rome"}}]
    loaded = load_model(str(smollm_dir), quant="fp32")
    loaded.model = get_peft_model(loaded.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"]))
    with loaded.model.disable_adapter():
        base_facts(loaded, base_rows)
    assert [("fact" in r) for r in base_rows] == [True, True, True, False, False]
    assert all(r["fact"]["sure"] and r["fact"]["base_gap"] >= 1.0 for r in base_rows[:3])
    rows = [{"id": r["id"]} for r in base_rows]
    assert fact_retention(loaded, base_rows, rows, "id") == {"fact_retention": 1.0}
    assert [r.get("fact") for r in rows] == [{"kept": True}] * 3 + [None, None]

    torch.manual_seed(0)
    with torch.no_grad():
        for name, weight in loaded.model.named_parameters():
            if "lora_B" in name:
                weight.normal_(std=5.0)
    assert fact_retention(loaded, base_rows, [{"id": r["id"]} for r in base_rows], "id")["fact_retention"] < 1.0
    with loaded.model.disable_adapter():
        base_facts(loaded, base_rows, sure_gap=1e9)  # nothing stated surely enough: no figure, not a 1.0
    assert fact_retention(loaded, base_rows, rows, "id") == {}


def test_teacher_forced_scores_switch_dropout_off_and_leave_the_mode_as_it_was(tiny_model_dir, tmp_path, monkeypatch):
    """A model just trained is in training mode; drift's and fact_retention's passes must not sample dropout."""
    import torch
    from peft import LoraConfig, get_peft_model

    from rlsd_cli.model import load_model

    monkeypatch.setenv("RLSD_HOME", str(tmp_path))
    loaded = load_model(str(tiny_model_dir), quant="fp32")
    torch.manual_seed(0)
    loaded.model = get_peft_model(loaded.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], lora_dropout=0.5,
                                                           init_lora_weights=False))
    answers = [{"id": "x", "category": "c", "prompt": "Name a colour.", "answer": "Blue is a colour of the sky."}]
    loaded.model.eval()
    expected, _ = drift.drift_metrics(loaded, answers)
    loaded.model.train()
    assert [drift.drift_metrics(loaded, answers)[0] for _ in range(2)] == [expected, expected]
    assert loaded.model.training
