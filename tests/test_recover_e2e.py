"""`rlsd recover --teacher base` end to end on the embedded SmolLM2-135M: it repairs the session's sft run.

The recover run reports the IFEval subset and the document QA for the base model (adapter off), the sft run
(before) and the recovered run (after), so one run shows the whole story.
"""

from __future__ import annotations

import json

import pytest

from conftest import run_cli

# About 5 minutes on one core on top of the sft run, on the same `make test` worker (conftest.py).
pytestmark = pytest.mark.e2e
METRIC = "inst_level_loose_acc"
# Sized for CI on 2 cores: 12 steps of 64-token samples, a 60-prompt IFEval subset at 128 new tokens (in 2000
# random 60-prompt subsets of the 100-prompt README run, sft < base and recover > sft held in over 99%).
SETTINGS = ("--steps", "12", "--max-new-tokens", "64", "--eval", "ifeval", "--eval-limit", "60",
            "--eval-max-new-tokens", "128")


@pytest.fixture(scope="session")
def recover_run(sft_run):
    sft_dir, _ = sft_run
    result = run_cli("recover", "--from", str(sft_dir), "--teacher", "base", *SETTINGS, "--runs-dir", str(sft_dir.parent),
                     "--name", "recovered", "--json", timeout=1800)
    assert result.returncode == 0, result.stderr
    return sft_dir.parent / "recovered", json.loads(result.stdout)


def test_sft_costs_instruction_following_and_recover_brings_it_back_keeping_the_documents(recover_run):
    _, summary = recover_run
    base, sft, recovered = (summary[k] for k in ("eval_base", "eval_before", "eval_after"))
    scores = {name: (s["ifeval"][METRIC], s["qa"]["accuracy"]) for name, s in
              (("base", base), ("sft", sft), ("recover", recovered))}
    assert scores["sft"][0] < scores["base"][0], scores  # sft forgot some instruction following
    assert scores["sft"][1] > scores["base"][1], scores  # and learned the documents
    assert scores["recover"][0] > scores["sft"][0], scores  # recover brings instruction following back,
    assert scores["recover"][0] >= (scores["sft"][0] + scores["base"][0]) / 2, scores  # at least half of what sft cost
    # and keeps the documents: at most two of the 16 learned answers lost, net. From this sft run (0.32 -> 0.25, QA
    # 16 of 24) the defaults gave 0.32 / 0.34 / 0.33 and QA 15 / 16 / 16 over seeds 0-2 at one thread, and 0.36 and
    # 14 in this test at two (2026-12-04, 2-core Intel Xeon, fp32): 0 to 2 lost, mostly the same two or three answers
    # the sft run holds only barely. The former defaults (general prompts, sampled-token estimator, on-policy
    # anchor) lost 4 and 3 and fail here; the on-policy anchor with this loss lost 2, 5 and 2 (one of three fails).
    assert scores["recover"][1] >= scores["sft"][1] - 2.5 / 24, scores


def test_the_reverse_kl_to_the_base_falls(recover_run):
    run, summary = recover_run
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    general = [r["reverse_kl/general"] for r in rows if isinstance(r.get("reverse_kl/general"), float)]
    third = max(len(general) // 3, 1)
    first, last = sum(general[:third]) / third, sum(general[-third:]) / third
    assert first > 0.05 and last < 0.6 * first, general


def test_the_adapter_off_teacher_costs_no_more_memory_than_sft(recover_run, sft_run):
    _, summary = recover_run
    _, sft_summary = sft_run
    assert summary["peak_rss_bytes"] <= 1.10 * sft_summary["peak_rss_bytes"]
    assert "no second copy" in summary["teachers"]["general"]


def test_recover_brings_the_run_back_toward_the_base_on_prompts_nothing_trained(recover_run, sft_run):
    """Drift is measured on everyday prompts that neither sft nor recover trains on: recover's distillation from the
    base must pull the run back toward it there too, not only on its own format prompts (the example's round one:
    KL 0.69 -> 0.32 nats per token; knowledge retention 0.56 -> 0.70)."""
    _, summary = recover_run
    sft_drift = summary["eval_before"]["drift"]["kl"]
    assert summary["eval_base"]["drift"]["kl"] == 0.0
    assert sft_drift > 0.05 and summary["eval_after"]["drift"]["kl"] < 0.8 * sft_drift, summary["eval_after"]["drift"]
    assert summary["eval_after"]["knowledge"]["retention"] >= summary["eval_before"]["knowledge"]["retention"]
