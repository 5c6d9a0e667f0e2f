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


def test_the_run_answers_through_chat_and_eval(sft_run):
    run, summary = sft_run
    rescored = run_cli("eval", "qa", "--model", str(run), "--data", str(DATA / "docs_qa.jsonl"), "--json")
    assert rescored.returncode == 0, rescored.stderr
    report = json.loads(rescored.stdout)
    assert report["cached"] and report["metrics"] == summary["eval_after"]["qa"]
    chat = run_cli("chat", "--model", str(run), "-p", "What is the staff cafeteria called?")
    assert chat.returncode == 0 and "Spoke Room" in chat.stdout
