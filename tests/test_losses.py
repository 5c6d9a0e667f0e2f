"""The training losses, as pure functions of per-token log-probs."""

from __future__ import annotations

import torch

from rlsd_cli.losses import (
    chunked_reverse_kl,
    clipped_policy_loss,
    group_advantages,
    linear_decay,
    masked_mean,
    on_policy_distillation_loss,
    rlsd_advantages,
    rlsd_token_weights,
    sampled_reverse_kl,
    self_sft_loss,
    target_token_nll,
)


def _logps(seed: int, shape=(3, 5)) -> torch.Tensor:
    return -torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 3


def test_masked_mean_ignores_masked_tokens_and_survives_an_empty_mask():
    values = torch.tensor([[1.0, 2.0, 100.0]])
    assert masked_mean(values, torch.tensor([[1, 1, 0]])).item() == 1.5
    assert masked_mean(values, torch.zeros(1, 3)).item() == 0.0


def test_sampled_reverse_kl_is_the_log_ratio_and_averages_to_the_true_kl():
    assert torch.equal(sampled_reverse_kl(torch.tensor([-1.0]), torch.tensor([-3.0])), torch.tensor([2.0]))
    # E_{y~p}[log p(y) - log q(y)] is KL(p || q): check by sampling a small categorical.
    p = torch.tensor([0.7, 0.2, 0.1])
    q = torch.tensor([0.2, 0.3, 0.5])
    samples = torch.multinomial(p, 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
    estimate = sampled_reverse_kl(p.log()[samples], q.log()[samples]).mean()
    exact = (p * (p / q).log()).sum()
    assert abs(estimate.item() - exact.item()) < 0.01


def test_distillation_gradient_is_minus_the_per_token_advantage_times_grad_logp():
    student = _logps(0).requires_grad_()
    teacher = _logps(1)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    loss = on_policy_distillation_loss(student, student.detach(), teacher, mask)
    loss.backward()
    advantage = -(student.detach() - teacher)
    expected = -advantage * mask / mask.sum()
    assert torch.allclose(student.grad, expected)
    assert torch.all(student.grad[mask == 0] == 0)
    # On-policy (sampler = current policy) the importance ratio is 1: the loss value is the mean KL estimate.
    assert torch.isclose(loss, masked_mean(sampled_reverse_kl(student.detach(), teacher), mask))


def test_distillation_step_moves_the_student_toward_the_teacher():
    logits = torch.zeros(4, requires_grad=True)
    teacher = torch.log_softmax(torch.tensor([2.0, 0.0, -1.0, 0.5]), -1)
    optimizer = torch.optim.SGD([logits], lr=0.5)
    generator = torch.Generator().manual_seed(0)

    def kl() -> float:
        p = torch.log_softmax(logits.detach(), -1)
        return (p.exp() * (p - teacher)).sum().item()

    start = kl()
    for _ in range(200):
        logps = torch.log_softmax(logits, -1)
        tokens = torch.multinomial(logps.detach().exp(), 64, replacement=True, generator=generator)
        picked = logps[tokens].unsqueeze(0)
        loss = on_policy_distillation_loss(picked, picked.detach(), teacher[tokens].unsqueeze(0), torch.ones_like(picked))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert kl() < 0.05 * start


def test_importance_ratio_reweights_off_policy_tokens():
    student = torch.tensor([[-1.0]], requires_grad=True)
    sampler = torch.tensor([[-2.0]])  # the token was less likely under the policy that sampled it
    teacher = torch.tensor([[-0.5]])
    loss = on_policy_distillation_loss(student, sampler, teacher, torch.ones(1, 1))
    loss.backward()
    ratio = torch.exp(torch.tensor(1.0))
    assert torch.isclose(student.grad, -ratio * (-(sampler - teacher))).all()


def test_self_sft_loss_is_token_mean_nll_over_the_mask():
    student = _logps(2).requires_grad_()
    mask = torch.tensor([[1, 1, 0, 0, 0]] * 3)
    loss = self_sft_loss(student, mask)
    assert torch.isclose(loss, -(student * mask).sum() / 6)
    loss.backward()
    assert torch.all(student.grad[mask == 0] == 0) and torch.all(student.grad[mask == 1] < 0)


# ---------------------------------------------------------------- RLSD / GRPO


def test_group_advantages_are_standardised_within_each_group():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5])
    advantages = group_advantages(rewards, group_size=4)
    first = advantages[:4]
    assert torch.isclose(first.sum(), torch.tensor(0.0), atol=1e-6)
    assert torch.allclose(first, (rewards[:4] - 0.5) / (rewards[:4].std() + 1e-6))
    assert torch.all(advantages[4:] == 0)  # equal rewards: no signal


def test_rlsd_with_lambda_zero_is_exactly_grpo():
    advantages = torch.tensor([1.5, -0.7, 0.0])
    delta = torch.randn(3, 6, generator=torch.Generator().manual_seed(0)) * 3
    assert torch.equal(rlsd_advantages(advantages, delta, lam=0.0), advantages.unsqueeze(-1).expand(3, 6))


def test_rlsd_zero_advantage_stays_zero_and_the_sign_never_flips():
    generator = torch.Generator().manual_seed(1)
    advantages = torch.randn(64, generator=generator)
    advantages[:8] = 0.0
    delta = torch.randn(64, 20, generator=generator) * 5
    for lam in (0.25, 0.5, 1.0):
        weighted = rlsd_advantages(advantages, delta, lam=lam, eps_w=0.2)
        assert torch.all(weighted[:8] == 0)
        assert torch.all(torch.sign(weighted) == torch.sign(advantages).unsqueeze(-1))


def test_rlsd_clipping_bounds_the_magnitude():
    advantages = torch.tensor([2.0, -2.0])
    delta = torch.tensor([[10.0, -10.0, 0.0, 0.1], [10.0, -10.0, 0.0, 0.1]])
    lam, eps = 0.5, 0.2
    weighted = rlsd_advantages(advantages, delta, lam=lam, eps_w=eps)
    ratio = weighted / advantages.unsqueeze(-1)
    assert torch.all(ratio >= 1 - lam * eps - 1e-6) and torch.all(ratio <= 1 + lam * eps + 1e-6)
    # A > 0: the token the teacher prefers (delta > 0) gets more credit; A < 0: the one it disfavours more blame.
    assert ratio[0, 0] > ratio[0, 1] and ratio[1, 1] > ratio[1, 0]
    assert torch.isclose(ratio[0, 2], torch.tensor(1.0))  # teacher agrees: plain GRPO weight


def test_rlsd_weights_are_detached_from_the_graph():
    delta = torch.randn(2, 3, requires_grad=True)
    advantages = torch.tensor([1.0, -1.0], requires_grad=True)
    assert not rlsd_token_weights(delta, advantages).requires_grad
    assert not rlsd_advantages(advantages, delta, lam=0.5).requires_grad


def test_linear_decay():
    assert [linear_decay(s, 0.5, 60) for s in (0, 30, 60, 90)] == [0.5, 0.25, 0.0, 0.0]
    assert linear_decay(100, 0.5, 0) == 0.5


def test_clipped_policy_loss_matches_the_policy_gradient_on_policy_and_clips_off_policy():
    logps = torch.tensor([[-1.0, -2.0, -0.5]], requires_grad=True)
    advantages = torch.tensor([[1.0, -1.0, 2.0]])
    mask = torch.ones(1, 3)
    loss, clip_fraction = clipped_policy_loss(logps, logps.detach(), advantages, mask)
    loss.backward()
    assert torch.allclose(logps.grad, -advantages / 3) and clip_fraction == 0
    # A ratio beyond 1 + eps_high with A > 0 (and below 1 - eps_low with A < 0) gets no gradient.
    logps = torch.tensor([[-1.0, -3.0]], requires_grad=True)
    old = torch.tensor([[-1.5, -2.0]])
    loss, clip_fraction = clipped_policy_loss(logps, old, torch.tensor([[1.0, -1.0]]), torch.ones(1, 2))
    loss.backward()
    assert torch.all(logps.grad == 0) and clip_fraction == 1.0
    # 1-D advantages are per sequence.
    flat, _ = clipped_policy_loss(torch.zeros(2, 2), torch.zeros(2, 2), torch.tensor([1.0, -1.0]), torch.ones(2, 2))
    assert flat.item() == 0.0
    # A normalizer replaces the token count: a process holding half a step divides by its share of the step's
    # tokens, not its own count.
    logps = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    loss, _ = clipped_policy_loss(logps, logps.detach(), torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, 0.0]]), normalizer=4.0)
    loss.backward()
    assert torch.allclose(logps.grad, torch.tensor([[-0.25, 0.0]]))


def test_dual_clip_bounds_the_loss_of_negative_advantages():
    logps = torch.tensor([[0.0]], requires_grad=True)
    old = torch.tensor([[-5.0]])  # ratio e^5
    loss, _ = clipped_policy_loss(logps, old, torch.tensor([[-1.0]]), torch.ones(1, 1), dual_clip=3.0)
    assert torch.isclose(loss, torch.tensor(3.0))
    loss.backward()
    assert logps.grad.item() == 0


def test_target_token_nll_equals_the_full_logits_causal_lm_loss():
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 50, bias=False)
    hidden = torch.randn(3, 7, 8, requires_grad=True)
    labels = torch.randint(0, 50, (3, 7))
    labels[:, :3] = -100  # prompts
    labels[2, 5:] = -100  # padding
    logits = head(hidden)
    full = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 50), labels[:, 1:].reshape(-1), ignore_index=-100)
    (full_grad,) = torch.autograd.grad(full, hidden)
    ours = target_token_nll(hidden, labels, head)
    (our_grad,) = torch.autograd.grad(ours, hidden)
    assert torch.allclose(ours, full, atol=1e-6)
    assert torch.allclose(our_grad, full_grad, atol=1e-6)
    assert our_grad[:, :2].abs().sum() == 0  # positions predicting prompt tokens get no gradient
    assert torch.allclose(target_token_nll(hidden, labels, head, normalizer=4.0) * 4.0, full * (labels[:, 1:] != -100).sum())


def test_target_token_nll_of_a_batch_without_targets_is_a_finite_zero():
    head = torch.nn.Linear(4, 10, bias=False)
    loss = target_token_nll(torch.randn(2, 5, 4), torch.full((2, 5), -100), head)
    assert loss.item() == 0.0


def test_chunked_reverse_kl_equals_the_full_logits_kl_on_counted_tokens():
    torch.manual_seed(0)
    hidden_s, hidden_t = torch.randn(2, 5, 8, requires_grad=True), torch.randn(2, 5, 8)
    head_s, head_t = torch.randn(11, 8), torch.randn(11, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    loss, entropy, count = chunked_reverse_kl(hidden_s, hidden_t, head_s, head_t, mask, normalizer=4.0)
    logp_s, logp_t = (hidden_s @ head_s.T).log_softmax(-1), (hidden_t @ head_t.T).log_softmax(-1)
    per_token = (logp_s.exp() * (logp_s - logp_t)).sum(-1)
    expected = (per_token * mask).sum() / 4.0
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(entropy, (-(logp_s.exp() * logp_s).sum(-1) * mask).sum(), atol=1e-4, rtol=1e-5)
    assert count.item() == 8
    grad, = torch.autograd.grad(loss, hidden_s)
    expected_grad, = torch.autograd.grad(expected, hidden_s)
    torch.testing.assert_close(grad, expected_grad, atol=1e-5, rtol=1e-4)
    assert grad[0, 3:].abs().max() == 0  # masked positions get no gradient
