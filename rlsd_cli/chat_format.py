"""Chat rendering and loss masks, shared by training, generation and evaluation.

System prompt: when a conversation has no system message we keep whatever the model's own chat
template does (SmolLM2's inserts "You are a helpful AI assistant named SmolLM, trained by Hugging
Face"), because that is the prompt the instruct model was tuned with. Every verb renders through
`render_prompt` / `tokenize_conversation`, so training and evaluation see the same prompt.

Loss mask: SmolLM2's template has no `{% generation %}` markers, so transformers'
`return_assistant_tokens_mask` cannot be used. We find each assistant turn by rendering the conversation
up to that turn and taking the characters the turn adds, then map characters to tokens with the fast
tokenizer's offsets. The mask is positional: pad == eos == `<|im_end|>` in SmolLM2, so masking labels by
pad id would also hide the end-of-turn target and the model would never learn to stop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from .errors import BadInputError

Message = dict[str, str]
ROLES = ("system", "user", "assistant")
IGNORE_INDEX = -100


def validate_messages(messages: Any, where: str = "messages") -> list[Message]:
    if not isinstance(messages, list) or not messages:
        raise BadInputError(f"{where}: expected a non-empty list of {{'role', 'content'}} objects")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES or not isinstance(
            message.get("content"), str
        ):
            raise BadInputError(
                f"{where}[{i}]: each message needs 'role' (system, user or assistant) and a string 'content'"
            )
    turns = [m["role"] for m in messages if m["role"] != "system"]
    if turns and turns[0] != "user":
        raise BadInputError(f"{where}: the conversation opens with an {turns[0]} turn, so that turn answers no "
                            "prompt and could not be trained on; start it with the user's message (after any system "
                            "message), or delete it")
    return messages


def render_prompt(tokenizer, messages: Sequence[Message]) -> str:
    """The text the model continues when it answers the last user turn."""
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)


def render_conversation(tokenizer, messages: Sequence[Message]) -> str:
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=False)


def assistant_char_spans(tokenizer, messages: Sequence[Message]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character span of every assistant reply, end-of-turn included.

    The span stops right after the end-of-turn token: the newline the template puts after it belongs to
    the next turn's framing and is not something the model must produce.
    """
    full = render_conversation(tokenizer, messages)
    eos = tokenizer.eos_token or ""
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render_prompt(tokenizer, messages[:i])
        upto = render_conversation(tokenizer, messages[: i + 1])
        if not full.startswith(before) or not full.startswith(upto) or len(upto) < len(before):
            raise BadInputError(
                "the model's chat template does not render conversations prefix by prefix; "
                "pass training data as plain text instead"
            )
        end = len(upto)
        turn = upto[len(before) :]
        if eos and eos in turn:
            end = len(before) + turn.rindex(eos) + len(eos)
        spans.append((len(before), end))
    return full, spans


def tokenize_conversation(tokenizer, messages: Sequence[Message], max_length: int | None = None) -> dict[str, list[int]]:
    """input_ids plus an assistant mask (1 where the token is part of an assistant reply)."""
    text, spans = assistant_char_spans(tokenizer, messages)
    encoded = tokenizer(
        text,
        add_special_tokens=False,
        return_offsets_mapping=True,
        truncation=max_length is not None,
        max_length=max_length,
    )
    mask = []
    for start, end in encoded["offset_mapping"]:
        inside = any(start >= s and end <= e and end > start for s, e in spans)
        mask.append(1 if inside else 0)
    return {"input_ids": list(encoded["input_ids"]), "assistant_masks": mask}


def chat_example(tokenizer, messages: Sequence[Message], max_length: int, kind: str, source: str = "") -> dict[str, Any] | None:
    """A training example of a conversation (input_ids, assistant mask, what kind it is and where it came from), or
    None when truncation removed every target token."""
    encoded = tokenize_conversation(tokenizer, messages, max_length=max_length)
    if 1 not in encoded["assistant_masks"]:
        return None
    return {**encoded, "kind": kind, "source": source}


def labels_from_mask(input_ids: Sequence[int], mask: Sequence[int]) -> list[int]:
    """Labels for causal-LM loss: the token where the mask is set, IGNORE_INDEX elsewhere (never by pad id)."""
    return [tok if keep else IGNORE_INDEX for tok, keep in zip(input_ids, mask, strict=True)]


@contextlib.contextmanager
def left_padding(tokenizer) -> Iterator[Any]:
    """Batched generation needs prompts flush against the new tokens; training pads on the right."""
    previous = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        yield tokenizer
    finally:
        tokenizer.padding_side = previous


def turn_end_token(tokenizer) -> str | None:
    """The special token the chat template closes an assistant turn with (SmolLM2: <|im_end|>, its eos; Gemma:
    <end_of_turn>, not its eos), or None when the template has none or cannot say."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    try:
        text = render_conversation(tokenizer, [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}])
    except Exception:  # a template that needs more (a system turn, tools): no guess
        return None
    after = text[text.rindex("y") + 1:]
    specials = sorted({*tokenizer.all_special_tokens, *tokenizer.get_added_vocab()}, key=len, reverse=True)
    return next((token for token in specials if token and after.startswith(token)), None)


def end_of_turn_ids(tokenizer) -> list[int]:
    ids = {tokenizer.eos_token_id}
    # <eos>: a Gemma tokenizer's own eos, after load_tokenizer made <end_of_turn> the eos.
    for token in ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<eos>"):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id and token_id >= 0:
            ids.add(token_id)
    return sorted(i for i in ids if i is not None)
