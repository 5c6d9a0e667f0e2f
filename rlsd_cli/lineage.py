"""Rounds of training on a changing document folder.

Every `sft` run records the documents it was built from (`documents.json`: each document's path, content hash,
title and text) and the Q/A pairs current after it (`knowledge_prompts.jsonl`: each pair with the path and hash of
the document version it was made from). `sft DOCS --from RUN` compares the folder as it is now with the documents
of RUN's lineage and plans the round:

- unchanged documents: their pairs are carried over and replayed, not trained again from scratch;
- changed documents: trained as new; the pairs made from the old version are retired;
- new documents: trained;
- removed documents: their pairs are retired.

Retired pairs are never replayed or anchored again (the knowledge file of the round no longer holds them).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BadInputError
from .fsutil import atomic_write_json, atomic_write_text, finite_number, read_json
from .ingest import Corpus, Document
from .run_record import RUN_RECORD, read_run_record, read_summary
from .suites.base import read_jsonl

DOCUMENTS = "documents.json"
KNOWLEDGE = "knowledge_prompts.jsonl"


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def write_documents(run_dir: Path, corpus: Corpus) -> None:
    atomic_write_json(run_dir / DOCUMENTS, {
        d.path: {"sha256": text_sha256(d.text), "title": d.title, "text": d.text} for d in corpus.documents})


def read_documents(run_dir: Path) -> dict[str, dict[str, Any]]:
    path = run_dir / DOCUMENTS
    fix = "restore it or start a new lineage (sft without --from)"
    try:
        documents = read_json(path, fix)
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read the run's document record ({exc.strerror}); {fix}") from None
    if not isinstance(documents, dict) or not all(
            isinstance(d, dict) and isinstance(d.get("sha256"), str) and isinstance(d.get("text"), str)
            for d in documents.values()):
        raise BadInputError(f"{path}: not an rlsd document record (each document maps to its sha256, title and "
                            "text); restore it or start a new lineage (sft without --from)")
    return documents


def write_knowledge(run_dir: Path, pairs: list[dict[str, Any]]) -> None:
    atomic_write_text(run_dir / KNOWLEDGE, "".join(json.dumps(pair) + "\n" for pair in pairs))


def read_knowledge(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / KNOWLEDGE
    if not path.is_file() or path.stat().st_size == 0:  # a round may have made no pairs
        return []
    pairs = []
    for number, pair in read_jsonl(path):
        if not all(isinstance(pair.get(key), str) for key in ("prompt", "answer")):
            raise BadInputError(f"{path}:{number}: a Q/A pair needs text 'prompt' and 'answer'; the run's knowledge "
                                "was edited or damaged: restore it, or start the round from an earlier run")
        pairs.append(pair)
    return pairs


def ancestors(run_dir: Path) -> list[Path]:
    """The run and the runs it continued, newest first, up to the first round (parents are recorded in run.json)."""
    chain, seen = [], set()
    current: Path | None = Path(run_dir)
    while current is not None:
        if current.resolve() in seen:
            raise BadInputError(f"{current / RUN_RECORD}: its parents form a loop; the lineage cannot be read")
        seen.add(current.resolve())
        chain.append(current)
        parent = read_run_record(current).get("parent")
        current = Path(parent) if parent else None
        # os.path: a parent edited into a name too long for the file system is gone too, not an OSError
        if current is not None and not os.path.isfile(current / RUN_RECORD):
            raise BadInputError(f"{chain[-1] / RUN_RECORD}: its parent run {current} is gone; the lineage needs every "
                                "round's folder")
    return chain


def knowledge_run(run_dir: Path) -> Path:
    """The newest sft round in a run's lineage: its documents and knowledge are what the run knows (a recover run
    repairs a round, it does not change what the documents say)."""
    for run in ancestors(run_dir):
        if (run / DOCUMENTS).is_file():
            return run
    raise BadInputError(f"{run_dir}: no sft round in its lineage records its documents ({DOCUMENTS}); it was made "
                        "before rounds existed: start a new lineage (sft without --from)")


def read_lineage(run_dir: Path) -> tuple[Path, dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """The newest sft round of a run's lineage, with its documents and Q/A pairs, read and checked (files only)."""
    source = knowledge_run(run_dir)
    return source, read_documents(source), read_knowledge(source)


@dataclass
class RoundPlan:
    """How the folder changed since the last round, by relative path and content hash."""

    unchanged: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def trained(self) -> set[str]:
        return set(self.changed) | set(self.new)

    def describe(self) -> dict[str, list[str]]:
        return {"unchanged": self.unchanged, "changed": self.changed, "new": self.new, "removed": self.removed}


def plan_round(previous: dict[str, dict[str, Any]], corpus: Corpus) -> RoundPlan:
    plan = RoundPlan()
    current = {d.path: text_sha256(d.text) for d in corpus.documents}
    for path, digest in sorted(current.items()):
        if path not in previous:
            plan.new.append(path)
        elif previous[path]["sha256"] == digest:
            plan.unchanged.append(path)
        else:
            plan.changed.append(path)
    plan.removed = sorted(set(previous) - set(current))
    return plan


def carried_knowledge(previous_pairs: list[dict[str, Any]], plan: RoundPlan) -> list[dict[str, Any]]:
    """The previous round's pairs that still hold: those of unchanged documents (changed and removed ones retire)."""
    keep = set(plan.unchanged)
    return [pair for pair in previous_pairs if pair.get("source") in keep]


def changed_facts(old: Document | dict[str, Any], new: Document, split) -> list[tuple[str, str]]:
    """(old sentence, new sentence) for each fact sentence a revision rewrote: the new version's sentences that the
    old one lacks, each with the old sentence it most resembles (difflib ratio at least 0.5)."""
    old_text = old["text"] if isinstance(old, dict) else old.text
    old_sentences, new_sentences = split(old_text), split(new.text)
    before = set(old_sentences)
    pairs = []
    for sentence in new_sentences:
        if sentence in before:
            continue
        best = max(old_sentences, key=lambda o: difflib.SequenceMatcher(None, o, sentence).ratio(), default=None)
        if best is not None and best not in new_sentences and difflib.SequenceMatcher(None, best, sentence).ratio() >= 0.5:
            pairs.append((best, sentence))
    return pairs


def lineage_rows(run_dir: Path) -> list[dict[str, Any]]:
    """Every run of a lineage, oldest first: its verb, round, how the folder changed, and its scores after."""
    rows = []
    for run in reversed(ancestors(run_dir)):
        record = read_run_record(run)
        summary = read_summary(run) or {}
        after = summary.get("eval_after") if isinstance(summary.get("eval_after"), dict) else {}
        scores = {f"{suite}/{metric}": value for suite, metrics in after.items() if isinstance(metrics, dict)
                  for metric, value in metrics.items() if finite_number(value)}
        changes = (record.get("round") or {}).get("changes") or {}
        if not isinstance(changes, dict) or not all(isinstance(paths, list) for paths in changes.values()):
            raise BadInputError(f"{run / RUN_RECORD}: 'round.changes' is not what rlsd writes (each kind of change, "
                                "such as 'new', maps to a list of document paths); restore the file from a backup")
        rows.append({"name": run.name, "path": str(run), "verb": record.get("verb"),
                     "round": (record.get("round") or {}).get("number"),
                     "changes": {kind: len(paths) for kind, paths in changes.items()}, "scores": scores})
    return rows
