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
