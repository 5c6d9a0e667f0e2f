"""A second model family: Gemma's turn format (no system role, turns end with <end_of_turn>, which is not its eos)
through the masks, the stop tokens and the training verbs, on a tiny random Gemma 3."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli
from rlsd_cli.chat_format import end_of_turn_ids, render_prompt, tokenize_conversation
from rlsd_cli.model import load_tokenizer

DATA = Path(__file__).parent / "data"
CONVERSATION = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue."},
    {"role": "user", "content": "Another one?"},
    {"role": "assistant", "content": "Green, like grass."},
]


def test_the_end_of_turn_token_becomes_the_eos_and_stops_generation(tiny_gemma_dir):
    tokenizer = load_tokenizer(tiny_gemma_dir)
    assert tokenizer.eos_token == "<end_of_turn>"  # what TRL's rollouts stop at and cut completions by
    assert tokenizer.pad_token == "<pad>" and tokenizer.pad_token_id != tokenizer.eos_token_id
    assert {tokenizer.convert_tokens_to_ids("<end_of_turn>"), tokenizer.convert_tokens_to_ids("<eos>")} <= set(end_of_turn_ids(tokenizer))


def test_the_system_message_is_folded_into_the_first_user_turn(tiny_gemma_dir):
    tokenizer = load_tokenizer(tiny_gemma_dir)
    assert render_prompt(tokenizer, CONVERSATION[:2]) == (
        "<bos><start_of_turn>user\nAnswer briefly.\n\nName a colour.<end_of_turn>\n<start_of_turn>model\n")


def test_mask_covers_the_replies_and_their_end_of_turn_only(tiny_gemma_dir):
    tokenizer = load_tokenizer(tiny_gemma_dir)
    encoded = tokenize_conversation(tokenizer, CONVERSATION)
    masked = [t for t, m in zip(encoded["input_ids"], encoded["assistant_masks"], strict=True) if m]
    assert tokenizer.decode(masked) == "Blue.<end_of_turn>Green, like grass.<end_of_turn>"
    assert encoded["input_ids"].count(tokenizer.bos_token_id) == 1  # the template's, not a second from tokenizing


def test_sft_then_recover_on_a_gemma_model(tiny_gemma_dir, tmp_path):
    runs = tmp_path / "runs"
    sft = run_cli("sft", str(DATA / "docs"), "--model", str(tiny_gemma_dir), "--chat-data", str(DATA / "chat_small.jsonl"),
                  "--max-length", "64", "--chunk-overlap", "8", "--max-steps", "2", "--runs-dir", str(runs), "--name", "g", "--json")
    assert sft.returncode == 0, sft.stderr
    assert json.loads(sft.stdout)["steps"] == 2
    recover = run_cli("recover", "--from", str(runs / "g"), "--steps", "1", "--prompts-per-step", "2", "--samples-per-prompt",
                      "2", "--max-new-tokens", "8", "--runs-dir", str(runs), "--name", "g-rec", "--json")
    assert recover.returncode == 0, recover.stderr
    assert json.loads(recover.stdout)["steps"] == 1


def test_reason_on_a_gemma_model(tiny_gemma_dir, tmp_path):
    """RLSD's teacher sees the problem with its reference solution in Gemma's format (a system-free user turn)."""
    from rlsd_cli.mathgen import write_math_data

    write_math_data(tmp_path / "arith", n=12, seed=0)
    result = run_cli("reason", "--data", str(tmp_path / "arith"), "--model", str(tiny_gemma_dir), "--steps", "1",
                     "--num-generations", "2", "--prompts-per-step", "1", "--max-new-tokens", "8", "--eval-limit", "2",
                     "--runs-dir", str(tmp_path / "runs"), "--name", "r", "--json")
    assert result.returncode == 0, result.stderr
    row = json.loads((tmp_path / "runs" / "r" / "metrics.jsonl").read_text().splitlines()[0])
    assert row["num_tokens"] > 0 and "w/mean" in row


def test_the_loaded_model_stops_at_the_end_of_turn_and_at_its_own_eos(tiny_gemma_dir):
    from rlsd_cli.model import load_model

    loaded = load_model(str(tiny_gemma_dir))
    end, eos = (loaded.tokenizer.convert_tokens_to_ids(t) for t in ("<end_of_turn>", "<eos>"))
    assert loaded.model.generation_config.eos_token_id == [end, eos]
    assert loaded.model.config.eos_token_id == [end, eos]
