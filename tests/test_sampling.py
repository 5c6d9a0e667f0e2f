"""The inverse-CDF sampler that replaces torch.multinomial during CPU generation."""

from __future__ import annotations

import torch

from rlsd_cli.generation import fast_cpu_sampling, inverse_cdf_multinomial


def test_inverse_cdf_samples_follow_the_probabilities_and_skip_zero_ones():
    probs = torch.tensor([[0.5, 0.0, 0.3, 0.2, 0.0]]).repeat(20_000, 1)
    torch.manual_seed(0)
    samples = inverse_cdf_multinomial(probs, 1)
    assert samples.shape == (20_000, 1)
    frequencies = torch.bincount(samples.flatten(), minlength=5).float() / 20_000
    assert torch.allclose(frequencies, probs[0], atol=0.015)
    assert frequencies[1] == 0 and frequencies[4] == 0


def test_unnormalised_rows_and_other_calls_still_work():
    weights = torch.tensor([[0.0, 2.0, 0.0], [1.0, 0.0, 0.0]])
    assert inverse_cdf_multinomial(weights).flatten().tolist() == [1, 0]
    many = inverse_cdf_multinomial(torch.ones(1, 4), num_samples=3)  # not ours: torch's answer
    assert many.shape == (1, 3)


def test_the_swap_is_scoped_to_generation():
    original = torch.multinomial
    with fast_cpu_sampling():
        assert torch.multinomial is inverse_cdf_multinomial
        with fast_cpu_sampling():
            pass
        assert torch.multinomial is inverse_cdf_multinomial
    assert torch.multinomial is original
