"""`math` and `gsm8k`: final-answer problems scored by the `math` verifier that `rlsd reason` trains with.

`math` data: JSONL with `prompt` (or `question`), `answer`, optional `solution` and `id` (key field; the line
number when absent). A GSM8K-style `answer` ("... #### 42") is recognised. `gsm8k` reads the official GSM8K
JSONL (`question`, `answer`); its key field is `index`, the 1-based line number.
"""

from __future__ import annotations

from typing import Any

from ..errors import BadInputError
from ..verifiers import answers_match, checkable_reference, extract_final_answer, gsm8k_reference
from .base import Item, Suite, mean, require

MATH_PROMPT = "{question}\n\nSolve it step by step, then give the final answer on the last line as 'Answer: <number>'."


def math_messages(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": MATH_PROMPT.format(question=question.strip())}]


class MathSuite(Suite):
    name = "math"
    description = "final-answer math problems (the format `rlsd reason` trains on), scored by the math verifier"
    key_field = "id"
    primary_metric = "accuracy"
    default_max_new_tokens = 256
    # Answers are refused when the math verifier could never match them; `reason` with other verifiers (exact,
    # regex, python) reads its problems through this suite too, and their answers may be words.
    math_verified = True

    def parse(self, number: int, record: dict[str, Any], where: str) -> Item:
        question = record.get("prompt") if record.get("prompt") is not None else record.get("question")
        question = require({"prompt": question}, "prompt", where + " ('prompt' or 'question')")
        answer = gsm8k_reference(str(require(record, "answer", where, (str, int, float))))
        if self.math_verified and not checkable_reference(answer):
            raise BadInputError(f"{where}: 'answer' {answer[:40]!r} is neither a number nor a math expression, so no "
                                "response could match it; write it as a number (2, not two) or in LaTeX")
        solution = record.get("solution")
        if solution is not None and not isinstance(solution, str):
            raise BadInputError(f"{where}: 'solution' must be text (a worked solution) or left out")
        return Item(
            key=record.get("id", number),
            messages=math_messages(question),
            # `difficulty` (from `rlsd data math`): the level `reason`'s curriculum measures pass rates by.
            record={"question": question, "answer": answer, "solution": solution, "difficulty": record.get("difficulty")},
        )

    def score(self, item: Item, response: str) -> dict[str, Any]:
        predicted = extract_final_answer(response)
        return {"correct": answers_match(predicted, item.record["answer"]), "predicted": predicted}

    def aggregate(self, verdicts: list[dict[str, Any]]) -> dict[str, float]:
        return {"accuracy": mean([1.0 if v["correct"] else 0.0 for v in verdicts])}


class GSM8KSuite(MathSuite):
    name = "gsm8k"
    description = "grade-school math word problems (GSM8K), zero-shot, final answer compared by value"
    key_field = "index"
    hub_dataset = ("openai/gsm8k", "main", "test")
    embedded_data = "gsm8k/test.jsonl"

    def parse(self, number: int, record: dict[str, Any], where: str) -> Item:
        item = super().parse(number, {"question": record.get("question"), "answer": record.get("answer")}, where)
        item.key = number
        return item
