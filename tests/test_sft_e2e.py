"""`rlsd sft` end to end on the embedded SmolLM2-135M, through the console script (default settings but a shorter
schedule: conftest.py `sft_run`).

The run is the session fixture `sft_run` (conftest.py), trained once and reused by later verbs' tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli

pytestmark = pytest.mark.e2e
DATA = Path(__file__).parent / "data"


def test_sft_makes_most_document_questions_answerable(sft_run):
    run, summary = sft_run
    before, after = summary["eval_before"]["qa"]["accuracy"], summary["eval_after"]["qa"]["accuracy"]
    assert before <= 0.1  # the model cannot know these invented facts
    assert after > 0.5, f"qa accuracy {before} -> {after}"
    assert summary["examples"]["general-chat"] > 0 and summary["general_chat"]["source"] == "replay"
    assert summary["final_loss"] < summary["first_loss"]


def test_sft_reports_what_it_cost_on_world_knowledge_and_everyday_prompts(sft_run):
    """The base model answers about half the built-in world-knowledge questions (0.50 on the day it was written);
    the run is scored on the same ones, and its drift from the base on everyday prompts is positive."""
    _, summary = sft_run
    assert summary["eval_before"]["knowledge"]["accuracy"] >= 0.35
    assert 0 <= summary["eval_after"]["knowledge"]["retention"] <= 1
    assert 0 <= summary["eval_after"]["knowledge"]["fact_retention"] <= 1
    assert summary["eval_before"]["drift"] == {"kl": 0.0, "early_divergence": 0.0}
    assert summary["eval_after"]["drift"]["kl"] > 0.05


def test_the_run_answers_through_chat_and_eval(sft_run):
    run, summary = sft_run
    rescored = run_cli("eval", "qa", "--model", str(run), "--data", str(DATA / "docs_qa.jsonl"), "--json")
    assert rescored.returncode == 0, rescored.stderr
    report = json.loads(rescored.stdout)
    assert report["cached"] and report["metrics"] == summary["eval_after"]["qa"]
    chat = run_cli("chat", "--model", str(run), "-p", "What is the staff cafeteria called?")
    assert chat.returncode == 0 and "Spoke Room" in chat.stdout


PLAIN_GREEDY = """
import json, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
folder, prompts, budget = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
answers = []
for prompt in prompts:
    ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=budget, do_sample=False)
    answers.append(tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip())
assert not [m for m in sys.modules if m == "peft" or m.startswith("rlsd")]
print(json.dumps(answers))
"""


def test_the_export_answers_as_the_run_does_with_plain_transformers(sft_run, tmp_path):
    import subprocess
    import sys

    run, summary = sft_run
    out = tmp_path / "export"
    exported = run_cli("export", str(run), "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    prompts = ["What is the staff cafeteria called?", "Who leads the company?", "Write one sentence about bicycles."]
    plain = json.loads(subprocess.run([sys.executable, "-c", PLAIN_GREEDY, str(out), json.dumps(prompts), "32"],
                                      capture_output=True, text=True, check=True).stdout)
    for prompt, answer in zip(prompts, plain, strict=True):
        chat = run_cli("chat", "--model", str(run), "-p", prompt, "--max-new-tokens", "32", "--json")
        assert json.loads(chat.stdout)["response"] == answer, (prompt, answer)
    scored = run_cli("eval", "qa", "--model", str(out), "--data", str(DATA / "docs_qa.jsonl"), "--json")
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["metrics"]["accuracy"] == summary["eval_after"]["qa"]["accuracy"]
    assert "qa | accuracy" in (out / "README.md").read_text()
