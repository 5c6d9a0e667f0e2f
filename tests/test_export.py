"""`rlsd export` and `--report-to`: a run handed over as a standard model folder or a served adapter, with its card;
and the metrics a tracker receives."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli

DOCS = Path(__file__).parent / "data" / "docs"
CHAT = Path(__file__).parent / "data" / "chat_small.jsonl"
TINY_SFT = ["--chat-data", str(CHAT), "--max-length", "64", "--chunk-overlap", "8", "--batch-size", "4", "--lr", "0.05"]

PLAIN_LOGITS = """
import json, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
folder, prompts = sys.argv[1], json.loads(sys.argv[2])
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
out = []
for prompt in prompts:
    ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        out.append(model(ids).logits[0].tolist())
assert not [m for m in sys.modules if m == "peft" or m.startswith("rlsd")]  # plain transformers only
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def tiny_run(tiny_model_dir, tmp_path_factory):
    runs = tmp_path_factory.mktemp("export") / "runs"
    result = run_cli("sft", str(DOCS), "--model", str(tiny_model_dir), *TINY_SFT, "--max-steps", "3", "--runs-dir", str(runs),
                     "--name", "r", "--json")
    assert result.returncode == 0, result.stderr
    return runs / "r"


def test_export_writes_a_plain_model_folder_with_its_card_and_never_overwrites(tiny_run, tmp_path):
    out = tmp_path / "out"
    result = run_cli("export", str(tiny_run), "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["form"] == "merged" and "convert_hf_to_gguf.py" in summary["gguf"]
    assert {"model.safetensors", "config.json", "tokenizer.json", "generation_config.json", "README.md"} <= {p.name for p in out.iterdir()}
    assert not (out / "adapter_config.json").exists()
    card = (out / "README.md").read_text()
    assert "## Lineage" in card and "| r | sft | 1 |" in card and "weights SHA-256" in card
    again = run_cli("export", str(tiny_run), "--out", str(out))
    assert again.returncode == 2 and "not empty" in again.stderr
    assert run_cli("export", str(tiny_run), "--out", str(out), "--force").returncode == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_adapter_only_names_the_base_model(tiny_run, tiny_model_dir, tmp_path):
    result = run_cli("export", str(tiny_run), "--out", str(tmp_path / "adapter"), "--adapter-only", "--json")
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_model_dir)
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file() and (tmp_path / "adapter" / "README.md").is_file()


def test_adapter_only_from_a_damaged_adapter_config_is_one_line_and_leaves_nothing(tiny_run, tmp_path):
    """Found by a hostile-input sweep: an adapter_config.json of `[1]` or 100,000 '[' raised TypeError or RecursionError."""
    import shutil

    run = tmp_path / "damaged"
    shutil.copytree(tiny_run, run)
    for content in ("[1]", "[" * 100_000):
        (run / "adapter" / "adapter_config.json").write_text(content)
        result = run_cli("export", str(run), "--out", str(tmp_path / "adapter"), "--adapter-only")
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith(f"rlsd: error: {run / 'adapter' / 'adapter_config.json'}: damaged")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged"]


def test_a_4bit_run_merges_into_full_precision_within_the_difference_it_reports(tiny_model_dir, tmp_path):
    """A QLoRA adapter merged into dequantised weights is not bit-identical: the export says how far, and the merged
    model, loaded by plain transformers, is within that of the 4-bit run."""
    import torch

    from rlsd_cli.chat_format import render_prompt
    from rlsd_cli.export import PROBE_PROMPTS
    from rlsd_cli.model import load_model

    runs = tmp_path / "runs"
    trained = run_cli("sft", str(DOCS), "--model", str(tiny_model_dir), *TINY_SFT, "--max-steps", "2", "--quant", "4bit",
                      "--runs-dir", str(runs), "--name", "q")
    assert trained.returncode == 0, trained.stderr
    result = run_cli("export", str(runs / "q"), "--out", str(tmp_path / "out"), "--json")
    assert result.returncode == 0, result.stderr
    reported = json.loads(result.stdout)["logit_difference"]
    assert reported["max_abs"] > 0
    plain = json.loads(subprocess.run([sys.executable, "-c", PLAIN_LOGITS, str(tmp_path / "out"), json.dumps(PROBE_PROMPTS)],
                                      capture_output=True, text=True, check=True).stdout)
    run = load_model(str(runs / "q"), quant="4bit")
    worst = 0.0
    for prompt, logits in zip(PROBE_PROMPTS, plain, strict=True):
        ids = run.tokenizer(render_prompt(run.tokenizer, [{"role": "user", "content": prompt}]), return_tensors="pt",
                            add_special_tokens=False)["input_ids"]
        with torch.no_grad(), run.autocast():
            worst = max(worst, (run.model(ids).logits[0].float() - torch.tensor(logits)).abs().max().item())
    assert 0 < worst <= reported["max_abs"] * 1.001 + 1e-6


def test_report_to_tensorboard_writes_the_loss_and_the_reverse_kl(tiny_run, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = tmp_path / "runs"
    result = run_cli("recover", "--from", str(tiny_run), "--steps", "2", "--prompts-per-step", "2", "--samples-per-prompt", "2",
                     "--max-new-tokens", "8", "--report-to", "tensorboard", "--runs-dir", str(runs), "--name", "tb")
    assert result.returncode == 0, result.stderr
    events = list((runs / "tb" / "tensorboard").rglob("events.out.tfevents.*"))
    assert events, list((runs / "tb").rglob("*"))
    accumulator = EventAccumulator(str(events[0].parent))
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    assert {"train/loss", "train/reverse_kl", "train/reverse_kl/general"} <= tags, tags
    assert len(accumulator.Scalars("train/reverse_kl")) == 2
