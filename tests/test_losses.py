"""The training losses, as pure functions of per-token log-probs."""

from __future__ import annotations

import torch

from rlsd_cli.losses import masked_mean, on_policy_distillation_loss, sampled_reverse_kl, self_sft_loss


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
