"""Decoding that drops finished rows from the batch gives transformers' own tokens, on a Llama and a Gemma 3
(sliding-window cache layers)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlsd_cli.chat_format import left_padding
from rlsd_cli.generation import decode_dropping_finished_rows, fast_cpu_sampling, rows_can_leave

PROMPTS = ["Name a colour.", "What is two plus two? Answer in one word, please.", "Hi", "Write a long story about a cat."]


def cut_at_stop(tokens: list[int], stop_ids: set[int]) -> list[int]:
    for position, token in enumerate(tokens):
        if token in stop_ids:
            return tokens[: position + 1]
    return tokens


@pytest.fixture(params=["tiny_model_dir", "tiny_gemma_dir"])
def model_and_batch(request):
    folder = request.getfixturevalue(request.param)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    # The fixtures' initial weights (norms at their neutral value) repeat one token whatever the prompt;
    # random norm weights give every row its own sequence.
    torch.manual_seed(0)
    with torch.no_grad():
        for weights in model.parameters():
            weights.normal_(0, 0.02 if weights.dim() > 1 else 1.0)
    with left_padding(tokenizer):
        batch = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    return model, tokenizer, batch


def stock_greedy(model, tokenizer, batch, max_new_tokens: int) -> list[list[int]]:
    with torch.no_grad():
        output = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=None,
                                pad_token_id=tokenizer.pad_token_id)
    return output[:, batch["input_ids"].shape[1]:].tolist()


def test_greedy_rows_stopping_at_different_steps_match_transformers_and_leave_the_batch(model_and_batch):
    model, tokenizer, batch = model_and_batch
    free_run = stock_greedy(model, tokenizer, batch, 12)
    # Stop tokens chosen from the free run, so rows end at different steps (and the last row never does).
    never = set(free_run[-1])
    stop_ids = {next(t for t in row[1 + 3 * r:] if t not in never) for r, row in enumerate(free_run[:2])}
    expected = [cut_at_stop(row, stop_ids) for row in free_run]
    assert len({len(row) for row in expected}) > 1

    batch_sizes = []
    hook = model.register_forward_pre_hook(lambda _m, _a, kw: batch_sizes.append(kw["input_ids"].shape[0]),
                                           with_kwargs=True)
    try:
        with torch.no_grad():
            ours = decode_dropping_finished_rows(model, batch["input_ids"], batch["attention_mask"], 12, stop_ids, 0.0)
    finally:
        hook.remove()
    assert ours == expected
    assert batch_sizes[0] == len(PROMPTS) and min(batch_sizes) < len(PROMPTS)


def test_sampling_at_a_tiny_temperature_is_greedy_and_a_seed_repeats(model_and_batch):
    model, tokenizer, batch = model_and_batch
    greedy = stock_greedy(model, tokenizer, batch, 8)
    with torch.no_grad():
        cold = decode_dropping_finished_rows(model, batch["input_ids"], batch["attention_mask"], 8, set(), 1e-4)
        torch.manual_seed(3)
        first = decode_dropping_finished_rows(model, batch["input_ids"], batch["attention_mask"], 8, set(), 1.0)
        torch.manual_seed(3)
        again = decode_dropping_finished_rows(model, batch["input_ids"], batch["attention_mask"], 8, set(), 1.0)
    torch.manual_seed(3)
    with torch.no_grad(), fast_cpu_sampling():
        output = model.generate(**batch, max_new_tokens=8, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                                eos_token_id=None, pad_token_id=tokenizer.pad_token_id)
    stock_sampled = output[:, batch["input_ids"].shape[1]:].tolist()
    assert cold == greedy
    assert first == again == stock_sampled and first != greedy


def test_rows_stay_in_a_cache_with_a_layer_that_cannot_drop_them(tiny_model_dir):
    from types import SimpleNamespace

    from transformers import DynamicCache

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        model(input_ids=torch.tensor([[5, 6, 7]]), past_key_values=cache, use_cache=True)
    assert rows_can_leave(cache)
    assert not rows_can_leave(SimpleNamespace(layers=[*cache.layers, object()]))



def test_rl_rollouts_that_drop_finished_rows_are_trls_own(tiny_model_dir, tmp_path):
    """GRPO rollouts through `EvalModeRollouts` (greedy, so both ways draw alike): the same completions as TRL's
    transformers path, each cut after its first end token, and finished rows leave the batch."""
    import contextlib

    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from rlsd_cli.teachers import EvalModeRollouts

    class Rollouts(EvalModeRollouts, GRPOTrainer):
        returns_logprobs = True
        drop_finished_rows = True

        def autocast(self):
            return contextlib.nullcontext()

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    with torch.no_grad():
        for weights in model.parameters():
            weights.normal_(0, 0.02 if weights.dim() > 1 else 1.0)
    args = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, per_device_train_batch_size=4, num_generations=2,
                      max_completion_length=10, top_k=1, report_to="none")
    trainer = Rollouts(model=model, reward_funcs=[lambda completions, **_: [0.0] * len(completions)], args=args,
                       train_dataset=Dataset.from_list([{"prompt": p} for p in PROMPTS]), processing_class=tokenizer)
    prompt_ids = [tokenizer(p)["input_ids"] for p in PROMPTS]
    trainer.drop_finished_rows = False
    free_run, _ = trainer._generate_single_turn(prompt_ids, None, {}, 1)
    never = set(free_run[-1])
    trainer.eos_token_ids = sorted({next(t for t in row[1 + 3 * r:] if t not in never) for r, row in enumerate(free_run[:2])})
    trainer.generation_config.eos_token_id = trainer.eos_token_ids
    stock, _ = trainer._generate_single_turn(prompt_ids, None, {}, 1)
    batch_sizes = []
    hook = model.register_forward_pre_hook(lambda _m, _a, kw: batch_sizes.append(kw["input_ids"].shape[0]),
                                           with_kwargs=True)
    trainer.drop_finished_rows = True
    try:
        ours, logprobs = trainer._generate_single_turn(prompt_ids, None, {}, 1)
    finally:
        hook.remove()
    assert ours == stock and logprobs is None
    assert len({len(row) for row in ours}) > 1 and ours[0][-1] in trainer.eos_token_ids
    assert batch_sizes[0] == len(PROMPTS) and min(batch_sizes) < len(PROMPTS)
