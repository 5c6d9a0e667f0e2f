"""No wasted groups and a curriculum the model can climb (`rlsd_cli/curriculum.py`), then through `rlsd reason`
on the tiny model."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from conftest import run_cli
from rlsd_cli.configs import REASON_DEVICE_DEFAULTS
from rlsd_cli.curriculum import ProblemCurriculum, concat_rollouts, groups_with_signal
from rlsd_cli.mathgen import write_math_data


def test_groups_with_signal_are_the_ones_whose_rewards_differ():
    rewards = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.5, 0.0])
    assert groups_with_signal(rewards, 3).tolist() == [False, False, True]


def test_draws_follow_the_expected_reward_variance_and_move_up_a_level_as_it_is_learnt():
    curriculum = ProblemCurriculum([1] * 10 + [2] * 10, seed=0)
    # Unseen: every level at p = 1/2, every problem equally likely.
    first = Counter(i for key in range(400) for i in curriculum.draw(2, key))
    assert min(first.values()) > 0.5 * max(first.values())
    for problem in range(10):  # level 1 solved half the time, level 2 never
        curriculum.record(problem, [1.0, 0.0] * 4)
        curriculum.record(10 + problem, [0.0] * 8)
    drawn = Counter(i < 10 for key in range(400) for i in curriculum.draw(2, key))
    assert drawn[True] > 4 * drawn[False]
    assert curriculum.draw(3, key=7) == curriculum.draw(3, key=7)  # same record and key, same draw
    for problem in range(10):  # level 1 now always solved: it falls behind the never-tried half of level 2
        curriculum.record(problem, [1.0] * 40)
    fresh = ProblemCurriculum([1] * 10 + [2] * 10, seed=0)
    fresh.load_state(json.loads(json.dumps(curriculum.state())))
    assert fresh.state() == curriculum.state() and fresh.draw(4, 3) == curriculum.draw(4, 3)
    assert fresh.describe()["1"]["pass_rate"] > 0.9 and fresh.describe()["2"]["pass_rate"] < 0.05


def test_a_problem_never_solved_is_drawn_less_than_an_unseen_one_of_its_level():
    curriculum = ProblemCurriculum([1, 1, 1], seed=0)
    curriculum.record(0, [0.0] * 8)
    curriculum.record(1, [1.0, 0.0, 0.0, 0.0] * 2)
    assert curriculum.weight(0) < curriculum.weight(2)
    uniform = ProblemCurriculum([1, 1, 1], seed=0, by_pass_rate=False)
    uniform.record(0, [0.0] * 8)
    assert uniform.weight(0) == uniform.weight(2)


def test_concat_rollouts_keeps_the_selected_rows_and_pads_each_side_as_trl_does():
    a = {"prompt_ids": torch.tensor([[0, 5], [6, 7]]), "prompt_mask": torch.tensor([[0, 1], [1, 1]]),
         "completion_ids": torch.tensor([[1, 2, 3], [4, 0, 0]]), "completion_mask": torch.tensor([[1, 1, 1], [1, 0, 0]]),
         "advantages": torch.tensor([1.0, -1.0]), "num_items_in_batch": torch.tensor(4)}
    b = {"prompt_ids": torch.tensor([[8, 9, 9]]), "prompt_mask": torch.tensor([[1, 1, 1]]),
         "completion_ids": torch.tensor([[7]]), "completion_mask": torch.tensor([[1]]),
         "advantages": torch.tensor([0.5]), "num_items_in_batch": torch.tensor(1)}
    out = concat_rollouts([(a, torch.tensor([False, True])), (b, torch.tensor([True]))], pad_token_id=0)
    assert out["prompt_ids"].tolist() == [[0, 6, 7], [8, 9, 9]]
    assert out["prompt_mask"].tolist() == [[0, 1, 1], [1, 1, 1]]
    assert out["completion_ids"].tolist() == [[4, 0, 0], [7, 0, 0]]
    assert out["completion_mask"].tolist() == [[1, 0, 0], [1, 0, 0]]
    assert out["advantages"].tolist() == [-1.0, 0.5] and int(out["num_items_in_batch"]) == 2


def test_reason_options_left_unset_take_the_device_defaults_and_set_ones_stay():
    from pathlib import Path

    from rlsd_cli.configs import ReasonConfig

    config = ReasonConfig(data=Path("d"), temperature=0.9)
    assert config.fill_device_defaults("cuda") == {"max_new_tokens": 1024, "lr": 2e-5, "overlong_cache": 256}
    assert (config.temperature, config.max_new_tokens) == (0.9, 1024)
    config = ReasonConfig(data=Path("d"), max_new_tokens=100, overlong_cache=0)  # off stays off
    assert config.fill_device_defaults("cpu") == {"temperature": 0.7, "lr": 5e-4}
    assert (config.max_new_tokens, config.overlong_cache) == (100, 0)
    assert REASON_DEVICE_DEFAULTS["cpu"]["max_new_tokens"] < REASON_DEVICE_DEFAULTS["cuda"]["max_new_tokens"]


def test_reason_refills_steps_with_groups_that_carry_signal(tiny_model_dir, tmp_path):
    """A verifier that gives some problems varying rewards and the others none: groups without signal are
    dropped and the step is refilled, and the record says so."""
    data = tmp_path / "arith"
    write_math_data(data, n=30, seed=0)
    (tmp_path / "half_verifier.py").write_text(
        "calls = []\n"
        "def score(completion, example):\n"
        "    calls.append(1)\n"
        "    return float(int(example['answer']) % 2 == 0 and len(calls) % 2 == 0)\n")
    runs = tmp_path / "runs"
    result = run_cli("reason", "--data", str(data), "--model", str(tiny_model_dir), "--algo", "grpo", "--steps", "3",
                     "--num-generations", "4", "--prompts-per-step", "2", "--max-new-tokens", "6", "--eval-limit", "2",
                     "--verifier", "python:half_verifier:score", "--runs-dir", str(runs), "--name", "dyn", "--json",
                     "--no-forgetting", env_extra={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    rows = [json.loads(x) for x in (runs / "dyn" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "groups/kept_share" in r]
    assert len(steps) == 3
    assert all(r["groups/generated"] >= 2 and r["groups/dropped"] == r["groups/generated"] - 2 * r["groups/kept_share"]
               for r in steps)
    assert sum(r["groups/generated"] for r in steps) > 6  # some step drew more problems than its two
    assert any(r["groups/kept_share"] > 0 for r in steps)
    assert summary["groups_generated"] == sum(r["groups/generated"] for r in steps)
    assert summary["pass_rate_by_level"] and set(summary["pass_rate_by_level"]) <= {"1", "2", "3"}
    record = json.loads((runs / "dyn" / "run.json").read_text())
    assert record["sampling"] == {"curriculum": "pass-rate", "dynamic_sampling_rounds": 2}
    cpu = REASON_DEVICE_DEFAULTS["cpu"]
    # --max-new-tokens was given, so the overlong punishment is a quarter of it: 6 // 4 tokens.
    assert record["device_defaults"] == {"device": "cpu",
                                         "filled": {"temperature": cpu["temperature"], "lr": cpu["lr"], "overlong_cache": 1}}


def test_overlong_punishment_lowers_the_reward_but_not_the_accuracy_or_pass_rates(tmp_path, tiny_model_dir):
    """DAPO's soft overlong punishment is a second reward column: it moves the advantage, while accuracy and the
    curriculum's pass rates count the verifier alone (a long right answer is still right)."""
    data = tmp_path / "arith"
    write_math_data(data, n=12, seed=0)
    (tmp_path / "always_right.py").write_text("def score(completion, example):\n    return 1.0\n")
    runs = tmp_path / "runs"
    common = ["reason", "--data", str(data), "--model", str(tiny_model_dir), "--algo", "grpo", "--steps", "2",
              "--num-generations", "4", "--prompts-per-step", "1", "--max-new-tokens", "8", "--eval-limit", "2",
              "--verifier", "python:always_right:score", "--runs-dir", str(runs), "--json", "--no-forgetting"]
    # The tiny model with an end-of-sequence embedding that often wins: its completions end anywhere in 1-8 tokens.
    stopping = tmp_path / "stopping-model"
    shutil.copytree(tiny_model_dir, stopping)
    model = AutoModelForCausalLM.from_pretrained(stopping)
    with torch.no_grad():
        eos = model.get_input_embeddings().weight[model.config.eos_token_id]
        eos.zero_()
        eos[0] = 10.0
    model.save_pretrained(stopping)
    common[common.index("--model") + 1] = str(stopping)
    result = run_cli(*common, "--overlong-cache", "6", "--name", "long", env_extra={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    steps = [r for r in map(json.loads, (runs / "long" / "metrics.jsonl").read_text().splitlines()) if "reward" in r]
    assert steps and all(r["accuracy"] == 1.0 for r in steps)
    assert all(r["overlong/penalised"] > 0 and r["reward"] < 1.0 for r in steps)  # past 2 tokens, penalised
    assert all(r["reward_std"] > 0 for r in steps)  # the lengths, so the rewards, differ within the group...
    # ...but every verdict is alike: dynamic sampling (DAPO's filter, on accuracy) finds no signal in it.
    assert all(r["groups/zero_std_first"] == 1.0 and r["groups/kept_share"] == 0.0 for r in steps)
    # So every advantage was zero and nothing trained: LoRA's B matrices are still their initial zeros.
    adapter = load_file(runs / "long" / "adapter" / "adapter_model.safetensors")
    lora_b = [t for name, t in adapter.items() if "lora_B" in name]
    assert lora_b and all(not t.any() for t in lora_b)
    levels = summary["pass_rate_by_level"].values()  # (solved + 1) / (tried + 2): every sample counted as solved
    assert levels and all(v["pass_rate"] == round((v["samples"] + 1) / (v["samples"] + 2), 3) for v in levels)
    refused = run_cli(*common, "--overlong-cache", "8", "--name", "bad", env_extra={"PYTHONPATH": str(tmp_path)})
    assert refused.returncode == 2 and "--overlong-cache 8" in refused.stderr and not (runs / "bad").exists()
