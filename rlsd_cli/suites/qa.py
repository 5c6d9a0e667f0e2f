"""`qa`: knowledge questions about a user's own documents.

Data: JSONL `{"question", "answer", "aliases": [...]}` with an optional `id` (key field; the line number
when absent). A response is correct when its normalised text contains the answer or an alias as whole
words or numbers: "2" does not match inside "12", "1,000" matches "1000", case and punctuation are ignored.

Two optional fields serve documents that change between training rounds:
- `kind` (e.g. new, updated, kept): accuracy is also reported per kind, as `accuracy/<kind>`;
- `stale`: the superseded answer (or a list of them). `stale_rate` is the share of the items that have one whose
  response still gives it (lower is better; gate it with `--max-score`), also per kind.
"""

from __future__ import annotations

import math
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


def _is_answer(value: Any) -> bool:
    """A string or a finite number; JSON's true and NaN would be scored as the words 'True' and 'nan'."""
    if isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
        return False
    return isinstance(value, (str, int, float))


class QASuite(Suite):
    name = "qa"
    description = "questions about your documents; correct when the answer or an alias appears as whole words"
    key_field = "id"
    primary_metric = "accuracy"
    default_max_new_tokens = 64

    def parse(self, number: int, record: dict[str, Any], where: str) -> Item:
        question = require(record, "question", where)
        answer = require(record, "answer", where, (str, int, float))
        if not _is_answer(answer):
            raise BadInputError(f"{where}: 'answer' must be a string or a number, got {answer!r}")
        aliases = record.get("aliases", [])
        if not isinstance(aliases, list) or not all(_is_answer(a) for a in aliases):
            raise BadInputError(f"{where}: 'aliases' must be a list of strings")
        stale = record.get("stale", [])
        stale = [stale] if isinstance(stale, (str, int, float)) else stale
        if not isinstance(stale, list) or not all(_is_answer(a) and str(a).strip() for a in stale):
            raise BadInputError(f"{where}: 'stale' must be the superseded answer, or a list of them")
        if not normalize_tokens(str(answer)):
            raise BadInputError(f"{where}: the answer {answer!r} has no letters or digits, so no response can match "
                                "it; write the answer in words")
        aliases = [a for a in aliases if normalize_tokens(str(a))]  # an empty alias could never match: harmless
        accepted = [str(answer), *map(str, aliases)]
        for old in map(str, stale):
            # A superseded answer inside a right one would mark every right answer stale as well.
            clash = next((a for a in accepted if contains_phrase(a, old)), None)
            if clash is not None:
                raise BadInputError(f"{where}: the stale answer {old!r} is part of the accepted answer {clash!r}, so "
                                    "every right answer would count as stale; remove it from 'stale' or 'aliases'")
        kind = record.get("kind")
        if kind is not None and not (isinstance(kind, str) and re.fullmatch(r"[\w-]+", kind)):
            raise BadInputError(f"{where}: 'kind' must be a word (letters, digits, '-' or '_'), e.g. new or updated")
        return Item(
            key=record.get("id", number),
            messages=[{"role": "user", "content": question}],
            record={"question": question, "answer": str(answer), "aliases": [str(a) for a in aliases],
                    "stale": [str(a) for a in stale], "kind": kind},
        )

    def score(self, item: Item, response: str) -> dict[str, Any]:
        accepted = [item.record["answer"], *item.record["aliases"]]
        matched = next((a for a in accepted if contains_phrase(response, a)), None)
        verdict = {"correct": matched is not None, "matched": matched, "kind": item.record.get("kind")}
        if item.record.get("stale"):
            verdict["stale"] = any(contains_phrase(response, a) for a in item.record["stale"])
        return verdict

    def aggregate(self, verdicts: list[dict[str, Any]]) -> dict[str, float]:
        metrics = _rates(verdicts)
        for kind in sorted({v.get("kind") for v in verdicts} - {None}):
            metrics.update({f"{name}/{kind}": value for name, value in _rates([v for v in verdicts if v.get("kind") == kind]).items()})
        return metrics


def _rates(verdicts: list[dict[str, Any]]) -> dict[str, float]:
    rates = {"accuracy": mean([1.0 if v["correct"] else 0.0 for v in verdicts])}
    with_stale = [v["stale"] for v in verdicts if "stale" in v]
    if with_stale:
        rates["stale_rate"] = mean([1.0 if s else 0.0 for s in with_stale])
    return rates
