"""`knowledge`: everyday world knowledge and skills a run should not lose (built in, offline).

157 short questions written for this project (`data/forgetting/knowledge.jsonl`: capitals, geography, science,
units, arithmetic facts, word meanings, everyday knowledge), scored like `qa` (the answer or an alias as whole
words), with accuracy per category. A run is also scored against its base model: `retention` is the share of the
items the base answers right that the run still answers right (evaluate.py adds it), so questions a 135M model
never knew do not count.
"""

from __future__ import annotations

from pathlib import Path

from .qa import QASuite

KNOWLEDGE_DATA = Path(__file__).resolve().parent.parent / "data" / "forgetting" / "knowledge.jsonl"


class KnowledgeSuite(QASuite):
    name = "knowledge"
    description = "everyday world knowledge (built in); a run also gets 'retention', relative to its base model"
    default_max_new_tokens = 32
    relative_to_base = True

    def data_file(self, data: Path | str | None) -> Path | None:
        return KNOWLEDGE_DATA if data is None else super().data_file(data)
