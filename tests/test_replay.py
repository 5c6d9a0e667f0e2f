"""The replayed general chat that `sft` mixes in: the shipped answers of the embedded model stay in step with the
built-in instructions and with the embedded model's weights, and a fresh cache is seeded from them instead of
generating again."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import rlsd_cli.replay as replay
from rlsd_cli.sft import SFTConfig
from rlsd_cli.suites import get_suite

IFEVAL = get_suite("ifeval").data_file(None)  # the embedded copy

TOKENS = SFTConfig.replay_max_new_tokens  # the answers sft asks for by default


def _shipped():
    files = sorted(replay.SHIPPED_REPLAY.glob("*.jsonl"))
    assert files, "the embedded model's replay answers should ship with the package"
    return files


def test_shipped_answers_match_the_current_built_in_instructions():
    names = {}
    for path in _shipped():
        # An edited instruction set changes the cache name: the shipped file must be regenerated with it.
        sets = [f for f in (replay.GENERAL_INSTRUCTIONS, replay.FACTUAL_INSTRUCTIONS, replay.FORMAT_INSTRUCTIONS)
                if path.name == replay.replay_cache_path(path.name[:16] + "0" * 48, TOKENS, f).name]
        assert sets, f"{path.name} matches no current instruction set"
        names[sets[0]] = path
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert [(r["id"], r["prompt"]) for r in rows] == [(i["id"], i["prompt"]) for i in replay.builtin_instructions(sets[0])]
    assert {replay.GENERAL_INSTRUCTIONS, replay.FACTUAL_INSTRUCTIONS} <= set(names)


@pytest.mark.parametrize("instructions", [replay.GENERAL_INSTRUCTIONS, replay.FACTUAL_INSTRUCTIONS])
def test_the_shipped_answers_are_found_for_the_embedded_model(smollm_dir, instructions):
    """The converted weights must hash to the shipped file's name, or every fresh machine regenerates them."""
    from rlsd_cli.model import weights_hash

    path = replay.replay_cache_path(weights_hash(smollm_dir), TOKENS, instructions)
    assert (replay.SHIPPED_REPLAY / path.name).is_file(), f"no shipped replay answers named {path.name}"


def test_a_fresh_cache_is_seeded_from_the_shipped_file_without_a_model(tmp_path, monkeypatch):
    monkeypatch.setenv("RLSD_HOME", str(tmp_path))
    weights = _shipped()[0].name[:16] + "0" * 48
    # No model is passed: generating would fail, so only the shipped files can answer.
    conversations, info = replay.replay_conversations(None, weights, max_new_tokens=TOKENS, sets="general+factual")
    for instructions in (replay.GENERAL_INSTRUCTIONS, replay.FACTUAL_INSTRUCTIONS):
        path = replay.replay_cache_path(weights, TOKENS, instructions)
        assert path.read_text() == (replay.SHIPPED_REPLAY / path.name).read_text()
    general = len(replay.builtin_instructions()) - 10
    assert info["kept"] == len(conversations) > general + 150 and len(info["cache"]) == 2
    assert conversations[0][1]["role"] == "assistant" and conversations[0][1]["content"]
    assert conversations[-1][0]["content"] == replay.builtin_instructions(replay.FACTUAL_INSTRUCTIONS)[-1]["prompt"]


@pytest.mark.parametrize("line", ['{"prompt": "p", "answer": "a"', "[" * 100_000, '["not", "a", "row"]', '{"prompt": "p"}'])
def test_a_damaged_answers_cache_is_one_line_naming_it_and_its_line(tmp_path, monkeypatch, line):
    """A cache line cut short, nested past the parser's depth or not a row raised ValueError, RecursionError or
    KeyError; rlsd wrote the file, so the fix is to delete it."""
    from rlsd_cli.errors import BadInputError

    monkeypatch.setenv("RLSD_HOME", str(tmp_path))
    weights = _shipped()[0].name[:16] + "0" * 48
    path = replay.replay_cache_path(weights, TOKENS, replay.GENERAL_INSTRUCTIONS)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"prompt": "p", "answer": "a", "finished": True}) + "\n" + line + "\n")
    with pytest.raises(BadInputError, match=rf"{re.escape(str(path))}:2: damaged .*delete it") as error:
        replay.replay_conversations(None, weights, max_new_tokens=TOKENS, sets="general")
    assert "\n" not in str(error.value)


def _word_runs(text: str, n: int = 6) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def test_the_format_instructions_share_no_six_word_run_with_ifeval():
    """recover trains on them and the demo scores IFEval: a shared phrase would be training on the test."""
    ifeval = set().union(*(_word_runs(json.loads(line)["prompt"]) for line in IFEVAL.read_text().splitlines() if line.strip()))
    shared = {item["id"]: sorted(_word_runs(item["prompt"]) & ifeval)
              for item in replay.builtin_instructions(replay.FORMAT_INSTRUCTIONS)}
    assert not {k: v for k, v in shared.items() if v}


def test_the_format_instructions_are_the_files_generator_output(tmp_path):
    """The shipped file is what its seeded generator writes (so it can be read, and remade, from the script)."""
    script = Path(replay.__file__).with_name("data") / "build_format_instructions.py"
    copy = tmp_path / script.name
    copy.write_text(script.read_text())
    subprocess.run([sys.executable, str(copy)], check=True, capture_output=True)
    assert (tmp_path / replay.FORMAT_INSTRUCTIONS).read_text() == (script.parent / replay.FORMAT_INSTRUCTIONS).read_text()
    rows = replay.builtin_instructions(replay.FORMAT_INSTRUCTIONS)
    assert len(rows) >= 60 and len({r["prompt"] for r in rows}) == len(rows)
