"""`rlsd reason` and `rlsd data math`: the generator, the informed teacher, the trainer's three algorithms on
the tiny model, and the CLI's errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import assert_same_adapter, run_cli, stop_when_logged
from rlsd_cli.errors import BadInputError
from rlsd_cli.mathgen import generate_problems, write_math_data
from rlsd_cli.reason import LEAKAGE, ReasonConfig, training_rows
from rlsd_cli.verifiers import math_reward


def test_generated_problems_are_solved_by_their_own_solutions_and_reproducible(tmp_path):
    problems = generate_problems(60, seed=3, max_steps=3)
    assert [p.prompt for p in problems] == [p.prompt for p in generate_problems(60, seed=3, max_steps=3)]
    assert len({p.prompt for p in problems}) == 60
    assert {p.difficulty for p in problems} == {1, 2, 3}
    for p in problems:
        assert math_reward(p.solution, {"answer": p.answer}) == 1.0
        lines = p.solution.splitlines()
        assert len(lines) == p.difficulty + 1  # one line per operation, then the answer
        value = None
        for line in lines[:-1]:  # every line is correct arithmetic and chains from the previous result
            left, result = line.split(" = ")
            a, op, b = left.split(" ")
            assert value is None or int(a) == value
            value = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b), "/": int(a) // int(b)}[op]
            assert value == int(result) and value > 0
        assert str(value) == p.answer


def test_write_math_data_splits_without_overlap_and_never_overwrites(tmp_path):
    summary = write_math_data(tmp_path / "d", n=50, seed=1, test_fraction=0.2)
    train = [json.loads(x) for x in (tmp_path / "d" / "train.jsonl").read_text().splitlines()]
    test = [json.loads(x) for x in (tmp_path / "d" / "test.jsonl").read_text().splitlines()]
    assert (summary["train"], summary["test"]) == (40, 10) == (len(train), len(test))
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}
    with pytest.raises(BadInputError, match="already exists.*--force"):
        write_math_data(tmp_path / "d", n=50, seed=2)
    assert [json.loads(x) for x in (tmp_path / "d" / "train.jsonl").read_text().splitlines()] == train


def test_training_rows_put_the_hint_only_in_the_teacher_prompt(tmp_path):
    write_math_data(tmp_path / "d", n=10, seed=0)
    rows = training_rows(tmp_path / "d" / "train.jsonl", "solution")
    row = rows[0]
    assert "reference solution" not in row["prompt"][0]["content"]
    assert row["solution"] in row["teacher_prompt"][0]["content"]
    answer_rows = training_rows(tmp_path / "d" / "train.jsonl", "answer")
    assert f"reference solution: {answer_rows[0]['answer']}\n" in answer_rows[0]["teacher_prompt"][0]["content"]


def test_privileged_solution_without_solutions_is_a_clear_error(tmp_path):
    data = tmp_path / "p.jsonl"
    data.write_text(json.dumps({"question": "What is 2 + 3?", "answer": "5"}) + "\n")
    with pytest.raises(BadInputError, match="no 'solution'.*--privileged answer"):
        training_rows(data, "solution")


def test_word_answers_are_refused_only_where_the_math_verifier_scores(tmp_path):
    data = tmp_path / "capitals.jsonl"
    data.write_text('{"prompt": "Capital of France?", "answer": "Paris"}\n{"prompt": "Is 2 even?", "answer": "yes"}\n')
    assert [row["answer"] for row in training_rows(data, "answer", math_verified=False)] == ["Paris", "yes"]
    with pytest.raises(BadInputError, match="capitals.jsonl:1"):
        training_rows(data, "answer", math_verified=True)


def test_leakage_counter_catches_talk_of_a_reference():
    assert LEAKAGE.search("Using the reference solution, the answer is 5.")
    assert not LEAKAGE.search("First, 3 + 2 = 5. Answer: 5")


@pytest.mark.parametrize("field,value", [("algo", "ppo"), ("num_generations", 1), ("lam", 1.5), ("privileged", "hint"), ("temperature", 0.0),
                                         ("teacher", "ema"), ("eval_limit", 0), ("lambda_decay_steps", -1), ("save_every", -1)])
def test_config_rejects_bad_values(field, value, tmp_path):
    with pytest.raises(BadInputError):
        ReasonConfig(data=tmp_path, **{field: value})


def test_adapter_copy_makes_the_teacher_adapter_equal_to_the_student(tiny_model_dir):
    from rlsd_cli.model import LoraSettings, load_model
    from rlsd_cli.teachers import SnapshotTeacher, completion_logps, copy_adapter_weights

    loaded = load_model(str(tiny_model_dir), quant="none", lora=LoraSettings(r=4, alpha=8, dropout=0.0), trainable=True)
    model = loaded.model
    model.add_adapter("informed_teacher", model.peft_config["default"])
    model.set_adapter("default")
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B.default" in name:
                param.normal_(0, 0.5)
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    mask = torch.ones_like(ids)
    teacher = SnapshotTeacher(model, "informed_teacher")
    with torch.no_grad():
        student, _ = completion_logps(model, ids, mask, 3)
    with teacher.scoring() as m:
        stale, _ = completion_logps(m, ids, mask, 3)
    assert (stale - student).abs().max() > 1e-3  # the teacher adapter is still fresh
    assert copy_adapter_weights(model, "default", "informed_teacher") > 0
    with teacher.scoring() as m:
        synced, _ = completion_logps(m, ids, mask, 3)
    assert torch.allclose(synced, student, atol=1e-6)
    assert all(p.requires_grad for n, p in model.named_parameters() if "lora_A.default" in n)
    assert not any(p.requires_grad for n, p in model.named_parameters() if "informed_teacher" in n)


def test_under_autocast_the_student_is_scored_with_an_fp32_head_like_the_teacher(tiny_model_dir):
    """delta = log pi_T - log pi_S: the teacher's LM head runs in fp32, so the student's must too, or delta carries
    the bf16 head's rounding. TRL's fused head is put back in fp32; its log-probs then match an fp32 projection of
    the same backbone output (and a bf16 projection's do not)."""
    from types import SimpleNamespace

    from trl.trainer.utils import add_fused_lm_head

    from rlsd_cli.model import LoraSettings, load_model
    from rlsd_cli.reason import SelfDistilledGRPOTrainer

    loaded = load_model(str(tiny_model_dir), quant="fp32", lora=LoraSettings(r=4, alpha=8, dropout=0.0), trainable=True)
    model, base = loaded.model, loaded.model.get_base_model()
    base.lm_head.weight.data.mul_(40)  # logits of the size a trained model has, where bf16 rounds by ~0.1
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12]])
    mask = torch.ones_like(ids)
    labels = ids.clone()
    labels[:, :4] = -100
    temperature = 0.7

    def scored():
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            return model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True).log_probs[0, 3:].float()

    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        hidden = base.model(input_ids=ids, attention_mask=mask).last_hidden_state[0, 3:-1].float()
    logits = hidden @ base.lm_head.weight.float().T / temperature
    expected = torch.log_softmax(logits, -1).gather(-1, ids[0, 4:, None]).squeeze(-1)

    add_fused_lm_head(base, temperature=temperature, outputs=("log_probs", "entropy"))  # as GRPOTrainer does
    assert (scored() - expected).abs().max() > 1e-3
    SelfDistilledGRPOTrainer._score_student_with_fp32_head(SimpleNamespace(model=model, temperature=temperature))
    assert torch.allclose(scored(), expected, atol=1e-4)
    assert model(input_ids=ids).logits.shape[-1] == base.lm_head.weight.shape[0]  # generation's forward is untouched


@pytest.fixture(scope="module")
def math_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("math") / "arith"
    write_math_data(out, n=24, seed=0)
    return out


@pytest.mark.parametrize("algo", ["rlsd", "grpo", "opsd"])
def test_every_algorithm_trains_through_the_cli_and_logs_its_metrics(algo, math_dir, tiny_model_dir, tmp_path):
    runs = tmp_path / "runs"
    # GRPO also runs a user verifier that raises on every other completion: those score 0 and are counted.
    (tmp_path / "flaky_verifier.py").write_text(
        "calls = []\ndef score(completion, example):\n    calls.append(1)\n"
        "    if len(calls) % 2:\n        raise RuntimeError('boom')\n    return 1.0\n")
    plugin = ["--verifier", "math", "--verifier", "0.5*python:flaky_verifier:score"] if algo == "grpo" else []
    result = run_cli("reason", "--data", str(math_dir), "--model", str(tiny_model_dir), "--algo", algo, "--steps", "2",
                     "--num-generations", "4", "--prompts-per-step", "1", "--max-new-tokens", "12", "--eval-limit", "4",
                     "--teacher-sync-steps", "1", "--runs-dir", str(runs), "--name", algo, "--json", *plugin,
                     env_extra={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    if algo == "grpo":
        assert summary["verifier_failures"] == 4  # 2 steps x 4 completions, every other one raised
        # The other half scored 0.5 * 1.0: training went on with them (the verifier's column; "reward" also holds
        # the overlong punishment).
        assert all(r["rewards/verifier/mean"] >= 0.25
                   for r in map(json.loads, (runs / algo / "metrics.jsonl").read_text().splitlines()) if "reward" in r)
    assert summary["steps"] == 2 and "accuracy" in summary["eval_before"] and "accuracy" in summary["eval_after"]
    rows = [json.loads(x) for x in (runs / algo / "metrics.jsonl").read_text().splitlines()]
    keys = set().union(*rows)
    assert {"reward", "accuracy", "leakage", "entropy_mean"} <= keys
    expected = {"rlsd": {"w/mean", "w/p10", "w/p90", "clip_fraction", "lambda"}, "grpo": {"clip_fraction", "lambda"},
                "opsd": {"reverse_kl"}}[algo]
    assert expected <= keys, keys
    if algo == "grpo":
        assert all(r.get("lambda", 0.0) == 0.0 for r in rows)
    adapter = runs / algo / "adapter"
    assert (adapter / "adapter_config.json").is_file()
    assert not (adapter / "informed_teacher").exists()  # PEFT saves every extra adapter in a subfolder
    assert summary["curve"] == str(runs / algo / "training.png") and (runs / algo / "training.png").stat().st_size > 0


def test_missing_training_file_names_the_fix(tmp_path, tiny_model_dir):
    (tmp_path / "empty").mkdir()
    result = run_cli("reason", "--data", str(tmp_path / "empty"), "--model", str(tiny_model_dir))
    assert result.returncode == 2
    assert "no train.jsonl" in result.stderr and "rlsd data math" in result.stderr


def test_stopped_and_resumed_ends_with_the_uninterrupted_adapter_and_teacher(math_dir, tiny_model_dir, tmp_path):
    """SIGTERM mid-run, then --resume: same sampled rollouts (RNG restored), same informed-teacher snapshot
    (restored from the checkpoint, not re-synced from the resumed student), so the same final adapter as a run
    that was never stopped."""
    runs = tmp_path / "runs"
    sync = 3
    args = [str(Path(sys.executable).with_name("rlsd")), "reason", "--data", str(math_dir), "--model", str(tiny_model_dir),
            "--steps", "8", "--num-generations", "4", "--prompts-per-step", "1", "--max-new-tokens", "12",
            "--eval-limit", "2", "--teacher-sync-steps", str(sync), "--lr", "0.02", "--runs-dir", str(runs),
            # OPSD: every token's signal comes from the teacher snapshot, so a wrongly restored one shows (the
            # random tiny model earns no math reward, and RLSD's clipped weights would hide a small difference).
            "--algo", "opsd"]
    whole = subprocess.run([*args, "--name", "whole"], capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr
    metrics = runs / "stop" / "metrics.jsonl"
    # Caught in step 5 and stopped after it: the teacher in use then is the snapshot taken at step 3; a resume
    # that re-synced it from the step-5 student would train differently.
    returncode, stderr = stop_when_logged([*args, "--name", "stop"], metrics, rows=4, freeze=True)
    assert returncode == 130, stderr
    (checkpoint,) = (runs / "stop" / "checkpoints").glob("checkpoint-*")
    stopped_at = int(checkpoint.name.split("-")[1])
    assert 3 < stopped_at < 8 and stopped_at % sync, f"stopped at step {stopped_at}: the test needs a stop between syncs"
    resumed = subprocess.run([*args, "--name", "stop", "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert [json.loads(x)["step"] for x in metrics.read_text().splitlines()] == list(range(1, 9))
    assert_same_adapter(runs / "stop", runs / "whole")
