"""Bad input through the CLI, as a user meets it: exit code 2, exactly one line on stderr that names the file
(and line) and says what to do, no traceback, and nothing written. One row per kind of bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import run_cli

DOCS = Path(__file__).parent / "data" / "docs"


def _write(root: Path, files: dict[str, bytes | str]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


# A run folder as far as `--from` reads before any model loads (the adapter is never opened by --dry-run).
FAKE_RUN = {"run/run.json": '{"verb": "sft", "base_model": {"spec": "smollm2-135m"}}',
            "run/adapter/adapter_config.json": "{}", "run/adapter/adapter_model.safetensors": b""}

QA_TWO = "".join(json.dumps({"id": k, "question": f"Who is {k}?", "answer": k}) + "\n" for k in ("Ada", "Bo"))
ANSWERS_TWO = "".join(json.dumps({"id": k, "response": k}) + "\n" for k in ("Ada", "Bo"))

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
    ("math-answer-a-word", {"m/train.jsonl": '{"prompt": "1+1?", "answer": "2"}\n{"prompt": "How many?", "answer": "two"}\n'},
     ["reason", "--data", "{tmp}/m", "--model", "{tmp}/nowhere"], ["train.jsonl:2", "'two'", "2, not two"]),
    ("qa-question-a-number", {"qa.jsonl": '{"question": 5, "answer": "a"}\n'},
     ["eval", "qa", "--data", "{tmp}/qa.jsonl", "--model", "{tmp}/nowhere"], ["qa.jsonl:1", "'question' is int 5", "text"]),
    ("chat-opening-with-the-assistant", {"docs/c.jsonl": '{"messages": [{"role": "assistant", "content": "a"}, '
                                         '{"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}]}\n'},
     ["sft", "{tmp}/docs", "--strict", "--dry-run"], ["c.jsonl", "opens with an assistant turn"]),
    ("nothing-to-train-on", {"docs/c.jsonl": '{"messages": [{"role": "system", "content": "s"}]}\n'},
     ["sft", "{tmp}/docs", "--dry-run"], ["docs", "nothing to train on"]),
    ("tracker-not-installed", {}, ["sft", str(DOCS), "--report-to", "wandb", "--dry-run"], ["--report-to wandb", "not installed"]),
    ("seed-out-of-range", {}, ["sft", str(DOCS), "--seed", "4294967296", "--dry-run"], ["--seed", "4294967295"]),
    ("absurd-batch-size", {}, ["sft", str(DOCS), "--batch-size", "999999999999", "--dry-run"], ["--batch-size", "65536"]),
    ("json-number-too-long", {"qa.jsonl": '{"question": "q", "answer": ' + "1" * 5001 + '}\n'},
     ["eval", "qa", "--data", "{tmp}/qa.jsonl", "--model", "{tmp}/nowhere"], ["qa.jsonl:1", "4300 digits"]),
    ("lone-surrogate-escape", {"qa.jsonl": '{"question": "\\ud800 q", "answer": "a"}\n'},
     ["eval", "qa", "--data", "{tmp}/qa.jsonl", "--model", "{tmp}/nowhere"], ["qa.jsonl:1", "surrogate"]),
    ("recipe-true-as-a-number", {"r.yaml": "epochs: 2\nlr: true\n"},
     ["sft", str(DOCS), "--recipe", "{tmp}/r.yaml", "--dry-run"], ["r.yaml:2", "--lr", "not true"]),
    ("recipe-base-60-number", {"r.yaml": "epochs: 1:30\n"},
     ["sft", str(DOCS), "--recipe", "{tmp}/r.yaml", "--dry-run"], ["r.yaml:1", "epochs"]),
    ("unknown-model-offline", {"m.jsonl": '{"prompt": "1+1?", "answer": "2"}\n'},
     ["eval", "math", "--model", "no-such-org/no-such-model", "--data", "{tmp}/m.jsonl"],
     ["no-such-org/no-such-model"]),
    ("recipe-unknown-key", {"r.yaml": "lr: 0.001\nlearning_rate: 3\n"},
     ["sft", str(DOCS), "--recipe", "{tmp}/r.yaml", "--dry-run"], ["r.yaml:2", "learning_rate"]),
    ("recipe-wrong-type", {"r.yaml": "epochs: many\n"},
     ["sft", str(DOCS), "--recipe", "{tmp}/r.yaml", "--dry-run"], ["r.yaml", "epochs"]),
    ("unwritable-output-folder", {"a-file": "not a folder"}, ["data", "math", "--n", "5", "--out", "{tmp}/a-file/sub"],
     ["a-file/sub"]),
    ("zero-problems", {}, ["data", "math", "--n", "0", "--out", "{tmp}/m"], ["--n", "[2, 1000000]"]),
    ("one-problem-no-test-set", {}, ["data", "math", "--n", "1", "--out", "{tmp}/m"], ["--n", "got 1"]),
    ("absurd-problem-count", {}, ["data", "math", "--n", "99999999999999999999", "--out", "{tmp}/m"], ["--n"]),
    ("zero-learning-rate", {}, ["sft", str(DOCS), "--lr", "0", "--dry-run"], ["--lr"]),
    ("negative-epochs", {}, ["sft", str(DOCS), "--epochs", "-1", "--dry-run"], ["--epochs"]),
    ("absurd-lora-rank", {}, ["sft", str(DOCS), "--lora-r", "99999999999999999999999", "--dry-run"], ["--lora-r", "4096"]),
    ("unknown-replay-set", {}, ["sft", str(DOCS), "--replay", "general+facts", "--dry-run"], ["--replay general+facts", "'facts' is no built-in set", "factual"]),
    ("zero-max-new-tokens", {"m.jsonl": '{"prompt": "1+1?", "answer": "2"}\n'},
     ["eval", "math", "--max-new-tokens", "0", "--data", "{tmp}/m.jsonl"], ["--max-new-tokens"]),
    ("zero-reason-steps", {"m/train.jsonl": '{"prompt": "1+1?", "answer": "2"}\n'},
     ["reason", "--data", "{tmp}/m", "--steps", "0"], ["--steps", "positive"]),
    ("verifier-plugin-not-importable", {"m/train.jsonl": '{"prompt": "1+1?", "answer": "2"}\n'},
     ["reason", "--data", "{tmp}/m", "--verifier", "python:no_such_module_here:score"], ["no_such_module_here"]),
    # Numbers that are not numbers: refused for every float option, as flags and in recipes.
    ("nan-learning-rate", {}, ["sft", str(DOCS), "--lr", "nan", "--dry-run"], ["--lr", "finite"]),
    ("infinite-learning-rate", {}, ["sft", str(DOCS), "--lr", "inf", "--dry-run"], ["--lr", "finite"]),
    ("nan-epochs", {}, ["sft", str(DOCS), "--epochs", "nan", "--dry-run"], ["--epochs", "finite"]),
    ("nan-temperature", {"m/train.jsonl": '{"prompt": "1+1?", "answer": "2"}\n'},
     ["reason", "--data", "{tmp}/m", "--temperature", "nan"], ["--temperature", "finite"]),
    ("nan-min-score", {"m.jsonl": '{"prompt": "1+1?", "answer": "2"}\n', "r.jsonl": '{"id": 1, "response": "2"}\n'},
     ["eval", "math", "--data", "{tmp}/m.jsonl", "--responses", "{tmp}/r.jsonl", "--min-score", "nan"], ["--min-score", "finite"]),
    ("nan-in-a-recipe", {"r.yaml": "lr: .nan\n"}, ["sft", str(DOCS), "--recipe", "{tmp}/r.yaml", "--dry-run"], ["--lr", "finite"]),
    ("keep-mix-out-of-range", {}, ["recover", "--from", "{tmp}/nowhere", "--keep-mix", "1.5"], ["--keep-mix", "[0, 1)"]),
    # Checked before any model work.
    ("negative-seed", {}, ["sft", str(DOCS), "--seed", "-1", "--dry-run"], ["--seed"]),
    ("run-name-with-a-slash", {}, ["sft", str(DOCS), "--name", "a/b", "--dry-run"], ["--name", "one folder name"]),
    ("unknown-eval-suite", {}, ["sft", str(DOCS), "--eval", "nosuchsuite", "--dry-run"], ["--eval 'nosuchsuite'"]),
    ("ifeval-argument-of-another-instruction", {
        "if.jsonl": json.dumps({"key": 1, "prompt": "p", "instruction_id_list": ["length_constraints:number_words"],
                                "kwargs": [{"num_wordz": 3}]}) + "\n", "r.jsonl": '{"key": 1, "response": "x"}\n'},
     ["eval", "ifeval", "--data", "{tmp}/if.jsonl", "--responses", "{tmp}/r.jsonl"], ["if.jsonl:1", "num_wordz"]),
    ("ifeval-argument-of-the-wrong-type", {
        "if.jsonl": json.dumps({"key": 1, "prompt": "p", "instruction_id_list": ["length_constraints:number_words"],
                                "kwargs": [{"num_words": "many", "relation": "less than"}]}) + "\n",
        "r.jsonl": '{"key": 1, "response": "x"}\n'},
     ["eval", "ifeval", "--data", "{tmp}/if.jsonl", "--responses", "{tmp}/r.jsonl"], ["if.jsonl:1", "not usable"]),
    ("empty-model-spec", {}, ["chat", "--model", "", "-p", "hi"], ["--model is empty"]),
    ("empty-model-spec-for-sft", {}, ["sft", str(DOCS), "--model", " ", "--dry-run"], ["--model is empty"]),
    ("continue-from-nowhere", {}, ["sft", str(DOCS), "--from", "{tmp}/nowhere", "--dry-run"], ["nowhere", "no such file"]),
    ("continue-from-a-plain-folder", {"plain/a.txt": "x"}, ["sft", str(DOCS), "--from", "{tmp}/plain", "--dry-run"],
     ["plain", "run folder"]),
    # Usage errors: one line too, not click's box.
    ("not-a-number", {}, ["sft", str(DOCS), "--lr", "abc", "--dry-run"], ["Invalid value for '--lr'", "rlsd sft --help"]),
    ("unknown-flag", {}, ["sft", str(DOCS), "--nosuch"], ["No such option: --nosuch"]),
    ("unknown-verb", {}, ["nosuchverb"], ["No such command 'nosuchverb'"]),
    # Recipes.
    ("recipe-empty-value", {"r.yaml": "lr:\n"}, ["sft", str(DOCS), "--recipe", "{tmp}/r.yaml", "--dry-run"], ["r.yaml:1", "no value"]),
    ("recipe-not-utf8", {"r.yaml": b"lr: 0.1 \xff\xfe\n"}, ["recipes", "show", "{tmp}/r.yaml"], ["r.yaml", "UTF-8"]),
    ("recipe-alias-bomb", {"r.yaml": 'a: &a ["x","x","x","x"]\nb: &b [*a,*a,*a,*a]\nc: [*b,*b,*b,*b]\n'},
     ["sft", str(DOCS), "--recipe", "{tmp}/r.yaml", "--dry-run"], ["r.yaml", "anchors and aliases"]),
    ("recipe-too-big", {"r.yaml": "lr: 0.001\n" + "# padding\n" * 8000}, ["sft", str(DOCS), "--recipe", "{tmp}/r.yaml", "--dry-run"],
     ["r.yaml", "more than a recipe"]),
    ("recipe-not-a-mapping", {"r.yaml": "- lr\n- 0.1\n"}, ["sft", str(DOCS), "--recipe", "{tmp}/r.yaml", "--dry-run"], ["r.yaml", "mapping"]),
    # Quiet wrong answers, now loud.
    ("duplicate-response-keys", {"m.jsonl": '{"prompt": "1+1?", "answer": "2"}\n',
                                 "r.jsonl": '{"id": 1, "response": "2"}\n{"id": 1, "response": "3"}\n'},
     ["eval", "math", "--data", "{tmp}/m.jsonl", "--responses", "{tmp}/r.jsonl"], ["r.jsonl:2", "a second response"]),
    ("no-training-problems", {}, ["data", "math", "--n", "2", "--test-fraction", "0.99", "--out", "{tmp}/m"], ["no training problem"]),
    ("stale-rate-gated-from-below", {"q.jsonl": '{"question": "q", "answer": "a", "stale": "b"}\n', "r.jsonl": '{"id": 1, "response": "a"}\n'},
     ["eval", "qa", "--data", "{tmp}/q.jsonl", "--responses", "{tmp}/r.jsonl", "--metric", "stale_rate", "--min-score", "0.1"],
     ["lower is better", "--max-score"]),
    ("corrupt-run-record", {"runs/bad/run.json": "{not json"}, ["runs", "show", "{tmp}/runs/bad"], ["run.json", "not valid JSON"]),
    ("compare-one-model", {}, ["eval", "compare", "smollm2-135m"], ["at least two"]),
    # A run folder damaged by hand: each record is checked where it is read.
    ("from-run-with-a-broken-knowledge-line", {**FAKE_RUN, "run/documents.json": '{"a.md": {"sha256": "x", "text": "old"}}',
                                               "run/knowledge_prompts.jsonl": '{"prompt": "q", "answer": "a", "source": "a.md"}\nNOT JSON\n'},
     ["sft", str(DOCS), "--from", "{tmp}/run", "--dry-run"], ["knowledge_prompts.jsonl:2", "fix or delete"]),
    ("from-run-with-a-misshapen-document-record", {**FAKE_RUN, "run/documents.json": '{"a.md": "not a record"}'},
     ["sft", str(DOCS), "--from", "{tmp}/run", "--dry-run"], ["documents.json", "document record"]),
    ("from-run-whose-base-is-a-number", {**FAKE_RUN, "run/run.json": '{"verb": "sft", "base_model": {"spec": 123}}'},
     ["sft", str(DOCS), "--from", "{tmp}/run", "--dry-run"], ["run.json", "base_model.spec"]),
    # Gates that could never read right.
    ("stale-answer-inside-the-answer", {"q.jsonl": '{"question": "q", "answer": "Marlow Reach", "stale": "Marlow"}\n'},
     ["eval", "qa", "--data", "{tmp}/q.jsonl", "--model", "{tmp}/nowhere"], ["q.jsonl:1", "part of the accepted answer"]),
    ("answer-true", {"q.jsonl": '{"question": "q", "answer": true}\n'},
     ["eval", "qa", "--data", "{tmp}/q.jsonl", "--model", "{tmp}/nowhere"], ["q.jsonl:1", "'answer'"]),
    ("answer-without-words", {"q.jsonl": '{"question": "q", "answer": "!!!"}\n'},
     ["eval", "qa", "--data", "{tmp}/q.jsonl", "--model", "{tmp}/nowhere"], ["q.jsonl:1", "no letters or digits"]),
    # What the real run refuses before its model loads, --dry-run refuses too.
    ("dry-run-with-a-broken-eval-qa-file", {"q.jsonl": '{"question": "q", "answer": "a"}\n{bad\n'},
     ["sft", str(DOCS), "--eval-qa", "{tmp}/q.jsonl", "--dry-run"], ["q.jsonl:2"]),
    ("dry-run-with-runs-dir-a-file", {"a-file": "x"}, ["sft", str(DOCS), "--runs-dir", "{tmp}/a-file", "--dry-run"],
     ["a-file", "--runs-dir"]),
    ("dry-run-resuming-no-run", {}, ["sft", str(DOCS), "--resume", "--name", "nope", "--dry-run"], ["nope", "--resume"]),
    ("run-name-too-long", {}, ["sft", str(DOCS), "--name", "x" * 300, "--dry-run"], ["--name", "200 bytes"]),
    ("run-name-of-undecodable-bytes", {}, ["sft", str(DOCS), "--name", "run\udcff", "--dry-run"], ["--name", "printable"]),
    # Recipes name their line, also when the value is out of bounds or the command line overrides it.
    ("recipe-value-out-of-bounds", {"r.yaml": "epochs: 2\nlr: -1\n"}, ["sft", str(DOCS), "--recipe", "{tmp}/r.yaml", "--dry-run"],
     ["r.yaml:2", "--lr must be positive"]),
    ("recipe-wrong-type-under-a-flag", {"r.yaml": "lr: fast\n"},
     ["sft", str(DOCS), "--lr", "0.1", "--recipe", "{tmp}/r.yaml", "--dry-run"], ["r.yaml:1", "lr"]),
    ("recipe-key-twice", {"r.yaml": "lr: 0.1\nepochs: 2\nlr: 0.2\n"}, ["sft", str(DOCS), "--recipe", "{tmp}/r.yaml", "--dry-run"],
     ["r.yaml:3", "set twice"]),
    # Found by a hostile-input sweep (2026-12-07): these were accepted with exit 0, or raised a traceback.
    ("max-steps-zero", {"docs/ok.md": "fine text"}, ["sft", "{tmp}/docs", "--max-steps", "0", "--dry-run"],
     ["--max-steps 0", "-1"]),
    ("gate-outside-a-share", {"qa.jsonl": QA_TWO, "answers.jsonl": ANSWERS_TWO},
     ["eval", "qa", "--data", "{tmp}/qa.jsonl", "--responses", "{tmp}/answers.jsonl", "--min-score", "1.5"],
     ["--min-score 1.5", "from 0 to 1"]),
    ("gate-on-part-of-the-answers", {"qa.jsonl": QA_TWO, "answers.jsonl": ANSWERS_TWO.splitlines()[0]},
     ["eval", "qa", "--data", "{tmp}/qa.jsonl", "--responses", "{tmp}/answers.jsonl", "--min-score", "0.5"],
     ["answers.jsonl", "no response for 1 of the 2 items"]),
    ("metric-it-does-not-report", {"qa.jsonl": QA_TWO, "answers.jsonl": ANSWERS_TWO},
     ["eval", "qa", "--data", "{tmp}/qa.jsonl", "--responses", "{tmp}/answers.jsonl", "--metric", "bogus"],
     ["--metric 'bogus'", "accuracy"]),
    ("temperature-nan", {}, ["chat", "-p", "hi", "--temperature", "nan"], ["--temperature", "nan"]),
    ("recipe-sets-a-key-twice", {"docs/ok.md": "fine text", "r.yaml": "max-length: 64\nmax_length: 128\n"},
     ["sft", "{tmp}/docs", "--recipe", "{tmp}/r.yaml", "--dry-run"], ["r.yaml:2", "line 1", "keep one"]),
    ("recipe-is-a-folder", {"docs/ok.md": "fine text"}, ["sft", "{tmp}/docs", "--recipe", "{tmp}/docs", "--dry-run"],
     ["is a folder", "recipe"]),
    ("run-name-with-a-newline", {"docs/ok.md": "fine text"}, ["sft", "{tmp}/docs", "--name", "a\nb", "--dry-run"],
     ["printable", "another --name"]),
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
    home = tmp_path.with_name(tmp_path.name + "-home")  # caches may fill (the NLTK model); nothing else may appear
    monkeypatch.setenv("RLSD_HOME", str(home))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = CliRunner().invoke(app, argv)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.stderr, result.exception)
    assert len(lines) == 1 and lines[0].startswith("rlsd: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    # --json, before or after the verb: the same line on stderr, and one JSON object on stdout.
    for placed in (["--json", *argv], [*argv, "--json"]):
        as_json = CliRunner().invoke(app, placed)
        assert as_json.exit_code == 2 and len(as_json.stdout.strip().splitlines()) == 1, (placed, as_json.stdout)
        assert json.loads(as_json.stdout) == {"error": lines[0].removeprefix("rlsd: error: "), "exit_code": 2}
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if not p.is_dir() or any(p.iterdir()))
    assert after == [p for p in before if not (tmp_path / p).is_dir() or any((tmp_path / p).iterdir())]  # nothing written
    assert not [p for p in home.rglob("*") if p.suffix == ".lock" or "models" in p.parts]  # no lock, no half-made model


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


def test_file_names_are_printed_as_they_are(tmp_path, monkeypatch):
    """A name is not rich markup (`[/red]` crashed the printer, `[draft]` vanished) and its control characters
    are shown escaped, not sent to the terminal."""
    from typer.testing import CliRunner

    from rlsd_cli.cli import app

    _write(tmp_path, {"docs/ok.md": "# Ok\nThe office dog is named Tjorven.\n", "docs/[/red]x.md": b"caf\xe9",
                      "docs/[draft] notes.md": b"\xff", "docs/bell\x07.md": b"\xff"})
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["sft", str(tmp_path / "docs"), "--dry-run"])
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert "skipped [/red]x.md: not UTF-8" in result.stdout
    assert "skipped [draft] notes.md: not UTF-8" in result.stdout
    assert "skipped bell\\x07.md: not UTF-8" in result.stdout and "\x07" not in result.stdout


def test_run_names_made_by_hand_are_printed_as_they_are(tmp_path):
    """`rlsd runs` lists folders it did not name: a `[tag]` in them is text and a control character is escaped."""
    from typer.testing import CliRunner

    from rlsd_cli.cli import app

    name = "[draft] run\x07"
    (tmp_path / name).mkdir()
    (tmp_path / name / "run.json").write_text(json.dumps(
        {"verb": "sft", "status": "done", "base_model": {"spec": "[b]base"}, "command": ["rlsd", "[i]x"]}))
    for argv in (["runs", "list"], ["runs", "show", name]):
        result = CliRunner().invoke(app, [*argv, "--runs-dir", str(tmp_path)])
        assert result.exit_code == 0, (result.stderr, result.exception)
        assert "[draft] run\\x07" in result.stdout and "[b]base" in result.stdout and "\x07" not in result.stdout
    assert "rlsd [i]x" in result.stdout


def test_a_document_whose_name_is_not_utf8_is_skipped_by_name(tmp_path):
    """The file system holds bytes; a name UTF-8 cannot encode reached the tokenizer and raised a TypeError."""
    from rlsd_cli.errors import BadInputError
    from rlsd_cli.ingest import read_corpus

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ok.md").write_text("fine text about the travel policy")
    with open(os.path.join(os.fsencode(docs), b"caf\xe9.md"), "w") as f:
        f.write("also text")
    corpus = read_corpus(docs)
    assert [d.path for d in corpus.documents] == ["ok.md"]
    assert [reason for _, reason in corpus.skipped] == ["its name is not valid UTF-8; not read (rename the file)"]
    with pytest.raises(BadInputError, match="not valid UTF-8"):
        read_corpus(docs, strict=True)


def test_an_empty_rlsd_home_is_the_default_not_the_current_folder(monkeypatch):
    from rlsd_cli import env

    monkeypatch.setenv("RLSD_HOME", "")
    assert env.rlsd_home() == os.path.expanduser("~/.cache/rlsd")
