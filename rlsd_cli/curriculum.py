"""Which problems `rlsd reason` samples: no wasted groups, and a curriculum the model can climb.

GRPO learns nothing from a group whose rewards are all equal (every sample wrong, or every sample right): its
advantages are zero. On the embedded 135M model with `rlsd data math`'s defaults, 79% of the groups were such
groups and 25 of 40 steps had no gradient at all. Two remedies, both here:

- **Dynamic sampling** (DAPO, arXiv 2503.14476, section 3.2): the groups without reward variance are dropped and
  fresh problems refill the step, for at most `rounds` extra generation rounds; the step trains on what it has
  after that. TRL 1.16 has no such option (its GRPOTrainer logs `frac_reward_zero_std` but trains on every
  group), so `reason.SelfDistilledGRPOTrainer._refill` does it after TRL's sampling.
- **A pass-rate curriculum**: each step's problems are drawn here (the trainer's data loader only paces the
  steps); every group's rewards update the problem's and its difficulty level's measured pass
  rate, and problems are drawn in proportion to their expected reward variance p(1 - p), with p the problem's
  own pass rate shrunk towards its level's (a Beta prior worth `PRIOR` samples). Problems seen always solved or
  never solved fall to a small weight; levels the model solves half the time are drawn most, so as the easy level
  is learnt the draws move up a level. Unseen levels start at p = 1/2, so each is tried early.

The curriculum's record is updated from rewards gathered over every process, so all processes draw alike, and it
is saved with each checkpoint.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import torch

# How many samples the level's pass rate counts as, against a problem's own: small, so a problem's own record
# decides once it has a group of 8.
PRIOR = 2.0


class ProblemCurriculum:
    """Measured pass rates of the training problems (and of their difficulty levels), and draws by p(1 - p)."""

    def __init__(self, levels: Sequence[Any], seed: int = 0, by_pass_rate: bool = True):
        self.levels, self.by_pass_rate = list(levels), by_pass_rate
        self.tried = [0] * len(self.levels)
        self.solved = [0.0] * len(self.levels)
        self.level_tried: dict[Any, int] = {}
        self.level_solved: dict[Any, float] = {}
        self.seed = seed

    def record(self, problem: int, rewards: Sequence[float]) -> None:
        """One group's rewards (1 solved, 0 not; partial credit counts as its share)."""
        level = self.levels[problem]
        solved = float(sum(min(max(r, 0.0), 1.0) for r in rewards))
        self.tried[problem] += len(rewards)
        self.solved[problem] += solved
        self.level_tried[level] = self.level_tried.get(level, 0) + len(rewards)
        self.level_solved[level] = self.level_solved.get(level, 0.0) + solved

    def level_pass_rate(self, level: Any) -> float:
        return (self.level_solved.get(level, 0.0) + 1.0) / (self.level_tried.get(level, 0) + 2.0)

    def pass_rate(self, problem: int) -> float:
        prior = self.level_pass_rate(self.levels[problem])
        return (self.solved[problem] + PRIOR * prior) / (self.tried[problem] + PRIOR)

    def weight(self, problem: int) -> float:
        if not self.by_pass_rate:
            return 1.0
        rate = self.pass_rate(problem)
        return rate * (1.0 - rate)

    def draw(self, count: int, key: int) -> list[int]:
        """`count` distinct problems (fewer if there are fewer), each drawn with probability proportional to its
        weight (Efraimidis-Spirakis keys: one pass, no replacement). The same key and record give the same draw,
        so a resumed run draws what the uninterrupted one did."""
        rng = random.Random(self.seed * 1_000_003 + key)
        keys = [(rng.random() ** (1.0 / max(self.weight(i), 1e-9)), i) for i in range(len(self.levels))]
        return [i for _, i in sorted(keys, reverse=True)[:count]]

    def state(self) -> dict[str, Any]:
        return {"tried": self.tried, "solved": self.solved,
                "levels": [[level, self.level_tried[level], self.level_solved[level]] for level in self.level_tried]}

    def load_state(self, state: dict[str, Any]) -> None:
        self.tried, self.solved = list(state["tried"]), list(state["solved"])
        self.level_tried = {level: tried for level, tried, _ in state["levels"]}
        self.level_solved = {level: solved for level, _, solved in state["levels"]}

    def describe(self) -> dict[str, Any]:
        return {str(level): {"samples": self.level_tried[level], "pass_rate": round(self.level_pass_rate(level), 3)}
                for level in sorted(self.level_tried, key=str)}


def groups_with_signal(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """One bool per group of `group_size` consecutive rewards: True when they are not all equal."""
    grouped = rewards.view(-1, group_size)
    return (grouped.max(dim=1).values - grouped.min(dim=1).values) > 1e-6


def _pad_right(tensor: torch.Tensor, length: int, value: float) -> torch.Tensor:
    return torch.nn.functional.pad(tensor, (0, length - tensor.size(1)), value=value)


def _pad_left(tensor: torch.Tensor, length: int, value: float) -> torch.Tensor:
    return torch.nn.functional.pad(tensor, (length - tensor.size(1), 0), value=value)


def concat_rollouts(parts: list[tuple[dict[str, Any], torch.Tensor]], pad_token_id: int) -> dict[str, Any]:
    """TRL GRPO rollout batches (one process's `_generate_and_score_completions` outputs), keeping each part's rows
    where its mask is True: row-wise tensors are joined, prompts padded on the left as TRL pads them, completions
    and per-token values on the right (masked out). `num_items_in_batch` is recounted from the kept masks."""
    keys = [k for k, v in parts[0][0].items() if isinstance(v, torch.Tensor) and v.dim() >= 1 and k != "num_items_in_batch"]
    out: dict[str, Any] = {}
    for key in keys:
        tensors = [output[key][rows] for output, rows in parts]
        if tensors[0].dim() == 2:
            length = max(t.size(1) for t in tensors)
            left = key.startswith("prompt")
            value = pad_token_id if key in ("prompt_ids", "completion_ids") else 0
            tensors = [(_pad_left if left else _pad_right)(t, length, value) for t in tensors]
        out[key] = torch.cat(tensors, dim=0)
    out["num_items_in_batch"] = out["completion_mask"].sum()
    return out
