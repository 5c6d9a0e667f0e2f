"""Damaged models and runs, signals before the first step, a loss that stops being a number, output to a pipe, and
fuzzed recipes and evaluation files: each ends in one line and a clean state, never a traceback."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import assert_same_adapter, run_cli
from rlsd_cli.errors import BadInputError

DOCS = Path(__file__).parent / "data" / "docs"
CHAT = Path(__file__).parent / "data" / "chat_small.jsonl"
TINY_SFT = ["--chat-data", str(CHAT), "--max-length", "64", "--chunk-overlap", "8", "--batch-size", "4"]


def _one_error_line(result, *fragments: str) -> str:
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("rlsd: error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def test_damaged_weights_tokenizer_and_gguf_are_one_line_each(tiny_model_dir, tmp_path):
    home = {"RLSD_HOME": str(tmp_path / "home")}
    garbage = tmp_path / "garbage"
    shutil.copytree(tiny_model_dir, garbage)
    (garbage / "model.safetensors").write_bytes(os.urandom(4096))
    result = run_cli("chat", "--model", str(garbage), "-p", "hi", env_extra=home)
    assert result.returncode == 2
    _one_error_line(result, "garbage", "could not load the model")

    no_tokenizer = tmp_path / "no-tokenizer"
    no_tokenizer.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy2(tiny_model_dir / name, no_tokenizer / name)
    result = run_cli("chat", "--model", str(no_tokenizer), "-p", "hi", env_extra=home)
    assert result.returncode == 2
    _one_error_line(result, "no-tokenizer", "tokenizer")

    for name, content in (("empty.gguf", b""), ("random.gguf", os.urandom(2048))):
        (tmp_path / name).write_bytes(content)
        result = run_cli("chat", "--model", str(tmp_path / name), "-p", "hi", env_extra=home)
        assert result.returncode == 2
        _one_error_line(result, name)
    assert not [p for p in (tmp_path / "home").rglob("*") if p.is_file()]  # no lock file, no half-converted model


def test_a_truncated_adapter_is_one_line(tiny_model_dir, tmp_path):
    runs = tmp_path / "runs"
    result = run_cli("sft", str(DOCS), "--model", str(tiny_model_dir), *TINY_SFT, "--max-steps", "1", "--runs-dir", str(runs),
                     "--name", "r")
    assert result.returncode == 0, result.stderr
    adapter = runs / "r" / "adapter" / "adapter_model.safetensors"
    adapter.write_bytes(adapter.read_bytes()[:100])
    result = run_cli("chat", "--model", str(runs / "r"), "-p", "hi")
    assert result.returncode == 2
    _one_error_line(result, "adapter", "could not load the adapter")


def test_a_corrupt_run_record_and_metrics_line_do_not_hide_the_other_runs(tiny_model_dir, tmp_path):
    runs = tmp_path / "runs"
    result = run_cli("sft", str(DOCS), "--model", str(tiny_model_dir), *TINY_SFT, "--max-steps", "1", "--runs-dir", str(runs),
                     "--name", "good")
    assert result.returncode == 0, result.stderr
    with open(runs / "good" / "metrics.jsonl", "a") as metrics:
        metrics.write("[1, 2, 3]\n\"a string\"\n")
    (runs / "bad").mkdir()
    (runs / "bad" / "run.json").write_text("{not json")
    listed = run_cli("runs", "list", "--runs-dir", str(runs), "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)["runs"]}
    assert rows["good"]["status"] == "finished" and rows["good"]["steps"] == 1
    assert rows["bad"]["status"].startswith("unreadable") and "not valid JSON" in rows["bad"]["status"]
    shown = run_cli("runs", "show", str(runs / "good"), "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["steps"] == 1


def test_a_loss_that_stops_being_finite_stops_training_and_marks_the_run_failed(tiny_model_dir, tmp_path):
    runs = tmp_path / "runs"
    result = run_cli("sft", str(DOCS), "--model", str(tiny_model_dir), *TINY_SFT, "--max-steps", "6", "--lr", "1e30",
                     "--save-every", "1", "--runs-dir", str(runs), "--name", "x")
    assert result.returncode == 1
    line = _one_error_line(result, "training stopped", "marked failed", "last good checkpoint")
    failure = json.loads((runs / "x" / "failure.json").read_text())
    step = failure["step"]
    assert step >= 2 and ("nan" in failure["reason"] or "inf" in failure["reason"])
    checkpoints = sorted(int(p.name.rsplit("-", 1)[1]) for p in (runs / "x" / "checkpoints").glob("checkpoint-*"))
    assert checkpoints and max(checkpoints) == step - 1 and f"checkpoint-{step - 1}" in line  # the last good one, intact
    assert not (runs / "x" / "adapter").exists() and not (runs / "x" / "summary.json").exists()
    metrics = (runs / "x" / "metrics.jsonl").read_text()
    assert "NaN" not in metrics and "Infinity" not in metrics  # every line stays valid JSON
    listed = json.loads(run_cli("runs", "list", "--runs-dir", str(runs), "--json").stdout)["runs"]
    assert listed[0]["status"] == "failed"


def test_sigterm_while_the_base_is_scored_removes_the_new_run_folder(tiny_model_dir, tmp_path):
    """SIGTERM behaves as Ctrl-C everywhere: here between the run folder's creation and the first step."""
    runs = tmp_path / "runs"
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps({"question": f"What is fact {i}?", "answer": str(i)}) + "\n" for i in range(400)))
    rlsd = str(Path(sys.executable).with_name("rlsd"))
    process = subprocess.Popen([rlsd, "sft", str(DOCS), "--model", str(tiny_model_dir), *TINY_SFT, "--max-steps", "1",
                                "--eval-qa", str(qa), "--runs-dir", str(runs), "--name", "x"],
                               stderr=subprocess.PIPE, text=True, env=dict(os.environ, RLSD_HOME=str(tmp_path / "home")))
    seen = []
    for line in process.stderr:
        seen.append(line)
        if line.startswith("qa: generating"):
            process.send_signal(signal.SIGTERM)
            break
    rest = process.stderr.read()
    assert process.wait(timeout=120) == 130
    errors = [line for line in (seen + rest.splitlines()) if line.startswith("rlsd: error:")]
    assert len(errors) == 1 and "interrupted" in errors[0] and "removed the new run folder" in errors[0], rest
    assert not (runs / "x").exists()


def test_sigterm_while_the_trained_model_is_scored_keeps_the_training_and_resume_only_scores(tiny_model_dir, tmp_path):
    """Scoring after training takes minutes on a real model; a signal there must not cost the training. The runs
    folder's path is longer than the error line's cut (200 characters): the resume command is printed whole."""
    runs = tmp_path / ("d" * 210) / "runs"
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps({"question": f"What is fact {i}?", "answer": str(i)}) + "\n" for i in range(400)))
    rlsd = str(Path(sys.executable).with_name("rlsd"))
    args = [rlsd, "sft", str(DOCS), "--model", str(tiny_model_dir), *TINY_SFT, "--max-steps", "2", "--eval-qa", str(qa),
            "--runs-dir", str(runs), "--name", "x"]
    environment = dict(os.environ, RLSD_HOME=str(tmp_path / "home"))
    process = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=environment)
    generating = 0
    for line in process.stderr:
        generating += line.startswith("qa: generating")
        if generating == 2:  # the first scores the start, the second the trained model
            process.send_signal(signal.SIGTERM)
            break
    rest = process.stderr.read()
    assert process.wait(timeout=120) == 130
    errors = [line for line in rest.splitlines() if line.startswith("rlsd: error:")]
    assert len(errors) == 1 and "training is saved" in errors[0], rest
    printed = shlex.split(errors[0].split("Resume (it only scores) with: ")[1])
    assert printed[0] == "rlsd" and printed[-1] == "--resume" and str(runs) in printed
    assert (runs / "x" / "checkpoints" / "checkpoint-2" / "trainer_state.json").is_file()
    assert not (runs / "x" / "summary.json").exists()
    shutil.copytree(runs / "x" / "checkpoints" / "checkpoint-2", tmp_path / "trained" / "adapter")
    resumed = subprocess.run([rlsd, *printed[1:]], capture_output=True, text=True, env=environment, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "starting from the beginning" not in resumed.stderr and not (runs / "x" / "metrics-discarded.jsonl").exists()
    summary = json.loads((runs / "x" / "summary.json").read_text())
    assert summary["steps"] == 2
    steps = [json.loads(row)["step"] for row in (runs / "x" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]  # the two trained steps, logged once: nothing was trained again
    assert summary["train_seconds"] is None  # this process trained nothing
    assert_same_adapter(runs / "x", tmp_path / "trained")  # the checkpoint's weights, not fresh ones
    assert not (runs / "x" / "checkpoints" / "checkpoint-2").exists()  # a finished run keeps no checkpoint


def test_a_chat_message_that_is_not_utf8_is_one_line(tiny_model_dir):
    # Bytes that are not UTF-8 in argv reach Python as lone surrogates; the tokenizer would raise TypeError.
    result = run_cli("chat", "--model", str(tiny_model_dir), "-p", "\udcff\udcfe hi", "--max-new-tokens", "2")
    errors = [line for line in result.stderr.splitlines() if line.startswith("rlsd: error:")]
    assert result.returncode == 2 and len(errors) == 1 and "not UTF-8" in errors[0], result.stderr


def test_a_byte_order_mark_in_an_evaluation_file_is_accepted(tmp_path):
    data, responses = tmp_path / "q.jsonl", tmp_path / "r.jsonl"
    data.write_bytes(b"\xef\xbb\xbf" + json.dumps({"question": "q", "answer": "Harbour"}).encode() + b"\n")
    responses.write_text(json.dumps({"id": 1, "response": "It is Harbour."}) + "\n")
    result = run_cli("eval", "qa", "--data", str(data), "--responses", str(responses), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["metrics"]["accuracy"] == 1.0


def test_a_table_to_a_pipe_keeps_every_value_whole(tiny_model_dir, tmp_path):
    runs = tmp_path / "runs"
    name = "a-run-with-a-name-long-enough-to-be-cut-in-eighty-columns"
    result = run_cli("sft", str(DOCS), "--model", str(tiny_model_dir), *TINY_SFT, "--max-steps", "1", "--runs-dir", str(runs),
                     "--name", name)
    assert result.returncode == 0, result.stderr
    listed = run_cli("runs", "list", "--runs-dir", str(runs), env_extra={"COLUMNS": "80"})
    assert name in listed.stdout and "finished" in listed.stdout and "…" not in listed.stdout


# ---------------------------------------------------------------- fuzzing

YAML_PIECES = st.sampled_from(["lr", "epochs", "max-length", "mix", "eval", "name", "seed", "augment", "docs", "from",
                               "lambda", ":", " ", "\n", "-", "[", "]", "{", "}", "&a", "*a", "!!python/object", "'", '"',
                               ".nan", ".inf", "-1", "0", "1e400", "null", "true", "~", "#", "\t", "\\xff", "é", "%YAML"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(YAML_PIECES, max_size=40).map("".join) | st.text(max_size=200))
def test_fuzzed_recipes_never_raise_anything_but_a_one_line_error(tmp_path, text):
    import typer

    from rlsd_cli.cli import app
    from rlsd_cli.configs import SFTConfig
    from rlsd_cli.recipes import apply_recipe, config_kwargs, describe_recipe

    path = tmp_path / "fuzz.yaml"
    path.write_bytes(text.encode("utf-8", "replace"))
    try:
        describe_recipe(path)
        command = typer.main.get_command(app).commands["sft"]
        ctx = command.make_context("sft", [str(DOCS), "--dry-run"])
        values = apply_recipe(ctx, path, dict(ctx.params))
        SFTConfig(**config_kwargs(SFTConfig, values))
    except BadInputError as exc:
        assert str(exc).count("\n") == 0


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                           max_leaves=10)
FIELDS = st.sampled_from(["question", "answer", "aliases", "stale", "kind", "id", "prompt", "key", "instruction_id_list",
                          "kwargs", "solution", "index", "response"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["qa", "math", "ifeval", "gsm8k"]),
       st.lists(st.dictionaries(FIELDS, JSON_VALUES, max_size=6).map(json.dumps) | st.text(max_size=60), min_size=1, max_size=4))
def test_fuzzed_evaluation_lines_never_raise_anything_but_a_one_line_error(tmp_path, suite_name, lines):
    from rlsd_cli.suites import get_suite

    path = tmp_path / "fuzz.jsonl"
    path.write_bytes("\n".join(lines).encode("utf-8", "replace"))
    try:
        items = get_suite(suite_name).load(path)
        for item in items:
            get_suite(suite_name).score(item, "some response")
    except BadInputError as exc:
        assert str(exc).count("\n") == 0


def test_hostile_runs_and_outputs_are_refused_in_one_line_and_nothing_is_deleted(tiny_model_dir, tmp_path):
    """Found by a hostile-input sweep: `export --force` aimed at the run (or the runs folder holding it) deleted
    runs; a run stopped after training (adapter, no summary.json) was taken as finished; hand-edited records
    raised tracebacks; --force replaced a user's file named like a run; reading a FIFO never returned."""
    runs = tmp_path / "runs"
    result = run_cli("sft", str(DOCS), "--model", str(tiny_model_dir), *TINY_SFT, "--max-steps", "1", "--runs-dir", str(runs),
                     "--name", "r")
    assert result.returncode == 0, result.stderr
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for out in (runs / "r", runs, tmp_path, runs / "r" / "adapter"):
        refused = run_cli("export", str(runs / "r"), "--out", str(out), "--force", "--adapter-only", cwd=tmp_path)
        assert refused.returncode == 2
        _one_error_line(refused, "the run being exported")
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    refused = run_cli("export", str(runs / "r"), "--out", str(user), "--force", "--adapter-only")
    assert refused.returncode == 2
    _one_error_line(refused, "replaces only an earlier export")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == sorted([*before, Path("mine"), Path("mine/notes.txt")])
    exported = tmp_path / "exported"
    assert run_cli("export", str(runs / "r"), "--out", str(exported), "--adapter-only").returncode == 0
    assert run_cli("export", str(runs / "r"), "--out", str(exported), "--force", "--adapter-only").returncode == 0

    stopped = runs / "stopped"
    shutil.copytree(runs / "r", stopped)
    (stopped / "summary.json").unlink()
    for args in (["export", str(stopped), "--out", str(tmp_path / "x"), "--adapter-only"],
                 ["chat", "--model", str(stopped), "-p", "hi"],
                 ["sft", str(DOCS), "--from", str(stopped), "--dry-run"]):
        refused = run_cli(*args)
        assert refused.returncode == 2
        _one_error_line(refused, "did not finish", "--resume")

    for name, edit in (("self", lambda record, path: record["base_model"].update(spec=str(path))),
                       ("odd-parent", lambda record, path: record.update(parent={"x": [1]}))):
        shutil.copytree(runs / "r", runs / name)
        record = json.loads((runs / name / "run.json").read_text())
        edit(record, runs / name)
        (runs / name / "run.json").write_text(json.dumps(record))
        refused = run_cli("sft", str(DOCS), "--from", str(runs / name), "--dry-run")
        assert refused.returncode == 2
        _one_error_line(refused, str(runs / name / "run.json"))
    (runs / "r" / "summary.json").write_text("[1, 2, 3]")
    assert run_cli("runs", "show", str(runs / "r")).returncode == 0

    (runs / "userfile").write_text("not a run")
    refused = run_cli("sft", str(DOCS), "--model", str(tiny_model_dir), "--runs-dir", str(runs), "--name", "userfile",
                      "--force", "--dry-run")
    assert refused.returncode == 2
    _one_error_line(refused, "not a run folder")
    assert (runs / "userfile").read_text() == "not a run"

    fifo = tmp_path / "questions.jsonl"
    os.mkfifo(fifo)
    refused = run_cli("eval", "qa", "--data", str(fifo), timeout=60)
    assert refused.returncode == 2
    _one_error_line(refused, "not a regular file")


# ---------------------------------------------------------------- files rlsd wrote, damaged by hand (second sweep)


def _invoke(*argv: str, env: dict | None = None):
    """The CLI in this process, through the real command group (its error handling prints the one line)."""
    from typer.testing import CliRunner

    from rlsd_cli.cli import app

    return CliRunner().invoke(app, list(argv), env=env)


def _one_line_or_success(result, *fragments: str) -> None:
    """Exit 0, or exit 2 with one error line naming `fragments`; never an exception (a traceback for a user)."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 2), (result.exit_code, result.stderr)
    if result.exit_code == 2:
        errors = [line for line in result.stderr.splitlines() if line.startswith("rlsd: error:")]
        assert len(errors) == 1, result.stderr
        for fragment in fragments:
            assert fragment in errors[0], (fragment, errors[0])


def _hand_made_run(folder: Path, record_edit=None, **files: str) -> Path:
    """A finished run as `runs list` and `runs show` read it (no weights: nothing here loads a model)."""
    folder.mkdir(parents=True)
    record = {"name": folder.name, "verb": "sft", "base_model": {"spec": "smollm2-135m"}, "command": ["rlsd", "sft", "docs"],
              "round": {"number": 1, "changes": {"new": ["a.md"]}}}
    if record_edit:
        record_edit(record)
    (folder / "run.json").write_text(json.dumps(record))
    (folder / "adapter").mkdir()
    (folder / "adapter" / "adapter_config.json").write_text("{}")
    (folder / "summary.json").write_text(json.dumps({"eval_after": {"knowledge": {"accuracy": 0.5}}}))
    (folder / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 2.0}) + "\n")
    for name, text in files.items():
        (folder / name.replace("_", ".")).write_text(text)
    return folder


def test_damaged_run_files_are_named_in_one_line_and_never_hide_the_other_runs(tmp_path):
    """Found by a second hostile-input sweep: a metrics row without "step" raised KeyError and took `runs list` down
    with it; a hand-edited "command" or "round.changes" in run.json raised TypeError or AttributeError; run.json,
    summary.json or metrics.jsonl of 100,000 '[' raised RecursionError."""
    runs = tmp_path / "runs"
    nested = "[" * 100_000
    _hand_made_run(runs / "good")
    _hand_made_run(runs / "no-step", metrics_jsonl=json.dumps({"step": 1, "loss": 2.0}) + '\n{"loss": 3}\n')
    _hand_made_run(runs / "command-a-number", lambda record: record.update(command=5))
    _hand_made_run(runs / "command-null", lambda record: record.update(command=None))
    _hand_made_run(runs / "changes-a-list", lambda record: record.update(round={"changes": [1, 2]}))
    _hand_made_run(runs / "changes-a-count", lambda record: record.update(round={"changes": {"new": 5}}))
    _hand_made_run(runs / "nested-record", run_json=nested)
    _hand_made_run(runs / "nested-summary", summary_json=nested)
    _hand_made_run(runs / "nested-metrics", metrics_jsonl=nested + "\n")

    listed = _invoke("runs", "list", "--runs-dir", str(runs), "--json")
    assert listed.exit_code == 0, (listed.stderr, listed.exception)
    rows = {row["name"]: row for row in json.loads(listed.stdout)["runs"]}
    assert len(rows) == 9 and rows["good"]["status"] == "finished" and rows["no-step"]["steps"] == 1
    assert rows["nested-record"]["status"].startswith("unreadable") and "damaged" in rows["nested-record"]["status"]
    assert rows["command-a-number"]["status"].startswith("unreadable")
    assert _invoke("runs", "list", "--runs-dir", str(runs)).exit_code == 0

    for name in rows:
        for json_flag in ([], ["--json"]):
            shown = _invoke("runs", "show", str(runs / name), *json_flag)
            _one_line_or_success(shown, str(runs / name / "run.json"))
    assert _invoke("runs", "show", str(runs / "nested-record")).exit_code == 2
    shown = _invoke("runs", "show", str(runs / "changes-a-list"))
    assert shown.exit_code == 0 and "round.changes" in shown.stderr


def test_long_paths_and_values_are_cut_short_in_an_error_line(tmp_path):
    """A run whose "parent" was 5,000 characters printed a 5,000-character line; so did a 5,000-character name."""
    runs = tmp_path / "runs"
    _hand_made_run(runs / "r", lambda record: record.update(parent="x" * 5000))
    shown = _invoke("runs", "show", str(runs / "r"))
    assert shown.exit_code == 0 and "is gone" in shown.stderr
    assert max(len(line) for line in shown.stderr.splitlines()) < 500
    refused = _invoke("runs", "show", "y" * 5000, "--runs-dir", str(runs))
    _one_line_or_success(refused, "...yyy", "check the path")
    assert refused.exit_code == 2 and len(refused.stderr) < 500


def test_rlsd_home_or_runs_folder_that_is_a_file_is_refused_by_the_listing_verbs_too(tmp_path):
    """`sft` refused these; `models list` listed <file>/models and `runs list` an empty table, with exit 0."""
    a_file = tmp_path / "a.md"
    a_file.write_text("notes")
    listed = _invoke("models", "list", env={"RLSD_HOME": str(a_file)})
    _one_line_or_success(listed, f"RLSD_HOME={a_file}", "is a file")
    assert listed.exit_code == 2
    listed = run_cli("runs", "list", env_extra={"RLSD_RUNS": str(a_file)})
    assert listed.returncode == 2
    _one_error_line(listed, str(a_file), "is a file, not a folder", "RLSD_RUNS")


def test_a_damaged_model_record_is_named_with_its_fix_and_the_listing_goes_on(tmp_path):
    """A hand-edited $RLSD_HOME/models/<name>/rlsd-model.json raised AttributeError in `models list` and
    RecursionError in `models list` and `chat`."""
    home = tmp_path / "home"
    record = home / "models" / "smollm2-135m" / "rlsd-model.json"
    record.parent.mkdir(parents=True)
    for content in ("[1]", '{"source": [1, 2]}', '{"source": "x"}', "[" * 100_000):
        record.write_text(content)
        listed = _invoke("models", "list", "--json", env={"RLSD_HOME": str(home)})
        assert listed.exit_code == 0, (listed.stderr, listed.exception)
        assert f"{record}: damaged" in listed.stderr and "converts the model again" in listed.stderr
        assert {row["name"] for row in json.loads(listed.stdout)["models"]} >= {"smollm2-135m", "gemma3-270m"}
        assert _invoke("models", "list", env={"RLSD_HOME": str(home)}).exit_code == 0
        if content != '{"source": "x"}':  # the old code took that one as an old layout and converted again
            refused = _invoke("chat", "-p", "hi", env={"RLSD_HOME": str(home)})
            _one_line_or_success(refused, str(record), "damaged", "converts the model again")
            assert refused.exit_code == 2
    assert sorted(p.name for p in home.rglob("*")) == ["models", "rlsd-model.json", "smollm2-135m"]  # no lock left


def test_a_recipe_holding_a_lone_surrogate_is_shown_escaped(tmp_path):
    """`recipes show` of `"\\ud800": 1` (a YAML escape for half a UTF-16 pair, which no encoding writes) raised
    UnicodeEncodeError while printing the table."""
    for name, text in (("key.yaml", '"\\ud800": 1\n'), ("value.yaml", 'lr: "\\ud800"\n')):
        (tmp_path / name).write_text(text)
        shown = run_cli("recipes", "show", str(tmp_path / name))
        assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
        assert "\\ud800" in shown.stdout
