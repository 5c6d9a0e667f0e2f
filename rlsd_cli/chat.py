"""`rlsd chat`: talk to a base model or a trained run, streaming tokens as they come."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .chat_format import Message, end_of_turn_ids, render_prompt
from .errors import BadInputError
from .generation import sampling_kwargs
from .model import DEFAULT_MODEL, LoadedModel


@dataclass
class ChatConfig:
    model: str = DEFAULT_MODEL
    quant: str = "auto"
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 means greedy decoding
    system: str | None = None  # None keeps the chat template's own default system prompt

    def __post_init__(self):
        if self.max_new_tokens <= 0:
            raise BadInputError(f"--max-new-tokens must be a positive integer, got {self.max_new_tokens}")
        if not 0 <= self.temperature < float("inf"):  # also NaN
            raise BadInputError(f"--temperature must be 0 (greedy) or a positive number, got {self.temperature}")


def reply(
    loaded: LoadedModel,
    messages: list[Message],
    config: ChatConfig,
    on_text: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Generate the assistant's next turn; `on_text` receives the text as it streams."""
    import torch
    from transformers import TextIteratorStreamer

    tokenizer = loaded.tokenizer
    if config.system is not None and not any(m["role"] == "system" for m in messages):
        messages = [{"role": "system", "content": config.system}, *messages]
    for message in messages:
        try:
            message["content"].encode("utf-8")
        except UnicodeEncodeError:  # bytes that were not UTF-8 reach Python as lone surrogates; a tokenizer refuses them
            raise BadInputError(f"the {message['role']} message is not UTF-8 text (a terminal or pipe in another "
                                "encoding?); pass UTF-8") from None
    prompt = render_prompt(tokenizer, messages)
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(loaded.device)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    output: dict[str, Any] = {}

    def run() -> None:
        # autocast state is per thread, so enter it here rather than around the thread.
        with torch.no_grad(), loaded.autocast(greedy=config.temperature == 0):
            try:
                output["ids"] = loaded.model.generate(
                    **inputs,
                    max_new_tokens=config.max_new_tokens,
                    eos_token_id=end_of_turn_ids(tokenizer),
                    pad_token_id=tokenizer.pad_token_id,
                    streamer=streamer,
                    **sampling_kwargs(config.temperature),
                )
            except BaseException as exc:  # surface in the caller's thread
                output["error"] = exc
                streamer.end()

    started = time.perf_counter()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    for piece in streamer:
        if on_text is not None and piece:
            on_text(piece)
    thread.join()
    if "error" in output:
        raise output["error"]
    seconds = time.perf_counter() - started
    new_ids = output["ids"][0, inputs["input_ids"].shape[1] :]
    text = tokenizer.decode(new_ids, skip_special_tokens=True).strip()
    return {
        "response": text,
        "new_tokens": int(new_ids.numel()),
        "seconds": round(seconds, 3),
        "tokens_per_second": round(new_ids.numel() / seconds, 1) if seconds > 0 else None,
    }
