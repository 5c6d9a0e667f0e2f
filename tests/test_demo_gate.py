"""`make demo`'s gate (examples/rounds_report.py): it passes the demo's measured rounds and fails each regression
it is there to catch, naming the check."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPORT = Path(__file__).resolve().parents[1] / "examples" / "rounds_report.py"
PREFIX = "demo-test"


def _scores(qa1, ifeval, retention, kl, new=None, updated=None, stale=None, kept=None) -> dict:
    scores = {"qa": {"accuracy": qa1}, "ifeval": {"inst_level_loose_acc": ifeval}, "drift": {"kl": kl}}
    if retention is not None:
        scores["knowledge"] = {"retention": retention}
    if new is not None:
        scores["qa-company_qa_revision2"] = {"accuracy/new": new, "accuracy/updated": updated, "stale_rate": stale,
                                             "accuracy/kept": kept}
    return scores


# The bf16 demo of 2026-12-07 (docs/continual.md), as the four runs' summaries hold it.
MEASURED = {
    "r1-sft": {"eval_before": _scores(0.014, 0.32, None, 0.0), "eval_after": _scores(0.260, 0.23, 0.443, 0.721)},
    "r1-recover": {"eval_after": _scores(0.411, 0.28, 0.620, 0.323)},
    "r2-sft": {"eval_before": _scores(0.411, 0.28, 0.620, 0.323, new=0.0, updated=0.0, stale=0.6, kept=0.373),
               "eval_after": _scores(0.247, 0.25, 0.608, 0.834, new=0.5, updated=0.5, stale=0.0, kept=0.305)},
    "r2-recover": {"eval_after": _scores(0.329, 0.24, 0.646, 0.456, new=0.5, updated=0.5, stale=0.0, kept=0.407)},
}


def _report(tmp_path: Path, summaries: dict) -> subprocess.CompletedProcess:
    for name, summary in summaries.items():
        (tmp_path / f"{PREFIX}-{name}").mkdir()
        (tmp_path / f"{PREFIX}-{name}" / "cli-summary.json").write_text(json.dumps(summary))
    return subprocess.run([sys.executable, str(REPORT), str(tmp_path), PREFIX], capture_output=True, text=True)


def test_the_measured_demo_passes_with_the_targets_it_missed_printed(tmp_path):
    result = _report(tmp_path, MEASURED)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gate passed" in result.stdout
    assert "not met  target: updated facts at least 0.6 after the round" in result.stdout
    assert (tmp_path / f"{PREFIX}-r2-recover" / "rounds.png").stat().st_size > 0


@pytest.mark.parametrize(("run", "report", "metric", "broken", "check"), [
    ("r2-recover", "qa-company_qa_revision2", "accuracy/new", 1 / 6, "round 2 taught the new facts"),
    ("r2-recover", "qa-company_qa_revision2", "stale_rate", 0.3, "stale answers fell"),
    ("r2-recover", "qa-company_qa_revision2", "accuracy/kept", 0.30, "unchanged round-one facts kept"),
    ("r2-recover", "drift", "kl", 0.60, "recover cut the drift"),
    ("r2-recover", "ifeval", "inst_level_loose_acc", 0.21, "instruction following back near the base"),
    ("r1-sft", "qa", "accuracy", 0.014, "round 1 taught the documents"),
])
def test_each_regression_fails_the_gate_by_name(tmp_path, run, report, metric, broken, check):
    summaries = copy.deepcopy(MEASURED)
    summaries[run]["eval_after"][report][metric] = broken
    result = _report(tmp_path, summaries)
    assert result.returncode == 1
    failed = result.stdout.split("GATE FAILED: ")[1]
    assert check in failed and ";" not in failed  # that check alone
