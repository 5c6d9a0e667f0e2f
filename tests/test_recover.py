"""`rlsd recover`: the teachers, the per-token scoring pass, the prompt schedule, and the CLI on the tiny model."""

from __future__ import annotations

import json
import shutil
import signal
import sys
from pathlib import Path

import pytest
import torch

from conftest import assert_same_adapter, run_cli, stop_when_logged
from rlsd_cli.errors import BadInputError
from rlsd_cli.recover import RecoverConfig, step_prompts, teacher_forced_kl
from rlsd_cli.teachers import (
    AdapterOffTeacher,
    SnapshotTeacher,
    completion_logps,
    eval_mode,
    shared_prefix_completion_logps,
)

DOCS = Path(__file__).parent / "data" / "docs"


@pytest.fixture(scope="module")
def tiny_sft_run(tmp_path_factory, tiny_model_dir) -> Path:
    """An sft run on the tiny model (a few steps: the adapter is trained, not fresh)."""
    runs = tmp_path_factory.mktemp("recover") / "runs"
    result = run_cli("sft", str(DOCS), "--model", str(tiny_model_dir), "--max-steps", "3", "--mix", "0",
                     "--runs-dir", str(runs), "--name", "sft")
    assert result.returncode == 0, result.stderr
    return runs / "sft"


def _batch(tokenizer, texts: list[str], completion: str):
    """Left-padded prompts + the same completion: what a rollout batch looks like."""
    prompt_ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    width = max(map(len, prompt_ids))
    ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(p)) + p + completion_ids for p in prompt_ids])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * (len(p) + len(completion_ids)) for p in prompt_ids])
    return ids, mask, len(completion_ids)


def test_adapter_off_teacher_scores_exactly_like_a_separate_base_copy(tiny_sft_run, tiny_model_dir):
    from rlsd_cli.model import load_model

    student = load_model(str(tiny_sft_run), quant="none", trainable=True)
    base_copy = load_model(str(tiny_model_dir), quant="none")
    ids, mask, length = _batch(student.tokenizer, ["Hello there, how", "A much longer prompt about bicycles and"], " are you today")
    with AdapterOffTeacher(student.model).scoring() as teacher:
        from_toggle, _ = completion_logps(teacher, ids, mask, length)
    with torch.no_grad():
        from_copy, _ = completion_logps(base_copy.model, ids, mask, length)
        from_student, _ = completion_logps(student.model, ids, mask, length)
    # Equal up to float summation order: CPUs without AVX512 may pick different matmul kernels for the two models.
    torch.testing.assert_close(from_toggle, from_copy, rtol=0, atol=1e-5)
    assert (from_student - from_copy).abs().max() > 1e-3  # the adapter is on again, and it was trained
    assert student.model.training  # the scoring pass put the student back in train mode


def test_teacher_forced_kl_to_the_base_counts_answer_tokens_and_vanishes_without_the_adapter(tiny_sft_run):
    from rlsd_cli.chat_format import chat_example
    from rlsd_cli.model import load_model

    student = load_model(str(tiny_sft_run), quant="none", trainable=True)
    chats = [[{"role": "user", "content": "Name a fruit."}, {"role": "assistant", "content": "An apple, often red."}],
             [{"role": "user", "content": "Say hi to the team, please."}, {"role": "assistant", "content": "Hi!"}]]
    examples = [chat_example(student.tokenizer, m, 64, "base-answer") for m in chats]
    width = max(len(e["input_ids"]) for e in examples)
    pad = lambda values: torch.tensor([v + [0] * (width - len(v)) for v in values])  # noqa: E731
    ids = pad([e["input_ids"] for e in examples])
    attention = pad([[1] * len(e["input_ids"]) for e in examples])
    answers = pad([e["assistant_masks"] for e in examples])
    teacher = AdapterOffTeacher(student.model)
    kl = teacher_forced_kl(student.model, teacher, ids, attention, answers)
    assert kl.item() > 1e-4 and kl.requires_grad  # the trained adapter differs from the base, and it learns from it
    kl.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in student.model.named_parameters() if "lora_" in n)
    # Only answer tokens count: a prompt-only mask gives 0 whatever the models say there.
    prompt_only = teacher_forced_kl(student.model, teacher, ids, attention, torch.zeros_like(answers))
    assert prompt_only.item() == 0.0
    with torch.no_grad():
        for name, param in student.model.named_parameters():
            if "lora_B" in name:
                param.zero_()
    assert teacher_forced_kl(student.model, teacher, ids, attention, answers).item() < 1e-6


def test_recover_with_the_base_answers_logs_their_kl_each_step(tiny_sft_run, tiny_model_dir, tmp_path, monkeypatch):
    from rlsd_cli.model import weights_hash
    from rlsd_cli.replay import FACTUAL_INSTRUCTIONS, builtin_instructions, replay_cache_path

    monkeypatch.setenv("RLSD_HOME", str(tmp_path / "home"))
    common = ["recover", "--from", str(tiny_sft_run), "--steps", "2", "--max-new-tokens", "8", "--prompts-per-step", "2",
              "--samples-per-prompt", "2", "--base-answers", "3", "--base-answer-sets", "factual",
              "--runs-dir", str(tmp_path), "--json"]
    cache = replay_cache_path(weights_hash(tiny_model_dir), 128, FACTUAL_INSTRUCTIONS)
    cache.parent.mkdir(parents=True)

    def write_cache(answer):  # the base's cached answers, as generating them would have left them (it is slow)
        cache.write_text("".join(json.dumps({"id": i["id"], "prompt": i["prompt"], "answer": answer(n),
                                             "finished": answer(n) is not None}) + "\n"
                                 for n, i in enumerate(builtin_instructions(FACTUAL_INSTRUCTIONS))))

    # The tiny random model never ends a sentence, so all its answers are dropped: a one-line error, no run left.
    write_cache(lambda n: None)
    refused = run_cli(*common, "--name", "none")
    assert refused.returncode == 2 and "finished no answer" in refused.stderr and not (tmp_path / "none").exists()
    write_cache(lambda n: f"It is answer {n}.")
    result = run_cli(*common, "--name", "b")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["base_answers"]["sets"] == "factual" and summary["base_answers"]["kept"] > 0
    rows = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    kl = [r["base_answers/kl"] for r in rows if "base_answers/kl" in r]
    assert len(kl) == 2 and all(0 < x < 10 for x in kl)
    assert "of the base's own answers (factual) per step" in result.stderr


def test_snapshot_teacher_keeps_the_sft_adapter_while_the_student_moves(tiny_sft_run):
    from rlsd_cli.model import load_model

    student = load_model(str(tiny_sft_run), quant="none", trainable=True)
    ids, mask, length = _batch(student.tokenizer, ["The staff cafeteria is"], " called the Spoke Room")
    with torch.no_grad(), eval_mode(student.model):  # no LoRA dropout
        sft_logps, _ = completion_logps(student.model, ids, mask, length)
    student.model.load_adapter(str(tiny_sft_run / "adapter"), adapter_name="snap", is_trainable=False)
    student.model.set_adapter("default")
    with torch.no_grad():
        for name, param in student.model.named_parameters():
            if "lora_B.default" in name:
                param.add_(0.05)
    with SnapshotTeacher(student.model, "snap").scoring() as teacher:
        snap_logps, _ = completion_logps(teacher, ids, mask, length)
    assert torch.allclose(snap_logps, sft_logps, atol=1e-6)
    assert student.model.active_adapter == "default"
    trainable = {n for n, p in student.model.named_parameters() if p.requires_grad}
    assert trainable and all(".default." in n for n in trainable)


def test_completion_logps_of_a_left_padded_batch_match_each_row_alone(tiny_model_dir):
    from rlsd_cli.model import load_model

    loaded = load_model(str(tiny_model_dir), quant="none")
    texts = ["Short", "A rather longer prompt with many more words in it"]
    ids, mask, length = _batch(loaded.tokenizer, texts, " and then the answer")
    with torch.no_grad():
        batched, entropy = completion_logps(loaded.model, ids, mask, length, with_entropy=True)
        for row, text in enumerate(texts):
            single_ids, single_mask, _ = _batch(loaded.tokenizer, [text], " and then the answer")
            alone, _ = completion_logps(loaded.model, single_ids, single_mask, length)
            assert torch.allclose(batched[row], alone[0], atol=1e-4)
            full = torch.log_softmax(loaded.model(single_ids).logits[0, -length - 1 : -1].float(), -1)
            assert torch.allclose(alone[0], full.gather(-1, single_ids[0, -length:, None]).squeeze(-1), atol=1e-4)
    assert entropy.shape == batched.shape and torch.all(entropy > 0)


def test_shared_prefix_scoring_equals_scoring_every_row_whole(tiny_sft_run):
    """Samples of one prompt share its prefix's forward (and key/value cache); each token's log-prob must be the
    one the whole row gives, for left-padded prompts of different lengths and answers that end early."""
    from rlsd_cli.model import load_model

    loaded = load_model(str(tiny_sft_run), quant="none", trainable=True)  # LoRA on: the adapter must apply to both passes
    tokenizer = loaded.tokenizer
    prompts = [tokenizer("Short", add_special_tokens=False)["input_ids"],
               tokenizer("A rather longer prompt with many more words in it", add_special_tokens=False)["input_ids"]]
    width, rows = max(map(len, prompts)), [0, 1, 0, 1, 1, 0]  # samples of the two prompts, interleaved
    prefix_ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(prompts[r])) + prompts[r] for r in rows])
    prefix_mask = torch.tensor([[0] * (width - len(prompts[r])) + [1] * len(prompts[r]) for r in rows])
    generator = torch.Generator().manual_seed(0)
    completion_ids = torch.randint(100, 1000, (len(rows), 7), generator=generator)
    completion_mask = torch.ones_like(completion_ids)
    completion_mask[1, 3:] = 0  # ended early: the rest is padding
    completion_mask[4, 5:] = 0
    with torch.no_grad(), eval_mode(loaded.model):
        whole, _ = completion_logps(loaded.model, torch.cat([prefix_ids, completion_ids], 1),
                                    torch.cat([prefix_mask, completion_mask], 1), 7)
        shared = shared_prefix_completion_logps(loaded.model, prefix_ids, prefix_mask, completion_ids, completion_mask)
        distinct = shared_prefix_completion_logps(loaded.model, prefix_ids[:2], prefix_mask[:2], completion_ids[:2],
                                                  completion_mask[:2])  # no prefix repeats: the one-pass path
    torch.testing.assert_close(shared * completion_mask, whole * completion_mask, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(distinct, whole[:2], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(whole[0], whole[2], atol=1e-3)  # the rows differ: a swapped cache would show


def test_step_prompts_put_the_keep_fraction_in_every_step_in_a_fixed_order():
    general = [f"g{i}" for i in range(7)]
    keep = [f"k{i}" for i in range(3)]
    rows = step_prompts([general], keep, steps=5, per_step=4, keep_mix=0.5, seed=1)
    assert len(rows) == 20
    for step in range(5):
        kinds = [r["kind"] for r in rows[step * 4 : step * 4 + 4]]
        assert kinds.count("keep") == 2
    assert all(r["prompt"].startswith("k") == (r["kind"] == "keep") for r in rows)
    assert {r["prompt"] for r in rows if r["kind"] == "keep"} == set(keep)  # each pool is walked through
    assert rows == step_prompts([general], keep, steps=5, per_step=4, keep_mix=0.5, seed=1)
    assert all(r["kind"] == "general" for r in step_prompts([general], [], 2, 4, 0.5, 0))


def test_joined_prompt_sets_are_drawn_in_turn_and_walked_through_before_a_repeat():
    small, large = [f"s{i}" for i in range(3)], [f"l{i}" for i in range(9)]
    drawn = [r["prompt"] for r in step_prompts([small, large], [], steps=9, per_step=2, keep_mix=0.0, seed=3)]
    assert [p[0] for p in drawn] == ["s", "l"] * 9  # alike, whatever each set's size
    assert sorted(p for p in drawn if p[0] == "l") == large  # nine draws of nine prompts: each once
    assert all(sorted(drawn[2 * i] for i in range(k, k + 3)) == small for k in (0, 3, 6))


def test_built_in_prompt_sets_are_the_general_format_and_factual_instructions():
    from rlsd_cli.recover import general_prompts
    from rlsd_cli.replay import (
        FACTUAL_INSTRUCTIONS,
        FORMAT_INSTRUCTIONS,
        GENERAL_INSTRUCTIONS,
        builtin_instructions,
    )

    def texts(spec: str) -> list[list[str]]:
        return [[p[0]["content"] for p in prompts] for prompts in general_prompts(spec)[0]]

    general, formats, factual = ([i["prompt"] for i in builtin_instructions(name)]
                                 for name in (GENERAL_INSTRUCTIONS, FORMAT_INSTRUCTIONS, FACTUAL_INSTRUCTIONS))
    assert texts("format") == [formats] and texts("factual") == [factual] and texts("general") == [general]
    assert texts("all") == [general, formats, factual]
    assert texts("format+factual") == [formats, factual]
    assert texts("factual + format+factual") == [factual, formats]  # a set named twice is read once
    assert not set(general) & set(formats) and not set(factual) & (set(general) | set(formats))
    assert general_prompts(RecoverConfig.prompts)[0] == general_prompts("format")[0]  # the default


def test_general_prompts_read_a_file_and_name_the_built_in_sets(tmp_path):
    from rlsd_cli.recover import general_prompts

    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"prompt": "Say hi."}) + "\n")
    assert general_prompts(str(path))[0] == [[[{"role": "user", "content": "Say hi."}]]]
    with pytest.raises(BadInputError, match="general, format, factual, all"):
        general_prompts(str(tmp_path / "missing.jsonl"))
    with pytest.raises(BadInputError, match="'formats' is no built-in set"):
        general_prompts("general+formats")
    with pytest.raises(BadInputError, match="'' is no built-in set"):
        general_prompts("format+")


@pytest.mark.parametrize(("field", "value"), [("keep_mix", 1.0), ("steps", 0), ("method", "dpo"), ("divergence", "jsd"), ("lr", -1.0), ("keep_with", "ewc"),
                                              ("save_every", -2), ("eval_limit", -1)])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(BadInputError):
        RecoverConfig(from_run=Path("runs/x"), **{field: value})


def test_the_self_sft_baseline_records_the_sampled_tokens_it_trains_on():
    assert RecoverConfig(from_run=Path("r")).divergence == "full"
    assert RecoverConfig(from_run=Path("r"), method="sft-self").divergence == "sampled"


def test_recover_cli_writes_a_child_run_with_per_kind_kl(tiny_sft_run, tmp_path):
    # The tiny random model is near-uniform, so its KLs are ~0.01 and noisy: that the KL falls is shown
    # on the embedded model (test_recover_e2e.py) and on a categorical in test_losses.py.
    runs = tmp_path / "runs"
    result = run_cli("recover", "--from", str(tiny_sft_run), "--steps", "3", "--max-new-tokens", "12", "--keep-with", "distill",
                     "--runs-dir", str(runs), "--name", "rec", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["steps"] == 3 and summary["knowledge_prompts"] > 0
    assert isinstance(summary["reverse_kl_first"], float) and summary["mean_length_first"] > 0
    run = runs / "rec"
    record = json.loads((run / "run.json").read_text())
    assert record["parent"] == str(tiny_sft_run.resolve()) and record["verb"] == "recover"
    assert "adapter switched off" in record["teachers"]["general"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all("reverse_kl/general" in r and "reverse_kl/keep" in r for r in rows if "reverse_kl" in r)
    assert (run / "reverse_kl.png").is_file()
    # The saved adapter is the trained one only (the frozen snapshot is not written), and it loads as a model.
    assert (run / "adapter" / "adapter_model.safetensors").is_file() and not (run / "adapter" / "sft_snapshot").exists()
    chat = run_cli("chat", "--model", str(run), "-p", "Hi", "--max-new-tokens", "4")
    assert chat.returncode == 0, chat.stderr


@pytest.mark.parametrize("extra", [["--method", "sft-self"], ["--divergence", "sampled", "--keep-with", "distill"]])
def test_baseline_and_sampled_divergence_run_through_the_same_code(tiny_sft_run, tmp_path, extra):
    result = run_cli("recover", "--from", str(tiny_sft_run), "--steps", "2", "--max-new-tokens", "8", "--prompts-per-step", "2",
                     "--samples-per-prompt", "2", "--runs-dir", str(tmp_path), "--name", "r", "--json", *extra)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["steps"] == 2
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert any(isinstance(r.get("reverse_kl/general"), float) for r in rows)


def test_an_untrained_adapter_is_refused(tiny_sft_run, tmp_path):
    from safetensors.torch import load_file, save_file

    fresh = tmp_path / "fresh"
    shutil.copytree(tiny_sft_run, fresh)
    weights = fresh / "adapter" / "adapter_model.safetensors"
    tensors = {k: (torch.zeros_like(v) if "lora_B" in k else v) for k, v in load_file(weights).items()}
    save_file(tensors, weights)
    result = run_cli("recover", "--from", str(fresh), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2
    assert "untrained" in result.stderr and str(fresh) in result.stderr and "Traceback" not in result.stderr


def test_a_teacher_with_another_tokenizer_is_refused(tiny_sft_run, tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    other = tmp_path / "other"
    shutil.copytree(tiny_model_dir, other)
    tokenizer = AutoTokenizer.from_pretrained(other)
    tokenizer.add_tokens(["<extra_token_for_test>"])
    tokenizer.save_pretrained(other)
    result = run_cli("recover", "--from", str(tiny_sft_run), "--teacher", str(other), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2 and "same tokenizer" in result.stderr


def test_missing_knowledge_prompts_name_the_file_and_the_fix(tiny_sft_run, tmp_path):
    result = run_cli("recover", "--from", str(tiny_sft_run), "--keep-prompts", str(tmp_path / "nope.jsonl"),
                     "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2 and "nope.jsonl" in result.stderr and "--keep-mix 0" in result.stderr


def test_run_records_keep_paths_absolute_so_later_commands_find_them_from_anywhere(monkeypatch, tmp_path):
    from rlsd_cli.training import config_record

    monkeypatch.chdir(tmp_path)
    record = config_record(RecoverConfig(from_run=Path("runs/sft"), eval_qa=Path("qa/held_out.jsonl")))
    assert record["eval_qa"] == [str(tmp_path / "qa" / "held_out.jsonl")] and record["from_run"] == str(tmp_path / "runs" / "sft")


def test_an_older_sft_runs_relative_eval_qa_names_the_record_and_the_fix(tiny_sft_run, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(tiny_sft_run, old)
    record = json.loads((old / "run.json").read_text())
    record["config"]["eval_qa"] = "tests/data/docs_qa.jsonl"  # as typed in the folder the sft run ran in
    (old / "run.json").write_text(json.dumps(record))
    result = run_cli("recover", "--from", str(old), "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(old / "run.json") in result.stderr and "--eval-qa FILE" in result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing left behind


def test_kind_shares_weight_each_kind_by_the_mix_whatever_its_token_count():
    from rlsd_cli.recover import kind_shares

    both = torch.tensor([True, False, False, False])
    step = torch.tensor([5.0, 60.0])
    shares = {kind: (share, rows.tolist(), float(n)) for kind, share, rows, n in kind_shares(both, 0.25, step)}
    assert shares == {"keep": (0.25, [True, False, False, False], 5.0), "general": (0.75, [False, True, True, True], 60.0)}
    only_general = kind_shares(torch.tensor([False, False]), 0.5, torch.tensor([0.0, 9.0]))
    assert [(kind, share) for kind, share, _, _ in only_general] == [("general", 1.0)]
    assert [(kind, share) for kind, share, _, _ in kind_shares(both, 0.0, step)] == [("general", 1.0)]
    # A process whose rows are all general still gives general its share of the step, not the whole loss: the
    # keep prompts of the step are on another process.
    elsewhere = kind_shares(torch.tensor([False, False]), 0.5, torch.tensor([7.0, 9.0]))
    assert [(kind, share, float(n)) for kind, share, _, n in elsewhere] == [("keep", 0.5, 7.0), ("general", 0.5, 9.0)]


def test_the_supervised_anchor_trains_on_the_sft_answers_each_step(tiny_sft_run, tmp_path):
    result = run_cli("recover", "--from", str(tiny_sft_run), "--keep-with", "sft", "--steps", "2", "--max-new-tokens", "8",
                     "--prompts-per-step", "2", "--samples-per-prompt", "2", "--keep-examples-per-step", "4",
                     "--runs-dir", str(tmp_path), "--name", "a", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["keep_with"] == "sft" and "keep" not in summary["teachers"]  # no snapshot adapter is loaded
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    nll = [r["keep/nll"] for r in rows if "keep/nll" in r]
    assert len(nll) == 2 and all(0 < x < 20 for x in nll)
    assert not any("reverse_kl/keep" in r for r in rows)  # every sampled row is a general prompt


def test_anchor_batches_walk_the_whole_pool_in_a_fixed_order():
    from rlsd_cli.recover import anchor_batches

    pool = [{"id": i} for i in range(5)]
    batches = anchor_batches(pool, per_step=2, steps=5, seed=3)
    assert [len(b) for b in batches] == [2] * 5
    first_pass = [e["id"] for b in batches for e in b][:5]
    assert sorted(first_pass) == list(range(5))
    assert batches == anchor_batches(pool, per_step=2, steps=5, seed=3)


def test_anchor_batches_draw_their_share_from_the_newest_round():
    from rlsd_cli.recover import anchor_batches

    older, newest = [{"id": i} for i in range(40)], [{"id": 100 + i} for i in range(3)]
    batches = anchor_batches(older, per_step=8, steps=6, seed=0, newest=newest, newest_share=0.5)
    assert all(sum(e["id"] >= 100 for e in b) == 4 for b in batches)
    assert {e["id"] for b in batches for e in b if e["id"] >= 100} == {100, 101, 102}
    # Without older pairs (a first round's recover, or share 0) the one pool fills every step.
    assert all(len(b) == 8 for b in anchor_batches([], per_step=8, steps=2, seed=0, newest=newest, newest_share=0.5))
    assert anchor_batches(older, 8, 3, 0) == anchor_batches(older, 8, 3, 0, newest=[], newest_share=0.5)
    assert len({e["id"] for b in anchor_batches(older[:2], 8, 3, 0, newest=newest, newest_share=0) for e in b}) == 5


def test_keep_with_sft_needs_answers_and_says_so(tiny_sft_run, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"prompt": "What is the cafeteria called?"}) + "\n")
    result = run_cli("recover", "--from", str(tiny_sft_run), "--keep-with", "sft", "--keep-prompts", str(questions),
                     "--steps", "1", "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2
    assert "q.jsonl:1" in result.stderr and "'answer'" in result.stderr and "--keep-with distill" in result.stderr


def test_stopped_and_resumed_ends_with_the_uninterrupted_adapter(tiny_sft_run, tmp_path):
    """Ctrl-C mid-run, then --resume: the same prompts and samples from the stop on (data position and RNG come
    back from the checkpoint), so the same adapter as a run that was never stopped."""
    runs = tmp_path / "runs"
    args = [str(Path(sys.executable).with_name("rlsd")), "recover", "--from", str(tiny_sft_run), "--steps", "8",
            "--max-new-tokens", "12", "--keep-with", "distill", "--lr", "0.01", "--runs-dir", str(runs)]
    whole = run_cli(*args[1:], "--name", "whole")
    assert whole.returncode == 0, whole.stderr
    returncode, stderr = stop_when_logged([*args, "--name", "stop"], runs / "stop" / "metrics.jsonl", rows=3,
                                          stop_signal=signal.SIGINT)
    assert returncode == 130 and "--resume" in stderr, stderr
    (checkpoint,) = (runs / "stop" / "checkpoints").glob("checkpoint-*")
    assert 0 < int(checkpoint.name.split("-")[1]) < 8
    resumed = run_cli(*args[1:], "--name", "stop", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    steps = [json.loads(x)["step"] for x in (runs / "stop" / "metrics.jsonl").read_text().splitlines()]
    assert [s for s in steps if s > 0] == list(range(1, 9))
    assert_same_adapter(runs / "stop", runs / "whole")
