"""General chat data that keeps a model able to chat while it learns documents.

By default: replay. The base model answers a built-in set of general instructions (written for this project,
`rlsd_cli/data/general_instructions.jsonl`, none taken from an evaluation set) once per base model; those
answers are cached under `$RLSD_HOME/replay/` and mixed into training, so the adapter is pulled back toward
the base model's own behaviour. Answers that never reached end-of-turn are cut at their last full sentence
(or dropped), so the model does not learn to ramble. `--chat-data PATH` replaces replay with the user's own
conversations (JSONL with `messages`).
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from . import env
from .chat_format import validate_messages
from .console import say
from .errors import BadInputError
from .fsutil import atomic_write_text, read_json_lines, seed_cache
from .suites.base import read_jsonl

GENERAL_INSTRUCTIONS = "general_instructions.jsonl"
# Tasks written for this project, each with one checkable format constraint of the kinds instruction-following
# benchmarks test (a title in <<...>>, a P.S., lowercase, keywords, no commas, an end phrase, ...); none is taken
# from an evaluation set. `recover --prompts format|all` samples them: a format the base model follows is only
# brought back where a prompt asks for it.
FORMAT_INSTRUCTIONS = "format_instructions.jsonl"
# Short world-knowledge and everyday-fact questions written for this project, none asking a `knowledge` suite
# question or naming one of its answers: documents hijack this question shape ("The closest star is Kestrel"),
# so `recover --prompts format+factual` tries distilling the base on it. Measured: it did not repair retention
# more than `format` alone (docs/forgetting.md).
FACTUAL_INSTRUCTIONS = "factual_instructions.jsonl"


# The built-in sets by name (files in rlsd_cli/data/): `general` = 240 everyday tasks, `format` = 72 tasks that each
# ask for a checkable format, `factual` = 160 short world-knowledge questions, `all` = the three. `sft --replay`
# pools the named sets; `recover --prompts` draws them in turn.
BUILTIN_SETS = {"general": (GENERAL_INSTRUCTIONS,), "format": (FORMAT_INSTRUCTIONS,), "factual": (FACTUAL_INSTRUCTIONS,),
                "all": (GENERAL_INSTRUCTIONS, FORMAT_INSTRUCTIONS, FACTUAL_INSTRUCTIONS)}


def builtin_instructions(name: str = GENERAL_INSTRUCTIONS) -> list[dict[str, str]]:
    text = resources.files("rlsd_cli.data").joinpath(name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def builtin_set_files(spec: str, refusal: str, choices: str = "give built-in sets") -> list[str]:
    """The instruction files of built-in sets named in `spec`, joined with '+' (each file once, in order).
    `refusal` opens the error for an unknown name (the flag and what else it could have been)."""
    names = [name.strip() for name in spec.split("+")]
    unknown = [name for name in names if name not in BUILTIN_SETS]
    if unknown:
        raise BadInputError(f"{refusal} {unknown[0]!r} is no built-in set; {choices} joined with '+': "
                            f"{', '.join(BUILTIN_SETS)}")
    return list(dict.fromkeys(file for name in names for file in BUILTIN_SETS[name]))


def read_chat_data(path: Path) -> list[list[dict[str, str]]]:
    """Conversations from JSONL: `messages`, or `prompt` + `completion`."""
    conversations = []
    for number, record in read_jsonl(Path(path)):
        where = f"{path}:{number}"
        if "messages" in record:
            conversations.append(validate_messages(record["messages"], where))
        elif isinstance(record.get("prompt"), str) and isinstance(record.get("completion"), str):
            conversations.append([{"role": "user", "content": record["prompt"]}, {"role": "assistant", "content": record["completion"]}])
        else:
            raise BadInputError(f"{where}: each line needs 'messages' (a chat) or 'prompt' and 'completion'")
        if not any(m["role"] == "assistant" for m in conversations[-1]):
            raise BadInputError(f"{where}: the conversation has no assistant turn to train on")
    return conversations


def read_prompts(path: Path) -> list[list[dict[str, str]]]:
    """Prompts (no answers) from JSONL: `prompt`, or `messages` ending with a user turn."""
    prompts = []
    for number, record in read_jsonl(Path(path)):
        where = f"{path}:{number}"
        if isinstance(record.get("prompt"), str) and record["prompt"].strip():
            prompts.append([{"role": "user", "content": record["prompt"]}])
        elif "messages" in record:
            messages = validate_messages(record["messages"], where)
            if messages[-1]["role"] != "user":
                raise BadInputError(f"{where}: 'messages' must end with a user turn (the prompt to answer)")
            prompts.append(messages)
        else:
            raise BadInputError(f"{where}: each line needs 'prompt' or 'messages'")
    return prompts


def cut_unfinished(text: str) -> str | None:
    """An answer that hit the token limit, cut after its last complete sentence; None if nothing is left."""
    match = list(re.finditer(r"[.!?](?=\s|$)", text))
    if not match:
        return None
    cut = text[: match[-1].end()].strip()
    return cut if len(cut) >= 20 else None


# The embedded model's replay answers, shipped so a fresh machine need not generate them (see replay_conversations).
SHIPPED_REPLAY = Path(__file__).parent / "data" / "replay"


def replay_cache_path(weights_sha256: str, max_new_tokens: int, instructions_file: str = GENERAL_INSTRUCTIONS) -> Path:
    instructions = hashlib.sha256(json.dumps(builtin_instructions(instructions_file)).encode()).hexdigest()[:8]
    return Path(env.rlsd_home()) / "replay" / f"{weights_sha256[:16]}-{instructions}-{max_new_tokens}.jsonl"


def replay_conversations(loaded, weights_sha256: str, max_new_tokens: int, sets: str,
                         batch_size: int = 64) -> tuple[list[list[dict[str, str]]], dict[str, Any]]:
    """The base model's answers to the built-in instruction sets named in `sets`, generated once per base model and
    set, and cached.

    `loaded.model` may carry a fresh adapter; it is switched off so the answers are the base model's own.
    """
    conversations: list[list[dict[str, str]]] = []
    info: dict[str, Any] = {"source": "replay", "sets": sets, "cache": [], "instructions": 0, "kept": 0,
                            "cut_at_sentence": 0, "dropped_unfinished": 0}
    for file in builtin_set_files(sets, f"--replay {sets}:"):
        rows, path = _cached_answers(loaded, weights_sha256, max_new_tokens, file, batch_size)
        kept = [r for r in rows if r["answer"]]
        conversations += [[{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["answer"]}]
                          for r in kept]
        info["cache"].append(str(path))
        info["instructions"] += len(rows)
        info["kept"] += len(kept)
        info["cut_at_sentence"] += sum(1 for r in kept if not r["finished"])
        info["dropped_unfinished"] += len(rows) - len(kept)
    return conversations, info


def _cached_answers(loaded, weights_sha256: str, max_new_tokens: int, file: str, batch_size: int) -> tuple[list[dict], Path]:
    from filelock import FileLock

    path = replay_cache_path(weights_sha256, max_new_tokens, file)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        seed_cache(path, SHIPPED_REPLAY / path.name)  # generated by this function, greedy
        if not path.is_file():
            from .generation import GenerationSettings, generate

            instructions = builtin_instructions(file)
            say(f"replay: the base model answers {len(instructions)} instructions of {file} once (cached in {path})")
            conversations = [[{"role": "user", "content": item["prompt"]}] for item in instructions]
            adapter_off = getattr(loaded.model, "disable_adapter", None)
            settings = GenerationSettings(max_new_tokens=max_new_tokens, batch_size=batch_size)
            if adapter_off is not None:
                with adapter_off():
                    completions, _ = generate(loaded, conversations, settings, "replay answers")
            else:
                completions, _ = generate(loaded, conversations, settings, "replay answers")
            lines = []
            for item, completion in zip(instructions, completions, strict=True):
                answer = completion.text if completion.finished else cut_unfinished(completion.text)
                lines.append(json.dumps({"id": item["id"], "prompt": item["prompt"], "answer": answer, "finished": completion.finished}))
            atomic_write_text(path, "\n".join(lines) + "\n")
    rows = read_json_lines(path, ("prompt", "answer", "finished"), "delete it and rlsd generates the base model's answers again")
    return rows, path
