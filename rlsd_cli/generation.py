"""Batched generation with the model's chat template: evaluation now, rollouts for training later.

Prompts are sorted by length before batching (less left padding), generated with left padding, stopped at
end-of-turn, and returned in the caller's order.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .chat_format import Message, end_of_turn_ids, left_padding, render_prompt
from .console import Progress
from .errors import BadInputError

_torch_multinomial: list = []  # torch's own, saved on first use (torch is imported lazily)


def inverse_cdf_multinomial(probs, num_samples: int = 1, replacement: bool = False, *, generator=None, out=None):
    """One sample per row of `probs` by inverse-CDF: exact, and on a CPU much faster than torch.multinomial
    over a 49k vocabulary (`benchmarks/cpu_sampling.py`: 1.6 vs 29 ms for 16 rows here). Other calls go to torch."""
    import torch

    if num_samples != 1 or out is not None or probs.dim() != 2 or probs.device.type != "cpu":
        return (_torch_multinomial[0] if _torch_multinomial else torch.multinomial)(probs, num_samples, replacement, generator=generator, out=out)
    cdf = probs.float().cumsum(-1)
    u = torch.rand(probs.size(0), 1, generator=generator, dtype=cdf.dtype) * cdf[:, -1:]
    # right=True: u == cdf[i] goes past i, so a zero-probability token (a flat step) is never chosen.
    return torch.searchsorted(cdf, u, right=True).clamp_(max=probs.size(-1) - 1)


@contextlib.contextmanager
def fast_cpu_sampling() -> Iterator[None]:
    """transformers samples each token with torch.multinomial, slow on a CPU over SmolLM2's 49k vocabulary
    (paid once per generated token). Swap in the inverse-CDF sampler while generating."""
    import torch

    if torch.multinomial is inverse_cdf_multinomial:  # already inside
        yield
        return
    if not _torch_multinomial:
        _torch_multinomial.append(torch.multinomial)
    torch.multinomial = inverse_cdf_multinomial
    try:
        yield
    finally:
        torch.multinomial = _torch_multinomial[0]


def sampling_kwargs(temperature: float) -> dict[str, Any]:
    """Greedy at 0; otherwise plain sampling at that temperature. transformers applies top_k=50 unless
    told otherwise, which would no longer sample the model's own distribution."""
    if temperature == 0:
        return {"do_sample": False, "temperature": None, "top_k": None, "top_p": None}
    return {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}


@dataclass
class GenerationSettings:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy
    batch_size: int = 16

    def __post_init__(self):
        if self.max_new_tokens <= 0:
            raise BadInputError(f"--max-new-tokens must be a positive integer, got {self.max_new_tokens}")
        if self.batch_size <= 0:
            raise BadInputError(f"--batch-size must be a positive integer, got {self.batch_size}")
        if not 0 <= self.temperature < float("inf"):  # also NaN
            raise BadInputError(f"--temperature must be 0 (greedy) or a positive number, got {self.temperature}")


@dataclass
class Completion:
    text: str
    new_tokens: int
    finished: bool  # reached end-of-turn before max_new_tokens


@dataclass
class GenerationStats:
    items: int
    new_tokens: int
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {
            "items": self.items,
            "new_tokens": self.new_tokens,
            "seconds": round(self.seconds, 2),
            "tokens_per_second": round(self.tokens_per_second, 1),
        }


@contextlib.contextmanager
def eval_mode(model) -> Iterator[None]:
    """Dropout off for a scoring pass, then the previous mode back: a model just trained is left in training mode."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        if was_training:
            model.train()


def position_ids_from_mask(attention_mask):
    """Positions that match `generate` on a left-padded batch: count only real tokens."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def cache_keyword(model) -> str:
    """transformers renamed `past_key_values` to `cache` during 5.x; take whichever this version has."""
    forward = (model.get_base_model() if hasattr(model, "get_base_model") else model).forward
    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"


# The cache layers whose `batch_select_indices` selects everything they hold. Others (linear attention's
# recurrent state) keep their rows: their batch decodes to its end, as with `generate`.
DROPPABLE_CACHE_LAYERS = ("DynamicLayer", "DynamicSlidingWindowLayer", "DummyLayer")


def rows_can_leave(cache) -> bool:
    return all(type(layer).__name__ in DROPPABLE_CACHE_LAYERS for layer in cache.layers)


# A batch drops its finished rows once this share of them has finished (each drop copies the key/value cache).
DROP_FINISHED_SHARE = 0.25


def decode_dropping_finished_rows(model, input_ids, attention_mask, max_new_tokens: int, stop_ids, temperature: float) -> list[list[int]]:
    """Greedy or plain-temperature decoding of a left-padded batch that drops rows as they finish.

    transformers' `generate` computes every row of a batch until its longest row ends: on a CPU a finished row
    costs as much as a live one, and most answers end long before the longest. Its continuous batching
    (`generate_batch`) does drop them but ran 2x slower than `generate` on a CPU here (73 QA prompts, 2026-12-07,
    docs in benchmarks/RESULTS.md). So this loop keeps transformers' model, cache and masks and only removes the
    finished rows from the batch and its `DynamicCache` (`batch_select_indices`). Returns each row's new tokens,
    ending with its stop token when it stopped."""
    import torch
    from transformers import DynamicCache

    stop = torch.tensor(sorted(stop_ids))
    cache = DynamicCache(config=model.config)
    position_ids = position_ids_from_mask(attention_mask)
    cache_name = cache_keyword(model)
    rows = torch.arange(input_ids.shape[0])
    tokens: list[list[int]] = [[] for _ in range(input_ids.shape[0])]
    finished = torch.zeros(len(rows), dtype=torch.bool, device=input_ids.device)
    kept_at_last_drop = len(rows)
    step_input = input_ids
    for step in range(max_new_tokens):
        logits = model(
            input_ids=step_input, attention_mask=attention_mask, position_ids=position_ids, use_cache=True, logits_to_keep=1,
            **{cache_name: cache},
        ).logits[:, -1].float()
        if temperature == 0:
            next_tokens = logits.argmax(-1)
        else:
            next_tokens = inverse_cdf_multinomial(torch.softmax(logits / temperature, -1)).squeeze(-1)
        for row, token, done in zip(rows.tolist(), next_tokens.tolist(), finished.tolist(), strict=True):
            if not done:
                tokens[row].append(token)
        finished |= torch.isin(next_tokens, stop.to(next_tokens.device))
        if step == max_new_tokens - 1 or finished.all():
            break
        if (~finished).sum() <= (1 - DROP_FINISHED_SHARE) * kept_at_last_drop and rows_can_leave(cache):
            keep = (~finished).nonzero().squeeze(-1)
            cache.batch_select_indices(keep)
            rows, next_tokens, attention_mask, position_ids = rows[keep.cpu()], next_tokens[keep], attention_mask[keep], position_ids[keep]
            finished = finished[keep]
            kept_at_last_drop = len(rows)
        # A finished row still in the batch decodes on until it is dropped; what it writes is not kept.
        step_input = next_tokens[:, None]
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(rows), 1))], dim=-1)
        position_ids = position_ids[:, -1:] + 1
    return tokens


def generate(
    loaded,
    conversations: Sequence[Sequence[Message]],
    settings: GenerationSettings,
    progress_label: str = "generating",
) -> tuple[list[Completion], GenerationStats]:
    import torch

    tokenizer = loaded.tokenizer
    model = loaded.model
    prompts = [render_prompt(tokenizer, messages) for messages in conversations]
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])
    stop_ids = end_of_turn_ids(tokenizer)
    results: list[Completion | None] = [None] * len(prompts)
    new_tokens = 0
    was_training = model.training
    model.eval()
    started = time.perf_counter()
    with Progress(len(prompts), progress_label) as progress, left_padding(tokenizer):
        for start in range(0, len(order), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            inputs = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False)
            inputs = inputs.to(loaded.device)
            with torch.no_grad(), loaded.autocast(greedy=settings.temperature == 0):
                generated = decode_dropping_finished_rows(
                    model, inputs["input_ids"], inputs["attention_mask"], settings.max_new_tokens, stop_ids, settings.temperature
                )
            for row, index in enumerate(batch):
                ids = generated[row]
                finished = bool(ids) and ids[-1] in stop_ids
                if finished:
                    ids = ids[:-1]
                results[index] = Completion(
                    text=tokenizer.decode(ids, skip_special_tokens=True).strip(),
                    new_tokens=len(ids) + (1 if finished else 0),
                    finished=finished,
                )
                new_tokens += results[index].new_tokens
            progress.advance(len(batch))
    if was_training:
        model.train()
    stats = GenerationStats(items=len(prompts), new_tokens=new_tokens, seconds=time.perf_counter() - started)
    return [r for r in results if r is not None], stats


def teacher_forced_batches(loaded, examples: Sequence[tuple[list[int], list[int]]], batch_size: int = 16):
    """Batches for scoring given answers in one forward pass each (drift, fact retention): `examples` are
    (prompt ids, answer ids). Similar lengths go together, left-padded so every answer ends at the last position,
    and logits are kept for the answer positions only (the vocabulary projection of the prompt positions was a
    fifth of the work). Yields the batch's indices into `examples`, the model's inputs, and per row the slice of
    the kept logits that predicts its answer's tokens, one position per answer token."""
    import torch

    order = sorted(range(len(examples)), key=lambda i: len(examples[i][0]) + len(examples[i][1]))
    pad = loaded.tokenizer.pad_token_id
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        width = max(len(examples[i][0]) + len(examples[i][1]) for i in batch)
        keep = max(len(examples[i][1]) for i in batch) + 1
        ids = torch.tensor([[pad] * (width - len(p) - len(a)) + p + a for p, a in (examples[i] for i in batch)],
                           device=loaded.device)
        mask = torch.tensor([[0] * (width - len(p) - len(a)) + [1] * (len(p) + len(a)) for p, a in (examples[i] for i in batch)],
                            device=loaded.device)
        inputs = {"input_ids": ids, "attention_mask": mask, "position_ids": (mask.cumsum(-1) - 1).clamp(min=0),
                  "logits_to_keep": keep}
        # The last `keep` positions are kept; position t predicts token t + 1, so an answer's predictions are the
        # `len(answer)` positions before the last one.
        yield batch, inputs, [slice(keep - 1 - len(examples[i][1]), keep - 1) for i in batch]
