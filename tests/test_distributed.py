"""Several processes through Accelerate (`rlsd --num-processes 2`, gloo on the CPU): the same global batch gives
the adapter one process gives, rank 0 alone writes the run, and each step is logged once."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import assert_same_adapter, run_cli, stop_when_logged

DOCS = Path(__file__).parent / "data" / "docs"
CHAT = Path(__file__).parent / "data" / "chat_small.jsonl"
TWO = {"OMP_NUM_THREADS": "1"}  # a core each
# fp32 on every CPU kind: under bf16 autocast (--quant auto on AMX or AVX512-BF16 CPUs) one process's batch of 4 and
# two processes' batches of 2 round differently, so only fp32 can give the same adapter to 1e-4.
EXACT = ("--quant", "fp32")


def _steps(run: Path) -> list[int]:
    return [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_process_sft_and_recover(tiny_model_dir, tmp_path):
    runs = tmp_path / "runs"
    # LoRA dropout off: its masks come from each process's own random stream, so with it on two processes
    # cannot reproduce one process's gradients; everything else must match.
    common = ["sft", str(DOCS), "--model", str(tiny_model_dir), "--chat-data", str(CHAT), "--max-length", "64",
              "--chunk-overlap", "8", "--max-steps", "4", "--lr", "0.01", "--lora-dropout", "0", "--runs-dir", str(runs),
              "--json", *EXACT]
    one = run_cli(*common, "--batch-size", "4", "--name", "one")
    assert one.returncode == 0, one.stderr
    # Two processes, stopped by SIGTERM to the launching `rlsd` after the first step and resumed: every worker
    # stops after the same step, rank 0 saves the checkpoint, and the resumed run ends with the one-process adapter.
    rlsd = str(Path(sys.executable).with_name("rlsd"))
    two_args = [rlsd, "--num-processes", "2", *common, "--batch-size", "2", "--name", "two"]
    code, stderr = stop_when_logged(two_args, runs / "two" / "metrics.jsonl", rows=1, env_extra=TWO)
    assert code == 130 and "--num-processes 2 sft" in stderr and stderr.count("rlsd: error:") == 1, stderr
    assert list((runs / "two" / "checkpoints").glob("checkpoint-*")), stderr
    two = run_cli("--num-processes", "2", *common, "--batch-size", "2", "--name", "two", "--resume", env_extra=TWO)
    assert two.returncode == 0, two.stderr
    assert len(two.stdout.strip().splitlines()) == 1  # one summary, from rank 0
    assert json.loads(two.stdout)["tokens_trained"] == json.loads(one.stdout)["tokens_trained"]  # both ranks counted
    assert sorted(p.name for p in runs.iterdir()) == ["one", "two"]
    assert _steps(runs / "two") == [1, 2, 3, 4]
    assert_same_adapter(runs / "two", runs / "one")

    # recover with greedy rollouts (--top-k 1: the same samples whatever the process count). Each step's 4 prompts
    # are 1 document prompt and 3 general ones (--keep-mix 0.25): one process gets the document prompt and a
    # general one, the other two general ones. Each kind's token mean must still be over the whole step, so the
    # run ends with the one-process adapter and logs the one-process KL (checked to fail with per-process means).
    rec = ["recover", "--from", str(runs / "one"), "--steps", "2", "--prompts-per-step", "4", "--samples-per-prompt", "2",
           "--keep-mix", "0.25", "--keep-with", "distill", "--top-k", "1", "--max-new-tokens", "8", "--lr", "0.01",
           "--runs-dir", str(runs), "--json", *EXACT]
    for divergence in ("sampled", "full"):  # the sampled-token policy gradient, and the full-vocabulary loss
        one_name, two_name = f"rec-one-{divergence}", f"rec-two-{divergence}"
        rec_one = run_cli(*rec, "--divergence", divergence, "--name", one_name)
        assert rec_one.returncode == 0, rec_one.stderr
        rec_two = run_cli("--num-processes", "2", *rec, "--divergence", divergence, "--name", two_name, env_extra=TWO)
        assert rec_two.returncode == 0, rec_two.stderr
        assert json.loads(rec_two.stdout)["steps"] == 2 and _steps(runs / two_name) == [1, 2]
        # Adam turns float noise in a near-zero gradient into a visible step: two processes sum each gradient in
        # another order, and on a 2-core Intel Xeon (2026-12-04) one lora_B element of 0.02 moved differed by 2e-5
        # (same rollouts, same logged KL). Per-process token means, the bug this guards against, differ by 4e-2.
        assert_same_adapter(runs / two_name, runs / one_name, rtol=1e-3, atol=1e-4)
        logged = [[json.loads(x) for x in (runs / r / "metrics.jsonl").read_text().splitlines()] for r in (one_name, two_name)]
        for key in ("reverse_kl", "reverse_kl/keep", "reverse_kl/general"):
            assert [row[key] for row in logged[1]] == pytest.approx([row[key] for row in logged[0]], rel=1e-3, abs=1e-5), (divergence, key)
    assert sorted(p.name for p in runs.iterdir()) == ["one", "rec-one-full", "rec-one-sampled", "rec-two-full", "rec-two-sampled", "two"]
    uneven = run_cli("--num-processes", "2", *rec, "--prompts-per-step", "3", "--samples-per-prompt", "1", "--name", "odd",
                     env_extra=TWO)
    assert uneven.returncode == 2 and "divide evenly" in uneven.stderr, uneven.stderr


def test_a_bad_flag_under_several_processes_is_still_one_line_and_exit_2(tmp_path):
    result = run_cli("--num-processes", "2", "sft", str(DOCS), "--chunk-overlap", "999", "--runs-dir", str(tmp_path))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlsd: error:") and "--chunk-overlap" in lines[0], result.stderr


def test_two_process_reason_logs_each_step_once(tiny_model_dir, tmp_path):
    from rlsd_cli.mathgen import write_math_data

    write_math_data(tmp_path / "arith", n=24, seed=0)
    runs = tmp_path / "runs"
    result = run_cli("--num-processes", "2", "reason", "--data", str(tmp_path / "arith"), "--model", str(tiny_model_dir),
                     "--steps", "2", "--num-generations", "4", "--prompts-per-step", "2", "--max-new-tokens", "8",
                     "--eval-limit", "2", "--runs-dir", str(runs), "--name", "rs", "--json", env_extra=TWO)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["steps"] == 2 and _steps(runs / "rs") == [1, 2]
    rows = [json.loads(x) for x in (runs / "rs" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["num_tokens"] > 0 and "w/mean" in r for r in rows)


def test_vllm_generation_without_vllm_installed_is_a_clear_error(tmp_path):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    for verb in (["reason", "--data", str(tmp_path)], ["recover", "--from", str(tmp_path)]):
        result = run_cli(*verb, "--generation", "vllm")
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and "rlsd[vllm]" in lines[0], result.stderr
    result = run_cli("reason", "--data", str(tmp_path), "--generation", "tgi")
    assert result.returncode == 2 and "--generation 'tgi': choose one of transformers, vllm" in result.stderr
