"""The replayed general chat that `sft` mixes in: the shipped answers of the embedded model stay in step with the
built-in instructions, and a fresh cache is seeded from them instead of generating again."""

from __future__ import annotations

import json
from pathlib import Path

import rlsd_cli.replay as replay

SHIPPED = Path(replay.__file__).parent / "data" / "replay"


def test_shipped_answers_match_the_current_built_in_instructions():
    files = sorted(SHIPPED.glob("*.jsonl"))
    assert files, "the embedded model's replay answers should ship with the package"
    instructions = replay.builtin_instructions()
    for path in files:
        # A renamed or edited instruction set changes the cache name: the shipped file must be regenerated with it.
        assert path.name == replay.replay_cache_path("0" * 64, 128).name.replace("0" * 16, path.name[:16])
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert [r["id"] for r in rows] == [i["id"] for i in instructions]
        assert [r["prompt"] for r in rows] == [i["prompt"] for i in instructions]


def test_a_fresh_cache_is_seeded_from_the_shipped_file_without_a_model(tmp_path, monkeypatch):
    monkeypatch.setenv("RLSD_HOME", str(tmp_path))
    shipped = sorted(SHIPPED.glob("*.jsonl"))[0]
    weights = shipped.name[:16] + "0" * 48
    # No model is passed: generating would fail, so only the shipped file can answer.
    conversations, info = replay.replay_conversations(None, weights, max_new_tokens=128)
    assert replay.replay_cache_path(weights, 128).read_text() == shipped.read_text()
    assert info["kept"] == len(conversations) > 200
    assert conversations[0][1]["role"] == "assistant" and conversations[0][1]["content"]
