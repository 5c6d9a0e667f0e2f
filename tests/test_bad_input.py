"""Bad input through the CLI, as a user meets it: exit code 2, exactly one line on stderr that names the file
(and line) and says what to do, no traceback, and nothing written. One row per kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli

DOCS = Path(__file__).parent / "data" / "docs"


def _write(root: Path, files: dict[str, bytes | str]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


GOOD_CHAT = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})

# (id, files to create, CLI args with {tmp} for the temporary folder, fragments the one error line must contain)
CASES = [
    ("missing-folder", {}, ["sft", "{tmp}/nowhere", "--dry-run"], ["nowhere", "no such folder"]),
    ("only-binary-files", {"docs/blob.bin": b"\x00\x01\x02" * 50, "docs/img.png": b"\x89PNG\r\n"},
     ["sft", "{tmp}/docs", "--dry-run"], ["blob.bin", "img.png"]),
    ("corrupt-pdf", {"docs/bad.pdf": b"%PDF-1.4 garbage", "docs/ok.md": "fine text"},
     ["sft", "{tmp}/docs", "--strict", "--dry-run"], ["bad.pdf", "unreadable PDF", "--strict"]),
    ("zero-byte-file", {"docs/empty.md": b"", "docs/ok.md": "fine text"},
     ["sft", "{tmp}/docs", "--strict", "--dry-run"], ["empty.md", "empty file"]),
    ("non-utf8-text", {"docs/latin.txt": b"caf\xe9 \xff bad", "docs/ok.md": "fine text"},
     ["sft", "{tmp}/docs", "--strict", "--dry-run"], ["latin.txt", "UTF-8"]),
    ("one-malformed-jsonl-line", {"docs/chats.jsonl": GOOD_CHAT + "\n{broken\n" + GOOD_CHAT + "\n"},
     ["sft", "{tmp}/docs", "--strict", "--dry-run"], ["chats.jsonl", "line 2", "fix or delete that line"]),
    ("qa-record-missing-answer", {"qa.jsonl": '{"question": "q", "answer": "a"}\n{"question": "q2"}\n'},
     ["eval", "qa", "--data", "{tmp}/qa.jsonl", "--model", "{tmp}/nowhere"], ["qa.jsonl:2", "'answer'"]),
    ("math-record-missing-answer", {"m/train.jsonl": '{"prompt": "1+1?", "answer": "2"}\n{"prompt": "2+2?"}\n'},
     ["reason", "--data", "{tmp}/m", "--model", "{tmp}/nowhere"], ["train.jsonl:2", "'answer'"]),
    ("unknown-model-offline", {"m.jsonl": '{"prompt": "1+1?", "answer": "2"}\n'},
     ["eval", "math", "--model", "no-such-org/no-such-model", "--data", "{tmp}/m.jsonl"],
     ["no-such-org/no-such-model"]),
    ("recipe-unknown-key", {"r.yaml": "lr: 0.001\nlearning_rate: 3\n"},
     ["sft", str(DOCS), "--recipe", "{tmp}/r.yaml", "--dry-run"], ["r.yaml:2", "learning_rate"]),
    ("recipe-wrong-type", {"r.yaml": "epochs: many\n"},
     ["sft", str(DOCS), "--recipe", "{tmp}/r.yaml", "--dry-run"], ["r.yaml", "epochs"]),
    ("unwritable-output-folder", {"a-file": "not a folder"}, ["data", "math", "--n", "5", "--out", "{tmp}/a-file/sub"],
     ["a-file/sub"]),
    ("zero-problems", {}, ["data", "math", "--n", "0", "--out", "{tmp}/m"], ["--n", "positive"]),
    ("zero-learning-rate", {}, ["sft", str(DOCS), "--lr", "0", "--dry-run"], ["--lr"]),
    ("negative-epochs", {}, ["sft", str(DOCS), "--epochs", "-1", "--dry-run"], ["--epochs"]),
    ("zero-max-new-tokens", {"m.jsonl": '{"prompt": "1+1?", "answer": "2"}\n'},
     ["eval", "math", "--max-new-tokens", "0", "--data", "{tmp}/m.jsonl"], ["--max-new-tokens"]),
    ("zero-reason-steps", {"m/train.jsonl": '{"prompt": "1+1?", "answer": "2"}\n'},
     ["reason", "--data", "{tmp}/m", "--steps", "0"], ["--steps", "positive"]),
    ("verifier-plugin-not-importable", {"m/train.jsonl": '{"prompt": "1+1?", "answer": "2"}\n'},
     ["reason", "--data", "{tmp}/m", "--verifier", "python:no_such_module_here:score"], ["no_such_module_here"]),
]


@pytest.mark.parametrize("files, args, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_naming_the_problem(tmp_path, monkeypatch, files, args, fragments):
    """In-process through the real command group (its error handling is what prints the line), so 18 cases
    do not pay 18 interpreter starts; the subprocess path is covered by the tests below."""
    from typer.testing import CliRunner

    from rlsd_cli.cli import app

    _write(tmp_path, files)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [a.replace("{tmp}", str(tmp_path)) for a in args])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.stderr, result.exception)
    assert len(lines) == 1 and lines[0].startswith("rlsd: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written, nothing lost


def test_a_bad_evaluation_file_stops_the_run_before_it_starts(tmp_path, tiny_model_dir):
    """Evaluation files are read before the model loads: a bad line fails in seconds and leaves no run folder
    behind (its name would be taken by a run that holds nothing)."""
    _write(tmp_path, {"qa.jsonl": '{"question": "q", "answer": "a"}\n{"question": "q2"}\n'})
    runs = tmp_path / "runs"
    result = run_cli("sft", str(DOCS), "--model", str(tiny_model_dir), "--runs-dir", str(runs), "--name", "x",
                     "--eval-qa", str(tmp_path / "qa.jsonl"), "--max-steps", "1")
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "qa.jsonl:2" in result.stderr
    assert not (runs / "x").exists()


def test_an_existing_run_name_is_refused_and_kept(tmp_path, tiny_model_dir):
    runs = tmp_path / "runs"
    (runs / "taken").mkdir(parents=True)
    (runs / "taken" / "run.json").write_text(json.dumps({"base_model": {"spec": "x"}, "config": {}}))
    result = run_cli("reason", "--data", str(tmp_path / "m"), "--model", str(tiny_model_dir), "--runs-dir", str(runs),
                     "--name", "taken")
    assert result.returncode == 2
    _write(tmp_path, {"m/train.jsonl": '{"prompt": "1+1?", "answer": "2"}\n'})
    result = run_cli("reason", "--data", str(tmp_path / "m"), "--model", str(tiny_model_dir), "--runs-dir", str(runs),
                     "--name", "taken", "--algo", "grpo", "--steps", "1")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "a run with this name exists" in lines[-1] and "--resume" in lines[-1], result.stderr
    assert sorted(p.name for p in (runs / "taken").iterdir()) == ["run.json"]
