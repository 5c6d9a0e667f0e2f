"""`rlsd sft`: example building (pure functions) and the CLI on the tiny random model."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from conftest import run_cli
from rlsd_cli.errors import BadInputError
from rlsd_cli.ingest import read_corpus
from rlsd_cli.sft import (
    PadOrPackCollator,
    SFTConfig,
    chat_example,
    document_chunks,
    mix_in_chat,
    plan,
    sample_chat,
)

DOCS = Path(__file__).parent / "data" / "docs"


@pytest.fixture(scope="module")
def tokenizer(smollm_dir):
    return AutoTokenizer.from_pretrained(smollm_dir)


def test_chunks_are_windows_with_a_masked_source_header_and_overlap(tokenizer, tmp_path):
    (tmp_path / "long.md").write_text("# Long\n" + " ".join(f"word{i}" for i in range(600)))
    corpus = read_corpus(tmp_path)
    chunks = document_chunks(corpus.documents, tokenizer, max_length=128, overlap=16)
    assert len(chunks) > 3
    header = tokenizer("Source: Long (long.md)\n\n", add_special_tokens=False)["input_ids"]
    for chunk in chunks:
        assert len(chunk["input_ids"]) <= 128
        assert chunk["input_ids"][: len(header)] == header
        assert chunk["assistant_masks"][: len(header)] == [0] * len(header) and all(chunk["assistant_masks"][len(header):])
    assert [c["input_ids"][-1] == tokenizer.eos_token_id for c in chunks] == [False] * (len(chunks) - 1) + [True]
    body = [c["input_ids"][len(header):] for c in chunks]
    assert body[0][-16:] == body[1][:16]  # consecutive windows overlap


def test_a_text_repeating_itself_is_not_trained_window_after_window(tokenizer, tmp_path):
    (tmp_path / "same.md").write_text("# Same\n" + "The office dog is named Tjorven. " * 3000)
    chunks = document_chunks(read_corpus(tmp_path).documents, tokenizer, max_length=128, overlap=16)
    windows = [tuple(c["input_ids"]) for c in chunks]
    assert len(windows) == len(set(windows)) and len(windows) < 20  # about 270 windows without the check


def test_chat_examples_train_on_the_answer_only(tokenizer):
    example = chat_example(tokenizer, [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}], 64, "qa")
    kept = [t for t, m in zip(example["input_ids"], example["assistant_masks"], strict=True) if m]
    assert tokenizer.decode(kept) == "A.<|im_end|>"
    assert chat_example(tokenizer, [{"role": "user", "content": "long " * 200}, {"role": "assistant", "content": "A."}], 40, "qa") is None


@pytest.mark.parametrize(("docs", "mix", "chats"), [(70, 0.3, 30), (100, 0.0, 0), (10, 0.5, 10)])
def test_mix_makes_chat_that_fraction_of_the_total(docs, mix, chats):
    assert mix_in_chat(docs, mix) == chats


def test_sample_chat_cycles_a_small_pool_in_a_seeded_order():
    pool = list(range(5))
    drawn = sample_chat(pool, 12, seed=1)
    assert len(drawn) == 12 and sorted(drawn[:5]) == pool and drawn == sample_chat(pool, 12, seed=1)
    assert sample_chat([], 3, 0) == []


def test_plan_counts_and_never_uses_eval_questions(tokenizer):
    config = SFTConfig(docs=DOCS)
    the_plan = plan(config, lambda: tokenizer)
    described = the_plan.describe()
    assert described["documents"] == 10 and described["augmented_pairs"] > 60
    held_out = {json.loads(line)["question"].lower() for line in (DOCS.parent / "docs_qa.jsonl").read_text().splitlines()}
    generated = {p.question.lower() for p in the_plan.qa_pairs}
    assert not held_out & generated
    assert all("____" in p.question for p in the_plan.qa_pairs if p.kind == "cloze")


def test_a_packed_batch_gives_each_example_the_logits_it_gets_padded(tiny_model_dir):
    """A batch of one long and several short examples is packed into one row (less work than padding), a batch
    of equal lengths is padded, and in a packed row every example sees only itself: the same logits as padded."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    collator = PadOrPackCollator(0, model)
    assert collator.packs([255, 61, 72, 74, 77, 80, 80, 160]) and not collator.packs([256] * 8)
    generator = torch.Generator().manual_seed(0)
    lengths = [40, 7, 9, 12]
    examples = [{"input_ids": torch.randint(1, 1000, (n,), generator=generator).tolist()} for n in lengths]
    assert collator.packs(lengths)
    packed, padded = collator(examples), collator.padded(examples)
    assert packed["input_ids"].shape == (1, sum(lengths)) and "attention_mask" not in packed
    with torch.no_grad():
        # No cache, as in training: transformers finds the examples of a packed row only then.
        packed_logits = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False).logits[0]
        padded_logits = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
    starts = [sum(lengths[:i]) for i in range(len(lengths))]
    for row, (start, n) in enumerate(zip(starts, lengths, strict=True)):
        torch.testing.assert_close(packed_logits[start : start + n], padded_logits[row, :n], atol=1e-4, rtol=1e-4)
    # Labels: the first token of each example is not predicted from the one before it (another example's).
    assert (packed["labels"][0, starts] == -100).all()


@pytest.mark.parametrize(
    ("field", "value"),
    [("lr", 0.0), ("batch_size", 0), ("mix", 1.0), ("mix", -0.1), ("max_length", 8), ("lora_r", -1), ("epochs", 0), ("save_every", -1),
     ("eval_limit", 0), ("eval_max_new_tokens", 0)],
)
def test_bad_hyperparameters(field, value):
    with pytest.raises(BadInputError):
        SFTConfig(docs=DOCS, **{field: value})


def _sft(tiny_model_dir, runs, *extra):
    chat = Path(__file__).parent / "data" / "chat_small.jsonl"
    return run_cli("sft", str(DOCS), "--model", str(tiny_model_dir), "--runs-dir", str(runs), "--chat-data", str(chat),
                   "--batch-size", "4", "--max-length", "96", *extra)


def test_cli_run_writes_a_complete_run_folder_and_refuses_to_overwrite(tiny_model_dir, tmp_path):
    runs = tmp_path / "runs"
    result = _sft(tiny_model_dir, runs, "--max-steps", "3", "--name", "tiny", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    run = runs / "tiny"
    assert summary["steps"] == 3 and summary["tokens_trained"] > 0 and summary["peak_rss_bytes"] > 0
    assert summary["examples"]["general-chat"] > 0 and summary["examples"]["chunk"] > 0
    for name in ("run.json", "summary.json", "metrics.jsonl", "adapter/adapter_model.safetensors", "loss.png"):
        assert (run / name).exists(), name
    record = json.loads((run / "run.json").read_text())
    assert record["verb"] == "sft" and record["config"]["max_steps"] == 3 and record["base_model"]["weights_sha256"]
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]

    again = _sft(tiny_model_dir, runs, "--max-steps", "3", "--name", "tiny")
    assert again.returncode == 2 and "exists" in again.stderr
    assert json.loads((run / "summary.json").read_text()) == summary


def _stoppable_sft(tiny_model_dir, runs: Path) -> list[str]:
    chat = Path(__file__).parent / "data" / "chat_small.jsonl"
    return [str(Path(sys.executable).with_name("rlsd")), "sft", str(DOCS), "--model", str(tiny_model_dir), "--runs-dir",
            str(runs), "--chat-data", str(chat), "--batch-size", "2", "--max-length", "64", "--chunk-overlap", "8",
            "--max-steps", "60"]


@pytest.fixture(scope="module")
def uninterrupted_adapter(tiny_model_dir, tmp_path_factory):
    from safetensors.torch import load_file

    runs = tmp_path_factory.mktemp("whole") / "runs"
    whole = subprocess.run([*_stoppable_sft(tiny_model_dir, runs), "--name", "whole"], capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr
    adapter = load_file(runs / "whole" / "adapter" / "adapter_model.safetensors")
    assert any(value.abs().max() > 0 for key, value in adapter.items() if "lora_B" in key)  # it trained
    return adapter


# SIGTERM here; Ctrl-C (SIGINT, the same handler) is the recover stop test's signal.
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM], ids=["sigterm"])
def test_stop_saves_a_checkpoint_and_resume_ends_with_the_uninterrupted_adapter(tiny_model_dir, tmp_path, stop_signal,
                                                                                uninterrupted_adapter):
    from safetensors.torch import load_file

    runs = tmp_path / "runs"
    args = [*_stoppable_sft(tiny_model_dir, runs), "--name", "stop"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = runs / "stop" / "metrics.jsonl"
    deadline = time.time() + 240
    while process.poll() is None and time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 3):
        time.sleep(0.1)
    process.send_signal(stop_signal)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Resume with:" in stderr and "--resume" in stderr
    checkpoints = list((runs / "stop" / "checkpoints").glob("checkpoint-*"))
    assert len(checkpoints) == 1 and (checkpoints[0] / "adapter_model.safetensors").is_file()
    stopped_at = int(checkpoints[0].name.split("-")[1])
    assert 0 < stopped_at < 60
    assert not (runs / "stop" / "adapter").exists()  # a stopped run has no final adapter

    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps == list(range(1, 61))  # resumed right after the checkpointed step, nothing lost or repeated
    resumed_adapter = load_file(runs / "stop" / "adapter" / "adapter_model.safetensors")
    assert resumed_adapter.keys() == uninterrupted_adapter.keys()
    for key, value in uninterrupted_adapter.items():
        torch.testing.assert_close(resumed_adapter[key], value, rtol=1e-4, atol=1e-5, msg=key)


def test_kill_9_at_any_moment_leaves_a_usable_run_that_resumes_to_the_uninterrupted_adapter(tiny_model_dir, tmp_path,
                                                                                          uninterrupted_adapter):
    """SIGKILL gives no chance to clean up. Kill the run twice, each time just as a checkpoint folder appears (so
    mid-save, or a moment after), and check after each kill: no final adapter, the newest complete checkpoint is
    a real one; then --resume twice more ends with the adapter of a run never killed, each step logged once."""
    from safetensors.torch import load_file

    from rlsd_cli.runs import Run
    from rlsd_cli.training import latest_checkpoint

    runs = tmp_path / "runs"
    args = [*_stoppable_sft(tiny_model_dir, runs), "--name", "killed", "--save-every", "7"]
    checkpoints = runs / "killed" / "checkpoints"
    for attempt, (kill_when_step, delay) in enumerate([(14, 0.0), (35, 0.05)]):
        process = subprocess.Popen([*args, *(["--resume"] if attempt else [])], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 300
        while process.poll() is None and time.time() < deadline and not (checkpoints / f"checkpoint-{kill_when_step}").exists():
            time.sleep(0.005)
        time.sleep(delay)
        process.kill()
        process.communicate(timeout=60)
        assert process.returncode == -signal.SIGKILL
        assert not (runs / "killed" / "adapter").exists() and not (runs / "killed" / "summary.json").exists()
        newest = latest_checkpoint(Run(runs / "killed"))
        assert newest is not None and int(newest.name.split("-")[1]) >= kill_when_step - 7
        load_file(newest / "adapter_model.safetensors")  # a complete, readable adapter
    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    steps = [json.loads(line)["step"] for line in (runs / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 61))  # rows of steps redone after a kill are not doubled
    resumed_adapter = load_file(runs / "killed" / "adapter" / "adapter_model.safetensors")
    for key, value in uninterrupted_adapter.items():
        torch.testing.assert_close(resumed_adapter[key], value, rtol=1e-4, atol=1e-5, msg=key)


def _checkpoint(folder, step: int) -> None:
    """The files complete_checkpoint looks at, each readable: an adapter, optimizer state, trainer_state.json."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    save_file({"lora_A": torch.zeros(2, 2)}, folder / "adapter_model.safetensors")
    torch.save({"state": {}, "param_groups": []}, folder / "optimizer.pt")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))


def test_an_incomplete_checkpoint_is_passed_over(tmp_path):
    from rlsd_cli.runs import Run
    from rlsd_cli.training import latest_checkpoint

    run = Run.create("sft", name="torn", root=tmp_path, record={"base_model": {"spec": "x"}})
    for step in (2, 4):
        _checkpoint(run.path / "checkpoints" / f"checkpoint-{step}", step)
    assert latest_checkpoint(run).name == "checkpoint-4"
    (run.path / "checkpoints" / "checkpoint-4" / "trainer_state.json").write_text('{"global_st')  # a kill -9 mid-save
    assert latest_checkpoint(run).name == "checkpoint-2"
    (run.path / "checkpoints" / "checkpoint-2" / "optimizer.pt").unlink()
    assert latest_checkpoint(run) is None


def test_a_checkpoint_whose_files_do_not_open_is_passed_over(tmp_path, capsys):
    """Found by a hostile-input sweep: a checkpoint with a good trainer_state.json but junk weights or optimizer state
    was taken as complete, and --resume stopped on `SafetensorError: header too small`."""
    from rlsd_cli.runs import Run
    from rlsd_cli.training import latest_checkpoint

    run = Run.create("sft", name="junk", root=tmp_path, record={"base_model": {"spec": "x"}})
    _checkpoint(run.path / "checkpoints" / "checkpoint-1", 1)
    damages = {"adapter_model.safetensors": b"junk", "optimizer.pt": b"junk", "scheduler.pt": b"PK\x03\x04 cut short",
               "adapter_config.json": b"[" * 100_000, "trainer_state.json": b"[" * 100_000}
    for step, (name, junk) in enumerate(damages.items(), start=2):
        folder = run.path / "checkpoints" / f"checkpoint-{step}"
        _checkpoint(folder, step)
        (folder / name).write_bytes(junk)
        capsys.readouterr()
        assert latest_checkpoint(run).name == "checkpoint-1", name
        assert f"{folder}: incomplete or damaged checkpoint" in capsys.readouterr().err


def test_model_written_pairs_are_parsed_and_kept_only_when_grounded():
    from rlsd_cli.augment import grounded, parse_model_pairs

    text = "Q: What is the dog called?\nA: Tjorven\nQ: Where is the warehouse?\nA: In Oslo, near the port.\n"
    assert parse_model_pairs(text) == [("What is the dog called?", "Tjorven"), ("Where is the warehouse?", "In Oslo, near the port.")]
    chunk = "The office dog is named Tjorven. The main warehouse is in Ostvik."
    assert grounded("Tjorven", chunk) and not grounded("In Oslo, near the port.", chunk)


def test_cli_augment_model_base_runs(tiny_model_dir, tmp_path):
    result = _sft(tiny_model_dir, tmp_path / "runs", "--max-steps", "1", "--augment-model", "base", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)["general_chat"]["augment_model"]
    assert info["kept"] <= info["proposed"] and info["items"] > 0
