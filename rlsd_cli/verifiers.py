"""Reward functions for verifiable tasks: the same code scores `rlsd eval math|gsm8k` and `rlsd reason`.

A verifier maps (completion, example) to a float in [0, 1]. Specs, as given to `--verifier`:
- `math`: the final answer is extracted (`#### X`, `\\boxed{X}`, `Answer: X`, else the last number) and
  compared with the reference by value (exact fractions for numbers, math-verify for expressions);
- `exact`: the stripped completion equals the answer;
- `regex:PATTERN`: 1 when PATTERN matches the completion (re.search);
- `python:module:function`: a user function `(completion: str, example: dict) -> float`, loaded only
  when named explicitly; an exception scores 0 and is counted, it does not stop training;
- several by repeating `--verifier`, each optionally weighted: `--verifier 0.8*math --verifier 0.2*regex:^Answer`.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from .errors import BadInputError

_NUMBER = r"-?\$?\s?\d(?:[\d,]*\d)?(?:\.\d+)?(?:\s*/\s*\d+)?%?"
_MARKERS = [
    re.compile(r"####\s*(" + _NUMBER + r"|[^\n]+)"),
    re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}"),
    re.compile(r"(?:final answer|answer)\s*(?:is|:|=)?\s*:?\s*(" + _NUMBER + r")", re.IGNORECASE),
]
_LAST_NUMBER = re.compile(_NUMBER)


def extract_final_answer(text: str) -> str | None:
    """The answer a response commits to: an explicit marker wins (the last one), else the last number."""
    for pattern in _MARKERS:
        found = pattern.findall(text)
        if found:
            return found[-1].strip()
    numbers = _LAST_NUMBER.findall(text)
    return numbers[-1].strip() if numbers else None


def parse_number(text: str | None) -> Fraction | None:
    """'$1,234.50' -> 1234.5, '3/4' -> 3/4, '12%' -> 12; None when the text is not a plain number."""
    if text is None:
        return None
    cleaned = text.strip().rstrip(".").replace("$", "").replace(",", "").replace(" ", "").rstrip("%")
    cleaned = cleaned.replace("\\$", "")
    try:
        if "/" in cleaned:
            numerator, denominator = cleaned.split("/", 1)
            return Fraction(numerator) / Fraction(denominator)
        return Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


def answers_match(predicted: str | None, reference: str) -> bool:
    if predicted is None:
        return False
    a, b = parse_number(predicted), parse_number(reference)
    if a is not None and b is not None:
        return a == b
    try:
        from math_verify import verify

        return bool(verify(math_parse(reference), math_parse(predicted)))
    except Exception:  # math-verify gives up on odd input; fall back to text
        return predicted.strip().lower() == reference.strip().lower()


def math_parse(text: str) -> list:
    """math-verify's reading of an answer. It reads expressions inside math delimiters; bare text it reads only
    partly (`2x+1` as 2, `\\sqrt{2}` not at all), and a `\\boxed{}` answer arrives without delimiters."""
    from math_verify import parse

    return (parse(f"${text}$") if "$" not in text else []) or parse(text)


def checkable_reference(reference: str) -> bool:
    """Whether a reference answer is one the math verifier is meant for: anything but plain words. "two" or "Paris"
    would be read inside math delimiters as a product of letters (t*w*o), which no response gives; single letters
    (`x`, `e`) and LaTeX (`\\pi`, `\\frac{1}{2}`) are math."""
    if re.fullmatch(r"[A-Za-z][A-Za-z ]*[A-Za-z]", reference.strip()):
        return False
    if parse_number(reference) is not None:
        return True
    try:
        return bool(math_parse(reference))
    except Exception:
        return False


def gsm8k_reference(answer_field: str) -> str:
    """The final number of a GSM8K solution (after '####')."""
    if "####" in answer_field:
        return answer_field.split("####")[-1].strip().replace(",", "")
    return answer_field.strip()


def math_reward(completion: str, example: dict[str, Any]) -> float:
    return 1.0 if answers_match(extract_final_answer(completion), str(example["answer"])) else 0.0


def exact_reward(completion: str, example: dict[str, Any]) -> float:
    return 1.0 if completion.strip() == str(example["answer"]).strip() else 0.0


def _regex_reward(pattern: str) -> Callable[[str, dict[str, Any]], float]:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise BadInputError(f"--verifier regex:{pattern}: not a valid regular expression ({exc})") from None
    return lambda completion, example: 1.0 if compiled.search(completion) else 0.0


def _python_reward(target: str) -> Callable[[str, dict[str, Any]], float]:
    module_name, _, function_name = target.rpartition(":")
    if not module_name or not function_name:
        raise BadInputError(f"--verifier python:{target}: write it as python:module:function")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise BadInputError(f"--verifier python:{target}: cannot load it ({exc}); is the module on PYTHONPATH?") from None
    except Exception as exc:  # the plugin's own module failed while importing (SyntaxError, a bad top-level line)
        raise BadInputError(f"--verifier python:{target}: importing {module_name} failed ({type(exc).__name__}: {exc}); "
                            "fix the module") from None
    if not callable(function):
        raise BadInputError(f"--verifier python:{target}: {function_name} is not callable")
    return function


@dataclass
class Verifier:
    """A weighted sum of reward functions, counting the calls that raised (they score 0)."""

    spec: str
    parts: list[tuple[str, float, Callable[[str, dict[str, Any]], float]]]
    failures: int = 0
    last_error: str | None = field(default=None, repr=False)

    def __call__(self, completion: str, example: dict[str, Any]) -> float:
        total = 0.0
        for name, weight, function in self.parts:
            try:
                value = float(function(completion, example))
                if not math.isfinite(value):
                    raise ValueError(f"returned {value}")
            except Exception as exc:
                self.failures += 1
                self.last_error = f"{name}: {type(exc).__name__}: {exc}"
                value = 0.0
            total += weight * value
        return total


def build_verifier(specs: str | list[str]) -> Verifier:
    """`specs`: one spec or several (repeated --verifier), each optionally weighted as `WEIGHT*SPEC`."""
    specs = [specs] if isinstance(specs, str) else list(specs)
    parts = []
    for raw in specs:
        piece = raw.strip()
        weight = 1.0
        match = re.match(r"^([0-9]*\.?[0-9]+)\*(.+)$", piece)
        if match:
            weight, piece = float(match.group(1)), match.group(2)
        if piece == "math":
            parts.append((piece, weight, math_reward))
        elif piece == "exact":
            parts.append((piece, weight, exact_reward))
        elif piece.startswith("regex:"):
            parts.append((piece, weight, _regex_reward(piece[len("regex:") :])))
        elif piece.startswith("python:"):
            parts.append((piece, weight, _python_reward(piece[len("python:") :])))
        else:
            raise BadInputError(
                f"--verifier {raw!r}: use math, exact, regex:PATTERN or python:module:function, "
                "optionally weighted as 0.5*math; repeat --verifier to combine"
            )
    if not parts:
        raise BadInputError("--verifier is empty")
    return Verifier(spec=" + ".join(specs), parts=parts)
