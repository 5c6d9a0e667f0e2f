"""`qa`: knowledge questions about a user's own documents.

Data: JSONL `{"question", "answer", "aliases": [...]}` with an optional `id` (key field; the line number
when absent). A response is correct when its normalised text contains the answer or an alias as whole
words or numbers: "2" does not match inside "12", "1,000" matches "1000", case and punctuation are ignored.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from ..errors import BadInputError
from .base import Item, Suite, mean, require

_TOKEN = re.compile(r"\d+(?:\.\d+)?|[^\W\d_]+")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")

QA_INSTRUCTION = "Answer briefly."


def normalize_tokens(text: str) -> list[str]:
    text = unicodedata.normalize("NFKC", text).lower()
    text = _THOUSANDS.sub("", text)
    return _TOKEN.findall(text)


def contains_phrase(response: str, phrase: str) -> bool:
    haystack, needle = normalize_tokens(response), normalize_tokens(phrase)
    if not needle:
        return False
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


class QASuite(Suite):
    name = "qa"
    description = "questions about your documents; correct when the answer or an alias appears as whole words"
    key_field = "id"
    primary_metric = "accuracy"
    default_max_new_tokens = 64

    def parse(self, number: int, record: dict[str, Any], where: str) -> Item:
        question = require(record, "question", where)
        answer = require(record, "answer", where, (str, int, float))
        aliases = record.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, (str, int, float)) for a in aliases):
            raise BadInputError(f"{where}: 'aliases' must be a list of strings")
        key = record.get("id", number)
        return Item(
            key=key,
            messages=[{"role": "user", "content": question}],
            record={"question": question, "answer": str(answer), "aliases": [str(a) for a in aliases]},
        )

    def score(self, item: Item, response: str) -> dict[str, Any]:
        accepted = [item.record["answer"], *item.record["aliases"]]
        matched = next((a for a in accepted if contains_phrase(response, a)), None)
        return {"correct": matched is not None, "matched": matched}

    def aggregate(self, verdicts: list[dict[str, Any]]) -> dict[str, float]:
        return {"accuracy": mean([1.0 if v["correct"] else 0.0 for v in verdicts])}
