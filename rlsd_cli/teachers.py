"""Teachers that score a student's sampled tokens, and the per-token log-prob pass they share.

Written by hand because no maintained library has them: TRL's DistillationTrainer and GKDTrainer take a
teacher *model* (a second copy of the weights). The teachers here reuse the student's own weights:

- `AdapterOffTeacher`: the student with its LoRA adapter switched off (PEFT `disable_adapter()`), which is
  exactly the original checkpoint: no second copy in memory.
- `SnapshotTeacher`: the student with a second, frozen LoRA adapter active (e.g. the `sft` adapter as it
  was when `recover` started), a few MB instead of a model.
- `ModelTeacher`: a separately loaded model (a larger model, another run, a full-precision base).

A teacher is not an `nn.Module` attribute of the trainer, so Trainer/Accelerate never wrap, save or
optimise it twice; `scoring()` yields the module to run, in eval mode, under no_grad.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from .generation import cache_keyword, eval_mode, position_ids_from_mask


def causal_lm(model) -> Any:
    """The transformers causal LM inside a PeftModel (or the model itself)."""
    from peft import PeftModel

    return model.base_model.model if isinstance(model, PeftModel) else model


def completion_hidden_states(model, input_ids, attention_mask, completion_length: int, autocast=None) -> torch.Tensor:
    """The backbone's last hidden states at the positions that predict the last `completion_length` tokens."""
    context = autocast if autocast is not None else contextlib.nullcontext()
    with context:
        hidden = causal_lm(model).base_model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids_from_mask(attention_mask),
            use_cache=False,
        ).last_hidden_state
    return hidden[:, -completion_length - 1 : -1, :]


def completion_logps(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_length: int,
    autocast=None,
    with_entropy: bool = False,
    chunk_rows: int = 4,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log pi(y_t | prefix) of the last `completion_length` tokens of each row, (B, T), and optionally the
    per-token entropy (no grad).

    The backbone runs under the given autocast (bf16 on a CPU with fast bf16); the LM head and softmax run in
    fp32: a bf16 logit near 20 is rounded to 0.125, a large error next to per-token KLs of ~0.1. Only the
    completion positions are projected, a few rows at a time, so the full (B, L, V) logits never exist.
    `temperature` scores the distribution the tokens were sampled from (TRL divides the student's logits the same way).
    """
    hidden = completion_hidden_states(model, input_ids, attention_mask, completion_length, autocast)
    return logps_from_hidden(model, hidden, input_ids[:, -completion_length:], with_entropy, chunk_rows, temperature)


def shared_prefix_completion_logps(
    model,
    prefix_ids: torch.Tensor,
    prefix_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    autocast=None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """`completion_logps` of [prefix, completion] rows, for a no-grad scorer, with each distinct prefix run once.

    The rollouts of one prompt repeat its prefix (G = 8 samples of a problem share one teacher prompt): the
    distinct prefixes run in one forward, their key/value cache is copied to their rows, and only the completions
    run row by row. A teacher that read 8 x (prompt + answer) tokens reads prompt + 8 x answer.
    """
    keys = [tuple(ids[mask.bool()].tolist()) for ids, mask in zip(prefix_ids, prefix_mask, strict=True)]
    distinct = list(dict.fromkeys(keys))
    if len(distinct) == len(keys):  # nothing shared: one pass is cheaper than two
        logps, _ = completion_logps(model, torch.cat([prefix_ids, completion_ids], 1),
                                    torch.cat([prefix_mask, completion_mask], 1), completion_ids.size(1), autocast,
                                    temperature=temperature)
        return logps
    first = torch.tensor([keys.index(k) for k in distinct], device=prefix_ids.device)
    row_prefix = torch.tensor([distinct.index(k) for k in keys], device=prefix_ids.device)
    backbone = causal_lm(model).base_model
    attention_mask = torch.cat([prefix_mask, completion_mask], 1)
    with autocast if autocast is not None else contextlib.nullcontext():
        prefix = backbone(input_ids=prefix_ids[first], attention_mask=prefix_mask[first],
                          position_ids=position_ids_from_mask(prefix_mask[first]), use_cache=True)
        cache_name = cache_keyword(backbone)
        cache = getattr(prefix, cache_name)
        cache.reorder_cache(row_prefix)  # each row gets its prefix's keys and values
        rest = backbone(input_ids=completion_ids, attention_mask=attention_mask,
                        position_ids=position_ids_from_mask(attention_mask)[:, prefix_ids.size(1):],
                        use_cache=True, **{cache_name: cache})
    # The first completion token is predicted by the prefix's last position, each later one by the token before it.
    hidden = torch.cat([prefix.last_hidden_state[row_prefix, -1:], rest.last_hidden_state[:, :-1]], 1)
    logps, _ = logps_from_hidden(model, hidden, completion_ids, False, 4, temperature)
    return logps


def logps_from_hidden(model, hidden, targets, with_entropy: bool, chunk_rows: int, temperature: float):
    """log-probs (and entropies) of `targets` from the hidden states that predict them, the head in fp32."""
    lm = causal_lm(model)
    head = lm.get_output_embeddings()
    weight = head.weight.float()
    bias = head.bias.float() if getattr(head, "bias", None) is not None else None
    softcap = getattr(lm.config.get_text_config(), "final_logit_softcapping", None)
    logps, entropies = [], []
    for start in range(0, hidden.size(0), chunk_rows):
        logits = F.linear(hidden[start : start + chunk_rows].float(), weight, bias)
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        if temperature != 1.0:
            logits = logits / temperature
        log_norm = torch.logsumexp(logits, dim=-1)
        picked = logits.gather(-1, targets[start : start + chunk_rows].unsqueeze(-1)).squeeze(-1)
        logps.append(picked - log_norm)
        if with_entropy:
            with torch.no_grad():
                log_probs = logits.detach() - log_norm.detach().unsqueeze(-1)
                entropies.append(-(log_probs.exp() * log_probs).sum(-1))
    return torch.cat(logps), (torch.cat(entropies) if with_entropy else None)


class EvalModeRollouts:
    """Mixin for TRL's on-policy trainers (pinned: trl 1.16; it overrides the private `_generate_single_turn`):
    rollouts in eval mode (no dropout: the policy that samples is the policy that is scored; and no bitsandbytes
    training-mode path) under the training autocast, with the fast CPU sampler. The trainer provides
    `self.autocast`; what it returns is TRL's (GRPO's also carries log-probs, None on this path).

    With `drop_finished_rows`, text rollouts sampled at a plain temperature (or greedy) go through
    `decode_dropping_finished_rows`: TRL's transformers path decodes every row until the longest one ends, and
    `reason`'s answers get short as it trains. The draws are the same as TRL's until the first row leaves the
    batch. `recover` keeps TRL's path: its rollouts mostly run to their token limit (the demo's: 51 then 64 tokens
    of 64 on average), and its measured runs stay reproducible."""

    drop_finished_rows = False
    returns_logprobs = False

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, *args, **kwargs):
        from .generation import fast_cpu_sampling

        with eval_mode(self.model), self.autocast(), fast_cpu_sampling():
            if not (self.drop_finished_rows and self._plain_text_sampling(images, multimodal_fields)):
                return super()._generate_single_turn(prompt_ids, images, multimodal_fields, *args, **kwargs)
            completions = self._rollouts_dropping_finished_rows(prompt_ids)
        return (completions, None) if self.returns_logprobs else completions

    def _plain_text_sampling(self, images, multimodal_fields) -> bool:
        config = self.generation_config
        # Under FSDP (or ZeRO-3 without gathered weights) every forward pass is collective: ranks that stopped
        # decoding at different steps would deadlock. transformers' `generate` syncs them (`synced_gpus`).
        collective_forward = self.accelerator.num_processes > 1 and (
            self._dist.is_fsdp or (self._dist.is_zero3 and not self.args.ds3_gather_for_generation))
        return (
            not collective_forward
            and not self.use_vllm
            and not getattr(self, "use_transformers_continuous_batching", False)
            and not multimodal_fields
            and (images is None or all(image is None for image in images))
            and config.top_k in (None, 0, 1)
            and config.top_p in (None, 1.0)
            and config.min_p is None
            and config.repetition_penalty in (None, 1.0)
            and not getattr(config, "suppress_tokens", None)
        )

    def _rollouts_dropping_finished_rows(self, prompt_ids) -> list[list[int]]:
        from trl.models import unwrap_model_for_generation
        from trl.trainer.utils import pad

        from .generation import decode_dropping_finished_rows

        config = self.generation_config
        temperature = config.temperature if config.do_sample and config.top_k != 1 else 0.0
        prompts = [torch.tensor(ids) for ids in prompt_ids]
        input_ids = pad(prompts, padding_value=self._tokenizer.pad_token_id or 0, padding_side="left")
        attention_mask = pad([torch.ones_like(ids) for ids in prompts], padding_value=0, padding_side="left")
        with (
            unwrap_model_for_generation(
                self.model_wrapped,
                self.accelerator,
                gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                generation_kwargs=self.generation_kwargs,
                gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs,
            ) as model,
            torch.no_grad(),
            self._dist.summon_full_params(self.model_wrapped, recurse=False),
        ):
            device = self.accelerator.device
            # Each row ends at its first end token, kept, as TRL's own path keeps it.
            return decode_dropping_finished_rows(model, input_ids.to(device), attention_mask.to(device),
                                                 config.max_new_tokens, self.eos_token_ids, temperature)


class AdapterOffTeacher:
    """The student's weights with the LoRA adapter switched off: the original checkpoint."""

    kind = "base"

    def __init__(self, peft_model):
        self._holder = [peft_model]  # a list, so the student is not registered twice anywhere

    @property
    def model(self):
        return self._holder[0]

    @contextlib.contextmanager
    def scoring(self) -> Iterator[Any]:
        with eval_mode(self.model), self.model.disable_adapter(), torch.no_grad():
            yield self.model

    def describe(self) -> str:
        return "the base weights (the student with its adapter switched off; no second copy)"


class SnapshotTeacher:
    """The student's weights with a frozen extra adapter active instead of the trained one."""

    kind = "snapshot"

    def __init__(self, peft_model, adapter_name: str):
        if adapter_name not in peft_model.peft_config:
            raise ValueError(f"no adapter named {adapter_name!r} on the model")
        self._holder = [peft_model]
        self.adapter_name = adapter_name

    @property
    def model(self):
        return self._holder[0]

    @contextlib.contextmanager
    def scoring(self) -> Iterator[Any]:
        model = self.model
        trained = model.active_adapter
        with eval_mode(model), torch.no_grad():
            model.set_adapter(self.adapter_name, inference_mode=True)
            try:
                yield model
            finally:
                # set_adapter also sets requires_grad: the trained adapter becomes trainable again.
                model.set_adapter(trained)

    def describe(self) -> str:
        return f"the frozen adapter snapshot '{self.adapter_name}'"


class ModelTeacher:
    """A separately loaded model (it costs its own memory)."""

    kind = "model"

    def __init__(self, model, label: str):
        self.model = model
        self.label = label
        model.eval()
        model.requires_grad_(False)

    @contextlib.contextmanager
    def scoring(self) -> Iterator[Any]:
        with torch.no_grad():
            yield self.model

    def describe(self) -> str:
        return f"a separate copy: {self.label}"


class LiveTeacher:
    """The student itself as it is now (no grad, dropout off): RLSD's `--teacher live`."""

    kind = "live"

    def __init__(self, peft_model):
        self._holder = [peft_model]

    @property
    def model(self):
        return self._holder[0]

    @contextlib.contextmanager
    def scoring(self) -> Iterator[Any]:
        with eval_mode(self.model), torch.no_grad():
            yield self.model

    def describe(self) -> str:
        return "the student itself, live"


def copy_adapter_weights(peft_model, source: str, target: str) -> int:
    """Copy adapter `source`'s LoRA weights into adapter `target` (same shapes); returns how many tensors.

    This is the RLSD teacher re-sync: one extra adapter (a few MB) instead of a frozen copy of the model.
    """
    from peft.tuners.lora import LoraLayer

    copied = 0
    with torch.no_grad():
        for module in peft_model.modules():
            if not isinstance(module, LoraLayer) or source not in module.lora_A or target not in module.lora_A:
                continue
            for params in (module.lora_A, module.lora_B):
                params[target].weight.copy_(params[source].weight)
                copied += 1
    return copied
