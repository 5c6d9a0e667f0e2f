"""The eval pipeline on the tiny random model: reports, caching, --responses, thresholds, compare."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import run_cli
from rlsd_cli.errors import BadInputError, ThresholdNotMet
from rlsd_cli.evaluate import (
    EvalConfig,
    compare,
    enforce_threshold,
    run_eval,
    seeded_sample,
    threshold_verdict,
)
from rlsd_cli.model import LoraSettings, load_model
from rlsd_cli.runs import Run

QA = Path(__file__).parent / "data" / "qa_fictional.jsonl"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RLSD_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _config(model, **kw):
    return EvalConfig(suite="qa", model=str(model), data=QA, max_new_tokens=6, batch_size=4, **kw)


def test_seeded_sample_is_stable_and_ordered():
    rows = list(range(100))
    a, b = seeded_sample(rows, 10, 0), seeded_sample(rows, 10, 0)
    assert a == b == sorted(a) and len(a) == 10
    assert seeded_sample(rows, 10, 1) != a
    assert seeded_sample(rows, 500, 0) == rows


def test_report_is_saved_with_per_item_rows_and_reused(home, tiny_model_dir):
    report = run_eval(_config(tiny_model_dir))
    assert report["n"] == 6 and set(report["metrics"]) == {"accuracy"} and not report["cached"]
    path = Path(report["report_path"])
    assert path.parent.parent == home / "evals"
    rows = [json.loads(line) for line in path.with_suffix(".jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["q1", "q2", "q3", "q4", "q5", "q6"]
    assert all("response" in r and "correct" in r["verdict"] and r["new_tokens"] <= 6 for r in rows)
    assert report["generation"]["new_tokens"] > 0 and report["generation"]["tokens_per_second"] > 0

    again = run_eval(_config(tiny_model_dir))
    assert again["cached"] and again["metrics"] == report["metrics"]
    different = run_eval(_config(tiny_model_dir, limit=3))
    assert not different["cached"] and different["n"] == 3
    assert len(list((path.parent / "history").glob("qa-*.json"))) == 1  # the older report was kept


def test_responses_scoring_matches_generated_scoring(home, tiny_model_dir, tmp_path):
    report = run_eval(_config(tiny_model_dir, use_cache=False))
    rows = Path(report["report_path"]).with_suffix(".jsonl").read_text()
    given = tmp_path / "responses.jsonl"
    given.write_text(rows)
    rescored = run_eval(EvalConfig(suite="qa", data=QA, responses=given))
    assert rescored["metrics"] == report["metrics"] and rescored["n"] == report["n"]

    right = tmp_path / "right.jsonl"
    right.write_text('{"id": "q4", "response": "It is Ingrid Halvorsen."}\n{"id": "q2", "response": "12"}\n')
    scored = run_eval(EvalConfig(suite="qa", data=QA, responses=right))
    assert scored["metrics"]["accuracy"] == 0.5


def test_responses_with_unknown_key_names_the_line(tmp_path):
    given = tmp_path / "r.jsonl"
    given.write_text('{"id": "q1", "response": "Paris"}\n{"id": "nope", "response": "x"}\n')
    result = run_cli("eval", "qa", "--data", str(QA), "--responses", str(given))
    assert result.returncode == 2
    assert f"{given}:2: no item with id=nope" in result.stderr


def test_threshold():
    report = {"suite": "qa", "metrics": {"accuracy": 0.5}, "primary_metric": "accuracy"}
    assert threshold_verdict(report, None, None) is None
    passed = threshold_verdict(report, 0.5, None)
    assert passed["passed"] and passed["metric"] == "accuracy"
    enforce_threshold(passed, "qa")
    with pytest.raises(ThresholdNotMet):
        enforce_threshold(threshold_verdict(report, 0.99, "accuracy"), "qa")
    with pytest.raises(BadInputError, match="reports accuracy"):
        threshold_verdict(report, 0.5, "f1")


def test_cli_min_score_exits_3_and_json_parses(home, tiny_model_dir):
    result = run_cli(
        "eval", "qa", "--model", str(tiny_model_dir), "--data", str(QA), "--max-new-tokens", "4",
        "--min-score", "0.99", "--json", env_extra={"RLSD_HOME": str(home)},
    )
    assert result.returncode == 3, result.stderr
    report = json.loads(result.stdout)  # one JSON object, carrying the verdict
    assert report["suite"] == "qa" and report["metrics"]["accuracy"] < 0.99
    assert report["threshold"] == {"metric": "accuracy", "value": report["metrics"]["accuracy"], "min_score": 0.99, "passed": False}
    assert "below --min-score 0.99" in result.stderr


def test_run_reports_live_in_the_run_and_compare_makes_a_table_and_chart(home, tiny_model_dir, tmp_path):
    loaded = load_model(str(tiny_model_dir), lora=LoraSettings(r=4, dropout=0.0), trainable=True)
    torch.manual_seed(0)
    for name, param in loaded.model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 1.0)
    run = Run.create("sft", name="tuned", root=tmp_path / "runs", record={"base_model": loaded.record()})
    run.save_adapter(loaded.model)
    run.write_summary({})
    base_report = run_eval(_config(tiny_model_dir))
    run_report = run_eval(_config(run.path))
    assert Path(run_report["report_path"]) == run.path / "evals" / "qa.json"
    assert run_report["adapter_sha256"] and base_report["adapter_sha256"] is None
    saved_adapter_hash = run_report["adapter_sha256"]
    # lora_alpha scales the adapter: a run whose config was edited is scored again, not read from the cache.
    config_file = run.path / "adapter" / "adapter_config.json"
    saved_config = config_file.read_text()
    adapter_config = json.loads(saved_config)
    config_file.write_text(json.dumps({**adapter_config, "lora_alpha": adapter_config["lora_alpha"] * 2}))
    rescaled = run_eval(_config(run.path))
    assert not rescaled["cached"] and rescaled["adapter_sha256"] != run_report["adapter_sha256"]
    config_file.write_text(saved_config)
    run_report = run_eval(_config(run.path))
    assert run_report["adapter_sha256"] == saved_adapter_hash

    result = compare([str(tiny_model_dir), str(run.path)])
    (row,) = result["rows"]
    assert row["suite"] == "qa" and row["same_items"]
    assert row["deltas"][1] == pytest.approx(row["values"][1] - row["values"][0])
    # One file named by another path is the same data; another seeded sample is not.
    report_file = Path(run_report["report_path"])
    report = json.loads(report_file.read_text())
    data = Path(report["data"]["path"])
    report["data"]["path"] = str(data.parent / ".." / data.parent.name / data.name)
    report_file.write_text(json.dumps(report))
    assert compare([str(tiny_model_dir), str(run.path)], force=True)["rows"][0]["same_items"]
    report["params"]["seed"] = 1
    report_file.write_text(json.dumps(report))
    assert not compare([str(tiny_model_dir), str(run.path)], force=True)["rows"][0]["same_items"]
    report["params"]["seed"] = 0
    report_file.write_text(json.dumps(report))
    png = Path(result["plot"])
    assert png == Path(base_report["report_path"]).parent / "compare.png"  # beside the first model's reports
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    cli = run_cli("eval", "compare", str(tiny_model_dir), str(run.path), env_extra={"RLSD_HOME": str(home)})
    assert cli.returncode == 0, cli.stderr
    assert "accuracy" in cli.stdout and "qa" in cli.stdout


def test_compare_without_reports_says_what_to_run(home, tiny_model_dir, tmp_path):
    result = run_cli("eval", "compare", str(tiny_model_dir), str(tiny_model_dir), env_extra={"RLSD_HOME": str(home)})
    assert result.returncode == 2 and "rlsd eval SUITE --model" in result.stderr


def test_data_hub_offline_says_how_to_use_the_embedded_copy(home, tmp_path):
    result = run_cli(
        "eval", "ifeval", "--data", "hub", "--responses", str(tmp_path / "none.jsonl"),
        env_extra={"RLSD_HOME": str(home), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")},
    )
    assert result.returncode == 2
    assert result.stderr.startswith("rlsd: error: cannot load google/IFEval from the Hugging Face hub")
    assert "leave out --data hub to use the embedded copy" in result.stderr


def test_gsm8k_without_data_scores_the_embedded_copy_offline(home, tmp_path):
    responses = tmp_path / "responses.jsonl"
    # GSM8K test line 1 (Janet's ducks) is 18; line 2 (the robe) is 3.
    responses.write_text(json.dumps({"index": 1, "response": "Answer: 18"}) + "\n"
                         + json.dumps({"index": 2, "response": "Answer: 4"}) + "\n")
    result = run_cli("eval", "gsm8k", "--responses", str(responses), "--json",
                     env_extra={"RLSD_HOME": str(home), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["metrics"]["accuracy"] == 0.5
    assert report["data"]["embedded"] is True
    assert report["data"]["sha256"] == "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14"




def test_stale_rate_is_gated_from_above_and_says_so():
    report = {"suite": "qa", "primary_metric": "accuracy", "metrics": {"accuracy": 0.7, "stale_rate": 0.25}}
    assert threshold_verdict(report, None, "stale_rate", max_score=0.3)["passed"]
    failed = threshold_verdict(report, None, "stale_rate", max_score=0.2)
    with pytest.raises(ThresholdNotMet, match="stale_rate = 0.2500 is above --max-score 0.2"):
        enforce_threshold(failed, "qa")
    with pytest.raises(BadInputError, match="lower is better, so gate it with --max-score"):
        threshold_verdict(report, 0.2, "stale_rate")
    with pytest.raises(BadInputError, match="higher is better, so gate it with --min-score"):
        threshold_verdict(report, None, "accuracy", max_score=0.5)


NESTED = "[" * 100_000  # deeper than Python's JSON parser goes: it raised RecursionError


def test_a_damaged_cached_report_is_computed_again_with_a_note_and_kept(home, tiny_model_dir, capsys):
    """Found by a hostile-input sweep: a cached report with the right cache key but "metrics": [1], or metrics that are
    text, raised AttributeError or TypeError in `eval` (with or without a gate)."""
    report = run_eval(_config(tiny_model_dir))
    path = Path(report["report_path"])
    saved = json.loads(path.read_text())
    for damaged in ({**saved, "metrics": [1]}, {**saved, "metrics": {"accuracy": "x"}}, {**saved, "n": None}):
        path.write_text(json.dumps(damaged))
        capsys.readouterr()
        again = run_eval(_config(tiny_model_dir))
        assert not again["cached"] and again["metrics"] == report["metrics"]
        assert f"{path}: damaged" in capsys.readouterr().err
        assert threshold_verdict(again, 0.5, None) is not None
    path.write_text(NESTED)
    assert not run_eval(_config(tiny_model_dir))["cached"]
    kept = {p.read_text() for p in (path.parent / "history").glob("qa-*.json")}  # named by cache key, else by time
    assert NESTED in kept and json.dumps({**saved, "n": None}) in kept  # moved aside, not deleted


def test_compare_skips_a_damaged_report_with_a_note(home, tiny_model_dir, capsys):
    """A hand-edited report (suite a list, metrics a list or text, params a list, nested brackets) raised TypeError,
    AttributeError or RecursionError in `eval compare`; the other reports are still compared."""
    report = run_eval(_config(tiny_model_dir))
    folder = Path(report["report_path"]).parent
    saved = json.loads(Path(report["report_path"]).read_text())
    for damaged in ({**saved, "suite": ["qa"]}, {**saved, "suite": "other", "metrics": [1, 2]},
                    {**saved, "suite": "other", "params": [1]}, {**saved, "suite": "other", "metrics": {"accuracy": "x"}},
                    {**saved, "suite": "other", "metrics": {"accuracy": 1 * 10 ** 400}}):
        (folder / "other.json").write_text(json.dumps(damaged))
        capsys.readouterr()
        result = compare([str(tiny_model_dir), str(tiny_model_dir)], force=True)
        assert [row["suite"] for row in result["rows"]] == ["qa"]
        assert f"{folder / 'other.json'}: damaged" in capsys.readouterr().err
    (folder / "other.json").write_text(NESTED)
    assert [row["suite"] for row in compare([str(tiny_model_dir)] * 2, force=True)["rows"]] == ["qa"]


def test_out_that_is_damaged_or_a_pipe_is_refused_in_one_line(tmp_path):
    """--out holding 100,000 '[' raised RecursionError; --out a FIFO blocked forever reading it."""
    import os

    responses = tmp_path / "r.jsonl"
    responses.write_text('{"id": "q1", "response": "Paris"}\n')
    nested = tmp_path / "nest.json"
    nested.write_text(NESTED)
    with pytest.raises(BadInputError, match="not an rlsd eval report"):
        run_eval(EvalConfig(suite="qa", data=QA, responses=responses, out=nested))
    assert nested.read_text() == NESTED
    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    result = run_cli("eval", "qa", "--data", str(QA), "--responses", str(responses), "--out", str(fifo), timeout=60)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"rlsd: error: {fifo}: exists and is not a regular file")
