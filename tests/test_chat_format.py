"""Chat rendering and the positional assistant mask, with SmolLM2's real tokenizer and template."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from rlsd_cli.chat_format import (
    IGNORE_INDEX,
    assistant_char_spans,
    labels_from_mask,
    left_padding,
    render_prompt,
    tokenize_conversation,
    validate_messages,
)
from rlsd_cli.errors import BadInputError


@pytest.fixture(scope="module")
def tokenizer(smollm_dir):
    return AutoTokenizer.from_pretrained(smollm_dir)


CONVERSATION = [
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue."},
    {"role": "user", "content": "Another one?"},
    {"role": "assistant", "content": "Green, like grass."},
]


def _masked_text(tokenizer, encoded):
    return tokenizer.decode([t for t, m in zip(encoded["input_ids"], encoded["assistant_masks"], strict=True) if m])


def test_mask_covers_exactly_the_assistant_replies_and_their_end_of_turn(tokenizer):
    encoded = tokenize_conversation(tokenizer, CONVERSATION)
    assert _masked_text(tokenizer, encoded) == "Blue.<|im_end|>Green, like grass.<|im_end|>"


def test_default_system_prompt_is_the_templates_own_and_never_trained_on(tokenizer):
    prompt = render_prompt(tokenizer, CONVERSATION[:1])
    assert prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert prompt.endswith("<|im_start|>assistant\n")
    encoded = tokenize_conversation(tokenizer, CONVERSATION)
    assert "SmolLM" not in _masked_text(tokenizer, encoded)


def test_labels_keep_the_end_of_turn_token_although_it_is_the_pad_token(tokenizer):
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    encoded = tokenize_conversation(tokenizer, CONVERSATION[:2])
    labels = labels_from_mask(encoded["input_ids"], encoded["assistant_masks"])
    kept = [t for t in labels if t != IGNORE_INDEX]
    assert kept[-1] == tokenizer.eos_token_id
    # Masking by pad id instead would have dropped it:
    assert tokenizer.eos_token_id not in [t for t in kept if t != tokenizer.pad_token_id]


def test_spans_do_not_include_the_newline_after_end_of_turn(tokenizer):
    text, spans = assistant_char_spans(tokenizer, CONVERSATION[:2])
    start, end = spans[0]
    assert text[start:end] == "Blue.<|im_end|>"
    assert text[end:] == "\n"


def test_truncation_keeps_mask_aligned(tokenizer):
    encoded = tokenize_conversation(tokenizer, CONVERSATION, max_length=30)
    assert len(encoded["input_ids"]) == len(encoded["assistant_masks"]) == 30


def test_left_padding_is_scoped(tokenizer):
    tokenizer.padding_side = "right"
    with left_padding(tokenizer):
        batch = tokenizer(["a", "a longer prompt here"], padding=True)
        assert batch["attention_mask"][0][0] == 0 and batch["attention_mask"][0][-1] == 1
    assert tokenizer.padding_side == "right"


@pytest.mark.parametrize(
    "bad",
    [[], [{"role": "robot", "content": "x"}], [{"role": "user"}], "hello", [{"role": "user", "content": 3}]],
)
def test_malformed_messages_are_bad_input(bad):
    with pytest.raises(BadInputError):
        validate_messages(bad)
