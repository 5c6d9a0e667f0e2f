"""Answers must not depend on the CPU kind. On CPUs with fast bf16 (AVX512-BF16, AMX) `--quant auto` trains under
bf16 autocast; bf16 moves SmolLM2-135M's logits by up to ~0.25, more than the 0.08 by which 'The' beats 'L' as the
first token of "What is the capital of France?", so a bf16 greedy answer depends on the batch it was computed in
(docs/cpu-precision.md). Greedy decoding therefore runs in fp32 on a CPU. These tests pretend the CPU has fast bf16,
so they check that on every CPU kind (bf16 is emulated, slowly, where the CPU lacks it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import rlsd_cli.model as model_module
from rlsd_cli.chat_format import left_padding, render_prompt
from rlsd_cli.generation import GenerationSettings, generate
from rlsd_cli.model import load_model

pytestmark = pytest.mark.e2e
QUESTIONS = [json.loads(line)["question"] for line in (Path(__file__).parent / "data" / "qa_fictional.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def bf16_model(smollm_dir):
    """The embedded model as `--quant auto` loads it on an AMX or AVX512-BF16 CPU, at one thread (as `make test`'s
    workers and `--num-processes N` run), where the fault was seen."""
    patch = pytest.MonkeyPatch()
    patch.setattr(model_module, "cpu_has_fast_bf16", lambda: True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        loaded = load_model(str(smollm_dir))
        assert loaded.precision.autocast_dtype == "bfloat16"
        yield loaded
    finally:
        torch.set_num_threads(threads)
        patch.undo()


def test_batched_greedy_answers_equal_unbatched_ones(bf16_model):
    conversations = [[{"role": "user", "content": q}] for q in QUESTIONS]
    batched, _ = generate(bf16_model, conversations, GenerationSettings(max_new_tokens=16, batch_size=len(QUESTIONS)))
    alone, _ = generate(bf16_model, conversations, GenerationSettings(max_new_tokens=16, batch_size=1))
    assert [c.text for c in batched] == [c.text for c in alone]
    assert "Paris" in batched[0].text


def test_padded_rows_are_as_exact_as_unpadded_ones_under_bf16(bf16_model):
    """No padded-row defect in the bf16 kernels of this CPU: a left-padded row's log-probs are as far from fp32 as the
    same prompt's alone. (A kernel that mishandled masked keys would put the padded rows far off, not near.)"""
    model, tokenizer = bf16_model.model, bf16_model.tokenizer
    prompts = [render_prompt(tokenizer, [{"role": "user", "content": q}]) for q in QUESTIONS]

    def logps(batch: list[str], bf16: bool) -> list[torch.Tensor]:
        with left_padding(tokenizer), torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            inputs = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False)
            logits = model(**inputs).logits.float()
        pads = (inputs["attention_mask"] == 0).sum(-1)
        return [torch.log_softmax(logits[r, int(pads[r]):], -1) for r in range(len(batch))]

    fp32 = [logps([p], bf16=False)[0] for p in prompts]
    alone = [logps([p], bf16=True)[0] for p in prompts]
    padded = logps(prompts, bf16=True)
    alone_error = [float((a - b).abs().mean()) for a, b in zip(alone, fp32, strict=True)]
    padded_error = [float((a - b).abs().mean()) for a, b in zip(padded, fp32, strict=True)]
    # Measured on an AMD EPYC (bf16 emulated): 0.069-0.079 alone, 0.068-0.085 padded.
    assert max(alone_error) < 0.2
    assert all(p < 2 * a + 0.02 for p, a in zip(padded_error, alone_error, strict=True)), (padded_error, alone_error)
