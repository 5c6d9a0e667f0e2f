"""`rlsd eval` end to end on the embedded SmolLM2-135M, through the console script."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli

pytestmark = pytest.mark.e2e
QA = Path(__file__).parent / "data" / "qa_fictional.jsonl"


@pytest.fixture(scope="module")
def home(tmp_path_factory, smollm_dir):
    """A fresh RLSD_HOME for reports, sharing the already converted model folder."""
    home = tmp_path_factory.mktemp("home")
    (home / "models").mkdir()
    (home / "models" / "smollm2-135m").symlink_to(smollm_dir)
    return {"RLSD_HOME": str(home)}


def test_qa_knows_general_facts_but_not_fictional_ones(home):
    result = run_cli("eval", "qa", "--data", str(QA), "--json", env_extra=home)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rows = {json.loads(line)["id"]: json.loads(line) for line in Path(report["report_path"]).with_suffix(".jsonl").read_text().splitlines()}
    assert rows["q1"]["verdict"]["correct"]  # Paris
    assert not any(rows[k]["verdict"]["correct"] for k in ("q4", "q5", "q6"))  # invented company facts


def test_gsm8k_limit_runs_and_min_score_gates(home):
    args = ("eval", "gsm8k", "--limit", "8", "--max-new-tokens", "96", "--json")
    result = run_cli(*args, env_extra=home)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n"] == 8 and 0.0 <= report["metrics"]["accuracy"] <= 1.0
    assert report["generation"]["tokens_per_second"] > 0
    gated = run_cli(*args, "--min-score", "0.99", env_extra=home)
    assert gated.returncode == 3
    assert json.loads(gated.stdout)["cached"] is True  # same model, data and parameters: reused


def test_ifeval_reports_four_metrics_and_responses_rescore_identically(home, tmp_path):
    result = run_cli("eval", "ifeval", "--limit", "12", "--max-new-tokens", "128", "--json", env_extra=home)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report["metrics"]) == {"prompt_level_strict_acc", "inst_level_strict_acc", "prompt_level_loose_acc", "inst_level_loose_acc"}
    assert report["n"] == 12
    rows = Path(report["report_path"]).with_suffix(".jsonl")
    rescored = run_cli("eval", "ifeval", "--responses", str(rows), "--json", env_extra=home)
    assert rescored.returncode == 0, rescored.stderr
    assert json.loads(rescored.stdout)["metrics"] == report["metrics"]
