"""The `rlsd` command as a user runs it: the installed console script, in a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import run_cli
from rlsd_cli.model import LoraSettings, load_model
from rlsd_cli.runs import Run


def test_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("chat", "models", "runs"):
        assert command in result.stdout


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("rlsd ")


def test_unknown_model_is_exit_2_with_one_line():
    result = run_cli("models", "show", "runs/nope")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["rlsd: error: runs/nope: no such file or folder; pass 'smollm2-135m', a local model folder, "
                     "a .gguf file, a run folder (runs/NAME) or a hub id (owner/name)"]


def test_errors_in_json_mode_are_json_too():
    result = run_cli("--json", "models", "show", "no such model")
    assert result.returncode == 2
    assert json.loads(result.stdout)["exit_code"] == 2


def test_bad_flag_value_is_exit_2():
    result = run_cli("chat", "-p", "hi", "--max-new-tokens", "0", "--model", "runs/nope")
    assert result.returncode == 2 and "--max-new-tokens" in result.stderr


@pytest.mark.e2e
def test_models_show_json_reports_cached_path_and_size(smollm_dir):
    result = run_cli("models", "show", "smollm2-135m", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert Path(info["path"]) == smollm_dir.resolve()
    assert info["size_bytes"] > 250_000_000 and info["num_parameters"] == 134_515_008
    listed = json.loads(run_cli("models", "list", "--json").stdout)
    assert "smollm2-135m" in [m["name"] for m in listed["models"] if m["cached"]]


@pytest.mark.e2e
def test_chat_one_shot_answers_paris(smollm_dir):
    result = run_cli("chat", "-p", "What is the capital of France? Answer in one word.")
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout


@pytest.mark.e2e
def test_chat_json_has_the_response_and_speed(smollm_dir):
    result = run_cli("chat", "--json", "-p", "Say hello.", "--max-new-tokens", "8")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["response"] and 0 < out["new_tokens"] <= 8 and out["tokens_per_second"] > 0


@pytest.mark.e2e
def test_interactive_chat_keeps_history_and_quits_on_eof(smollm_dir):
    import subprocess
    import sys

    rlsd = Path(sys.executable).with_name("rlsd")
    result = subprocess.run(
        [str(rlsd), "chat", "--max-new-tokens", "16"],
        input="What is the capital of France? Answer in one word.\n/reset\n",
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout


@pytest.fixture(scope="module")
def smollm_run(tmp_path_factory, smollm_dir):
    """A run folder on the embedded model with a non-trivial adapter, as a training verb would leave it."""
    root = tmp_path_factory.mktemp("cli-runs") / "runs"
    loaded = load_model("smollm2-135m", lora=LoraSettings(r=4, dropout=0.0), trainable=True)
    torch.manual_seed(0)
    for name, param in loaded.model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.002)
    run = Run.create("sft", name="demo", root=root, record={"base_model": loaded.record()})
    run.save_adapter(loaded.model)
    run.log_metrics(1, loss=1.0)
    run.write_summary({"steps": 1})
    ids = loaded.tokenizer("The capital of France is", return_tensors="pt").input_ids
    loaded.model.eval()
    with torch.no_grad():
        logits = loaded.model(input_ids=ids).logits
    return run.path, ids, logits


@pytest.mark.e2e
def test_embedded_adapter_round_trips_to_identical_logits(smollm_run):
    path, ids, expected = smollm_run
    reloaded = load_model(str(path))
    with torch.no_grad():
        assert torch.equal(reloaded.model(input_ids=ids).logits, expected)


@pytest.mark.e2e
def test_runs_list_and_show_json(smollm_run):
    path, _, _ = smollm_run
    listed = run_cli("runs", "list", "--runs-dir", str(path.parent), "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["name"] for r in json.loads(listed.stdout)["runs"]] == ["demo"]
    shown = json.loads(run_cli("runs", "show", "demo", "--runs-dir", str(path.parent), "--json").stdout)
    assert shown["status"] == "finished" and shown["steps"] == 1 and shown["base_model"] == "smollm2-135m"
    table = run_cli("runs", "list", "--runs-dir", str(path.parent))
    assert "demo" in table.stdout and "finished" in table.stdout


@pytest.mark.e2e
def test_chat_with_a_run_folder_loads_its_adapter(smollm_run):
    path, _, _ = smollm_run
    result = run_cli("chat", "--model", str(path), "--json", "-p", "Say hello.", "--max-new-tokens", "4")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["model"] == str(path)


@pytest.mark.e2e
def test_two_processes_convert_the_embedded_model_once(tmp_path):
    import subprocess
    import sys

    rlsd = Path(sys.executable).with_name("rlsd")
    env = {"RLSD_HOME": str(tmp_path / "home")}
    import os

    procs = [
        subprocess.Popen([str(rlsd), "models", "show", "--json"], env=dict(os.environ, **env),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outputs]
    infos = [json.loads(o[0]) for o in outputs]
    assert infos[0]["weights_sha256"] == infos[1]["weights_sha256"]
    assert sum("converting" in o[1] for o in outputs) == 1
    assert sum("waiting for it to finish" in o[1] for o in outputs) == 1  # the second waited on the lock, and said so
    folder = tmp_path / "home" / "models"
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) == ["smollm2-135m"]


def test_a_trl_release_outside_the_tested_range_stops_training_verbs_with_one_line(monkeypatch):
    import importlib.metadata

    from rlsd_cli import env
    from rlsd_cli.errors import BadInputError

    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "1.17.0" if name == "trl" else real(name))
    with pytest.raises(BadInputError, match=r"TRL 1\.17\.0 is installed, but rlsd's trainers support trl>=1\.16,<1\.17"):
        env.require_supported_trl()
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "1.16.0" if name == "trl" else real(name))
    env.require_supported_trl()
    from conftest import REPO

    assert f'"trl{env.SUPPORTED_TRL}"' in (REPO / "pyproject.toml").read_text()  # the install pin says the same
