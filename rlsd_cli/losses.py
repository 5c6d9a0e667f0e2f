"""Training losses as pure functions of tensors: per-token log-probs in, a scalar loss and its statistics out.

Every tensor is (B, T) over completion tokens; `mask` is 1 on tokens that count. No function here touches
a model, so each one has its own unit tests (tests/test_losses.py).
"""

from __future__ import annotations

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def sampled_reverse_kl(student_logps: torch.Tensor, teacher_logps: torch.Tensor) -> torch.Tensor:
    """Per-token estimate of KL(student || teacher) on the student's own samples: log pi_S(y_t) - log pi_T(y_t).

    Its expectation over y_t ~ pi_S is the reverse KL; a single token's value can be negative.
    """
    return student_logps - teacher_logps


def on_policy_distillation_loss(
    student_logps: torch.Tensor,
    sampler_logps: torch.Tensor,
    teacher_logps: torch.Tensor,
    mask: torch.Tensor,
    normalizer: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Reverse KL to the teacher through its sampled-token estimator, as a per-token advantage.

    A_t = -(log pi_sampler(y_t) - log pi_T(y_t)), no discount (each token is its own reward), and an
    importance-sampled policy gradient L = -sum_t exp(log pi_theta - log pi_sampler) * A_t / normalizer
    (the Thinking Machines / tinker-cookbook recipe). When the sampler is the current policy the ratio is 1
    in value and the gradient is sum_t A_t * grad log pi_theta(y_t). `normalizer` defaults to the number of
    counted tokens (token-mean).
    """
    advantages = -(sampler_logps - teacher_logps).detach()
    ratio = torch.exp(student_logps - sampler_logps.detach())
    per_token = -ratio * advantages * mask.to(student_logps.dtype)
    if normalizer is None:
        normalizer = mask.sum().clamp(min=1.0)
    return per_token.sum() / normalizer


def self_sft_loss(student_logps: torch.Tensor, mask: torch.Tensor, normalizer: torch.Tensor | float | None = None) -> torch.Tensor:
    """Supervised loss on the model's own samples (the `--method sft-self` baseline): token-mean NLL."""
    if normalizer is None:
        normalizer = mask.sum().clamp(min=1.0)
    return -(student_logps * mask.to(student_logps.dtype)).sum() / normalizer


# ---------------------------------------------------------------- RLSD / GRPO (rlsd reason)


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-6) -> torch.Tensor:
    """GRPO's advantage: A_i = (r_i - mean_group r) / (std_group r + eps), groups of `group_size` consecutive
    completions of one prompt; std is the unbiased one, as in the RLSD release. A group with equal rewards gets 0."""
    grouped = rewards.view(-1, group_size).float()
    mean = grouped.mean(dim=1, keepdim=True)
    std = grouped.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(mean)
    return ((grouped - mean) / (std + eps)).view(-1)


def rlsd_token_weights(delta: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """w_t = exp(sign(A) * delta_t), delta_t = log pi_T(y_t) - log pi_S(y_t) with the teacher shown the answer.

    For A > 0 the tokens the informed teacher prefers get more credit; for A < 0 the ratio is inverted, so
    tokens it disfavours take more blame. Always > 0: the weight scales, it never flips the update.
    """
    return torch.exp(torch.sign(advantages.detach()).unsqueeze(-1) * delta.detach())


def rlsd_advantages(advantages: torch.Tensor, delta: torch.Tensor, lam: float, eps_w: float = 0.2) -> torch.Tensor:
    """Per-token RLSD advantages A_t = A * [(1 - lam) + lam * clip(w_t, 1 - eps_w, 1 + eps_w)], detached.

    lam = 0 is GRPO exactly (A broadcast over tokens); A = 0 gives 0; sign(A_t) = sign(A); with the clip the
    magnitude stays within [1 - lam*eps_w, 1 + lam*eps_w] * |A| (the released code's form: iie-ycx/RLSD, verl/workers/actor/dp_opsd_actor.py).
    """
    weights = rlsd_token_weights(delta, advantages).clamp(1.0 - eps_w, 1.0 + eps_w)
    return (advantages.detach().unsqueeze(-1) * ((1.0 - lam) + lam * weights)).detach()


def linear_decay(step: int, start: float, decay_steps: int) -> float:
    """start at step 0, falling linearly to 0 at `decay_steps` (and 0 after); decay_steps <= 0 keeps it constant."""
    if decay_steps <= 0:
        return start
    return start * max(0.0, 1.0 - step / decay_steps)


def clipped_policy_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    eps_low: float = 0.2,
    eps_high: float = 0.28,
    dual_clip: float | None = 3.0,
    normalizer: torch.Tensor | float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate with per-token advantages (B, T), summed over the mask and divided by `normalizer`
    (default: the number of counted tokens, a token mean); asymmetric clip (eps_low, eps_high), and for negative
    advantages the dual clip bounds the loss at dual_clip * |A|.

    Returns the loss and the fraction of counted tokens whose ratio was clipped.
    """
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(-1).expand_as(logps)
    ratio = torch.exp(logps - old_logps.detach())
    clipped_ratio = ratio.clamp(1.0 - eps_low, 1.0 + eps_high)
    per_token = -torch.min(ratio * advantages, clipped_ratio * advantages)
    if dual_clip is not None:
        per_token = torch.where(advantages < 0, torch.min(per_token, -dual_clip * advantages), per_token)
    clipped = ((ratio < 1.0 - eps_low) & (advantages < 0)) | ((ratio > 1.0 + eps_high) & (advantages > 0))
    if normalizer is None:
        normalizer = mask.sum().clamp(min=1.0)
    return (per_token * mask.to(per_token.dtype)).sum() / normalizer, masked_mean(clipped.float(), mask)


def target_token_nll(
    hidden: torch.Tensor, labels: torch.Tensor, head: torch.nn.Module, normalizer: torch.Tensor | float | None = None
) -> torch.Tensor:
    """Next-token cross-entropy projecting only the positions whose next token is a target.

    `hidden` is the final (normed) hidden state (B, T, H), `labels` (B, T) with -100 on ignored tokens, `head`
    the output projection. Equal to the causal-LM loss on the full logits, but prompt and padding positions never
    reach the vocabulary projection: with chat examples two thirds of whose tokens are prompt, that is most of
    the (B, T, vocab) logits and their backward. `normalizer` defaults to the number of target tokens.
    """
    targets = labels[:, 1:]
    keep = targets != -100
    logits = head(hidden[:, :-1][keep]).float()
    total = torch.nn.functional.cross_entropy(logits, targets[keep], reduction="sum")
    if normalizer is None:
        normalizer = keep.sum().clamp(min=1)
    return total / normalizer


def chunked_reverse_kl(
    student_hidden: torch.Tensor,
    teacher_hidden: torch.Tensor,
    student_head: torch.Tensor,
    teacher_head: torch.Tensor,
    mask: torch.Tensor,
    normalizer: torch.Tensor | float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The full-vocabulary reverse KL(student || teacher) at every counted completion token, from both models' final
    hidden states (B, T, H) and LM head weights (V, H), without materialising the (B, T, V) logits.

    Returns (sum over counted tokens / normalizer, the student's entropy summed over them, how many were counted);
    `normalizer` defaults to that count (token-mean). Adapted from TRL 1.16's private `_chunked_divergence_loss`
    (trl/trainer/distillation_trainer.py) at beta = 1, without its FSDP, bias, logit-scale and soft-capping options:
    the tiled forward and backward are TRL's `ChunkedDivergenceFunction`.
    """
    from trl.kernels.chunked_divergence import ChunkedDivergenceFunction

    valid = mask.reshape(-1) != 0
    # Only the counted positions are projected, on every device (TRL compacts only where its Triton kernel runs):
    # the projections are the cost, and a teacher-forced batch is mostly prompt and padding.
    h_s = student_hidden.reshape(-1, student_hidden.size(-1))[valid]
    h_t = teacher_hidden.reshape(-1, teacher_hidden.size(-1))[valid]
    divergence, entropy = ChunkedDivergenceFunction.apply(
        h_s, student_head, None, h_t, teacher_head, None, 1.0, 1.0, 1.0, None, 1.0, None)
    count = valid.sum()
    if normalizer is None:
        normalizer = count.clamp(min=1)
    elif isinstance(normalizer, torch.Tensor):
        normalizer = normalizer.to(divergence.device)
    return divergence.sum() / normalizer, entropy.sum(), count
