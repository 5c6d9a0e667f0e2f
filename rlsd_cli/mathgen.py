"""`rlsd data math`: multi-step arithmetic word problems in graded difficulty, for `rlsd reason` on a small model.

GSM8K is far beyond a 135M model (about 1% here), so RL on it has no reward to learn from. These problems chain
1 to `max_steps` operations on small whole numbers; a 135M model solves some one-step ones and few longer ones,
which is the range where a group of samples disagrees and GRPO-style training has signal. Every problem has a
final answer and a worked solution (one line per operation), so `--privileged solution` has something to show.
The same seed gives the same files; train and test share no question.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import BadInputError
from .fsutil import atomic_write_text

NAMES = ["Ana", "Ben", "Chloe", "Dev", "Emma", "Felix", "Grace", "Hugo", "Iris", "Jon", "Kira", "Leo", "Maya", "Noah",
         "Olga", "Pablo", "Rosa", "Sam", "Tara", "Umar", "Vera", "Will", "Yara", "Zane"]
ITEMS = ["apples", "books", "marbles", "stickers", "pencils", "cookies", "stamps", "shells", "cards", "coins", "eggs",
         "balloons"]


@dataclass
class MathProblem:
    id: str
    prompt: str
    answer: str
    solution: str
    difficulty: int


def _operation(rng: random.Random, value: int, name: str, item: str, last: bool) -> tuple[str, str, int]:
    """One step applied to `value`: (sentence, solution line, new value)."""
    kinds = ["add", "sub", "mul"] + (["div"] if last else [])
    while True:
        kind = rng.choice(kinds)
        if kind == "add":
            b = rng.randint(2, 15)
            sentence = rng.choice([f"{name} buys {b} more {item}.", f"A friend gives {name} {b} {item}.",
                                   f"{name} finds {b} more {item}."])
            return sentence, f"{value} + {b} = {value + b}", value + b
        if kind == "sub" and value > 2:
            b = rng.randint(1, value - 1)
            sentence = rng.choice([f"{name} gives away {b} {item}.", f"{name} loses {b} {item}.",
                                   f"{name} uses {b} of the {item}."])
            return sentence, f"{value} - {b} = {value - b}", value - b
        if kind == "mul" and value <= 30:
            b = rng.randint(2, 4)
            word = {2: "doubles", 3: "triples", 4: "becomes four times as large"}[b]
            return f"Then the number of {item} {word}.", f"{value} * {b} = {value * b}", value * b
        if kind == "div":
            divisors = [d for d in range(2, 7) if value % d == 0 and value // d > 1]
            if divisors:
                d = rng.choice(divisors)
                return (f"{name} shares them equally among {d} friends.", f"{value} / {d} = {value // d}", value // d)


def make_problem(rng: random.Random, steps: int, index: int) -> MathProblem:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    value = rng.randint(3, 20)
    sentences, lines = [f"{name} has {value} {item}."], []
    shared = False
    for step in range(steps):
        sentence, line, value = _operation(rng, value, name, item, last=step == steps - 1)
        sentences.append(sentence)
        lines.append(line)
        shared = " / " in line
    question = "How many {item} does each friend get?" if shared else "How many {item} does {name} have now?"
    sentences.append(question.format(item=item, name=name))
    solution = "\n".join(lines + [f"Answer: {value}"])
    return MathProblem(id=f"arith-{index:05d}", prompt=" ".join(sentences), answer=str(value), solution=solution,
                       difficulty=steps)


def generate_problems(n: int, seed: int = 0, max_steps: int = 3) -> list[MathProblem]:
    """`n` distinct problems, difficulty 1..max_steps in equal shares (in a seeded order)."""
    if n <= 0:
        raise BadInputError(f"--n must be a positive integer, got {n}")
    if not 1 <= max_steps <= 6:
        raise BadInputError(f"--max-steps must be between 1 and 6, got {max_steps}")
    rng = random.Random(seed)
    problems, seen = [], set()
    attempts = 0
    while len(problems) < n:
        attempts += 1
        if attempts > 50 * n:
            raise BadInputError(f"--n {n}: cannot make that many distinct problems with --max-steps {max_steps}")
        steps = 1 + len(problems) % max_steps
        problem = make_problem(rng, steps, len(problems))
        if problem.prompt not in seen:
            seen.add(problem.prompt)
            problems.append(problem)
    rng.shuffle(problems)
    return problems


MAX_PROBLEMS = 1_000_000


def write_math_data(out: Path, n: int, seed: int = 0, test_fraction: float = 0.2, max_steps: int = 3,
                    force: bool = False) -> dict[str, Any]:
    """Write `out/train.jsonl` and `out/test.jsonl`; returns a summary. Never overwrites without `force`."""
    if not 0.0 < test_fraction < 1.0:
        raise BadInputError(f"--test-fraction must be in (0, 1), got {test_fraction}")
    out = Path(out)
    targets = {"train": out / "train.jsonl", "test": out / "test.jsonl"}
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing and not force:
        raise BadInputError(f"{existing[0]}: already exists; choose another --out folder or pass --force to replace it")
    if out.exists() and not out.is_dir():
        raise BadInputError(f"{out}: not a folder; --out takes a folder for train.jsonl and test.jsonl")
    if not 2 <= n <= MAX_PROBLEMS:  # one for training and one held out; the generator holds them all in memory
        raise BadInputError(f"--n must be in [2, {MAX_PROBLEMS}], got {n}")
    n_test = max(1, round(n * test_fraction))
    if n - n_test < 1:
        raise BadInputError(f"--n {n} with --test-fraction {test_fraction} leaves no training problem; ask for more "
                            "problems or a smaller test fraction")
    problems = generate_problems(n, seed, max_steps)
    splits = {"test": problems[:n_test], "train": problems[n_test:]}
    out.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        atomic_write_text(targets[split], "".join(json.dumps(asdict(p)) + "\n" for p in rows))
    by_difficulty = {split: {d: sum(p.difficulty == d for p in rows) for d in range(1, max_steps + 1)}
                     for split, rows in splits.items()}
    return {"out": str(out), "train": len(splits["train"]), "test": len(splits["test"]), "seed": seed,
            "max_steps": max_steps, "by_difficulty": by_difficulty,
            "files": {split: str(path) for split, path in targets.items()}}
