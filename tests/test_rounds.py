"""Continual learning: `sft DOCS --from RUN` plans a round from how the folder changed, trains what is new or
changed, replays what still holds, and retires the knowledge of changed and removed documents for good."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from rlsd_cli.lineage import DOCUMENTS, KNOWLEDGE

CHAT = Path(__file__).parent / "data" / "chat_small.jsonl"
V1 = {
    "portal.md": "# Portal\n\nThe staff portal is called Lantern. It opened in 2019 in Harnby.\n",
    "canteen.md": "# Canteen\n\nThe canteen is called Brightwater. Lunch costs 6 euros for every employee.\n",
    "bus.md": "# Bus\n\nThe shuttle bus leaves from Gate 4 every 20 minutes.\n",
}
V2 = {
    "portal.md": "# Portal\n\nThe staff portal is called Harbour. It opened in 2019 in Harnby.\n",  # changed
    "canteen.md": V1["canteen.md"],  # unchanged
    "parking.md": "# Parking\n\nThe car park has 140 spaces and is run by Ingrid Halvorsen.\n",  # new
}  # bus.md removed
TRAIN = ["--chat-data", str(CHAT), "--max-length", "64", "--chunk-overlap", "8", "--max-steps", "2", "--batch-size", "4"]


def _folder(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


@pytest.fixture(scope="module")
def first_round(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("rounds")
    runs = root / "runs"
    result = run_cli("sft", str(_folder(root / "v1", V1)), "--model", str(tiny_model_dir), *TRAIN, "--runs-dir", str(runs),
                     "--name", "r1", "--json")
    assert result.returncode == 0, result.stderr
    return root, runs


def _knowledge(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / KNOWLEDGE).read_text().splitlines()]


def test_a_round_records_its_documents_and_knowledge_by_version(first_round):
    _, runs = first_round
    documents = json.loads((runs / "r1" / DOCUMENTS).read_text())
    assert set(documents) == set(V1)
    pairs = _knowledge(runs / "r1")
    assert {p["source"] for p in pairs} == set(V1)
    assert all(p["sha256"] == documents[p["source"]]["sha256"] for p in pairs)
    assert any("Lantern" in p["answer"] for p in pairs)


def test_dry_run_prints_the_plan_of_the_round(first_round, tmp_path):
    root, runs = first_round
    folder = _folder(tmp_path / "v2", V2)
    result = run_cli("sft", str(folder), "--from", str(runs / "r1"), "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["changes"] == {"unchanged": ["canteen.md"], "changed": ["portal.md"], "new": ["parking.md"], "removed": ["bus.md"]}
    assert plan["replayed_pairs_available"] > 0 and "update" not in plan["augmented_by_kind"]  # off by default
    with_updates = run_cli("sft", str(folder), "--from", str(runs / "r1"), "--update-pairs", "--dry-run", "--json")
    assert json.loads(with_updates.stdout)["augmented_by_kind"]["update"] == 1, with_updates.stderr


def test_retired_knowledge_never_reaches_a_later_round_or_recover(first_round, tiny_model_dir, monkeypatch):
    """Round two from round one, recover on it, and round three from the recover run: no pair made from the old
    portal document or the removed bus document is trained, carried or anchored after round one."""
    import datasets

    root, runs = first_round
    v2 = _folder(root / "v2-train", V2)
    trained: list[str] = []
    real_from_list = datasets.Dataset.from_list

    def capture(rows, *args, **kwargs):
        from transformers import AutoTokenizer

        # What is trained is what the loss sees: the target tokens (a "Lantern ... still true?" question of an
        # update pair names the old value as context, and answers with the new one).
        tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
        trained.extend(tokenizer.decode([t for t, m in zip(r["input_ids"], r["assistant_masks"], strict=True) if m])
                       for r in rows if "input_ids" in r)
        return real_from_list(rows, *args, **kwargs)

    monkeypatch.setattr(datasets.Dataset, "from_list", capture)
    from rlsd_cli.cli import main

    def rlsd(*args):
        with pytest.raises(SystemExit) as done:
            main([*args])
        assert done.value.code in (0, None)

    monkeypatch.setattr("sys.argv", ["rlsd"])
    rlsd("sft", str(v2), "--from", str(runs / "r1"), *TRAIN, "--update-pairs", "--runs-dir", str(runs), "--name", "r2")
    assert trained and not any("Lantern" in text or "shuttle" in text for text in trained)
    assert any("Harbour" in text for text in trained) and any("Brightwater" in text for text in trained)  # new, and replayed
    knowledge = _knowledge(runs / "r2")
    old_portal = json.loads((runs / "r1" / DOCUMENTS).read_text())["portal.md"]["sha256"]
    assert not [p for p in knowledge if p["source"] == "bus.md" or p["sha256"] == old_portal or "Lantern" in p["answer"]]
    assert [p for p in knowledge if p["kind"] == "update"] == [{
        "prompt": "The staff portal is called Lantern. Is that still true?",
        "answer": "No, not any more. The staff portal is called Harbour.", "kind": "update", "source": "portal.md",
        "sha256": json.loads((runs / "r2" / DOCUMENTS).read_text())["portal.md"]["sha256"], "round": 2}]
    # Pairs carried from round one keep its number: recover anchors the newest round's pairs first.
    assert {p["round"] for p in knowledge if p["source"] == "canteen.md"} == {1}
    assert {p["source"] for p in knowledge} == {"portal.md", "canteen.md", "parking.md"}
    record = json.loads((runs / "r2" / "run.json").read_text())
    assert record["round"]["number"] == 2 and record["parent"] == str((runs / "r1").resolve())

    from rlsd_cli.recover import knowledge_conversations

    anchored = knowledge_conversations(runs / "r2", None)
    assert anchored and not any("Lantern" in m[1]["content"] for m, _ in anchored)

    trained.clear()
    rlsd("recover", "--from", str(runs / "r2"), "--steps", "1", "--prompts-per-step", "2", "--samples-per-prompt", "2",
         "--max-new-tokens", "8", "--runs-dir", str(runs), "--name", "r2-rec")
    v3 = _folder(root / "v3", {**V2, "canteen.md": "# Canteen\n\nThe canteen is called Seaview. Lunch costs 6 euros for every employee.\n"})
    rlsd("sft", str(v3), "--from", str(runs / "r2-rec"), *TRAIN, "--runs-dir", str(runs), "--name", "r3")
    assert trained and not any(word in text for text in trained for word in ("Lantern", "shuttle", "Brightwater"))
    record = json.loads((runs / "r3" / "run.json").read_text())
    assert record["round"]["number"] == 3 and record["round"]["knowledge_from"] == str((runs / "r2").resolve())
    lineage = json.loads(run_cli("runs", "show", str(runs / "r3"), "--json").stdout)["lineage"]
    assert [row["name"] for row in lineage] == ["r1", "r2", "r2-rec", "r3"]
    assert [row["round"] for row in lineage] == [1, 2, None, 3]


def test_a_round_on_another_base_model_is_one_line_and_exit_2(first_round, tiny_gemma_dir, tmp_path):
    _, runs = first_round
    result = run_cli("sft", str(_folder(tmp_path / "v2", V2)), "--from", str(runs / "r1"), "--model", str(tiny_gemma_dir),
                     "--dry-run")
    assert result.returncode == 2
    assert result.stderr.startswith("rlsd: error: --model") and "continues its lineage's base model" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_folder_with_nothing_new_is_refused(first_round, tmp_path):
    _, runs = first_round
    result = run_cli("sft", str(_folder(tmp_path / "same", V1)), "--from", str(runs / "r1"), "--dry-run")
    assert result.returncode == 2 and "nothing to learn" in result.stderr
