"""Shared fixtures: a tiny random Llama with the SmolLM2 tokenizer for fast unit tests, and the embedded
SmolLM2-135M (converted once per machine under $RLSD_HOME) for end-to-end tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlsd_cli import env

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two pytest workers on two cores: a core each, for the tests and the commands they start.
    # Two OpenMP pools of two threads on two cores spin against each other (a test took 7x longer that way).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
env.configure()


# The session-wide SmolLM2 sft run, and the recover run made from it, are the longest things in the suite: every test
# that uses them runs on one `make test` worker, so the sft run trains once, first, while the other worker takes the
# rest a file at a time.
SFT_RUN_FILES = ("tests/test_sft_e2e.py", "tests/test_recover_e2e.py")


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: "sft_run" not in getattr(item, "fixturenames", ()))
    strays = {item.nodeid.split("::")[0] for item in items if "sft_run" in getattr(item, "fixturenames", ())} - set(SFT_RUN_FILES)
    if strays:
        raise pytest.UsageError(f"{', '.join(sorted(strays))} use sft_run: add them to conftest.SFT_RUN_FILES")


def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile`, with the files of SFT_RUN_FILES as one unit (xdist's own `loadgroup` marks do not reach
    the scheduler under pytest 9.2, whose node ids no longer take xdist's group suffix)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SftRunTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::")[0]
            return "sft-run" if file in SFT_RUN_FILES else file

    return SftRunTogether(config, log)


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def smollm_dir() -> Path:
    from rlsd_cli.model import resolve_model

    return resolve_model("smollm2-135m").path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smollm_dir) -> Path:
    """2 layers, hidden 64, random weights (seeded), SmolLM2's tokenizer and chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(smollm_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_gemma_dir(tmp_path_factory, smollm_dir) -> Path:
    """A tiny random Gemma 3 (2 layers, one sliding and one full attention) with a Gemma-style tokenizer: SmolLM2's
    vocabulary plus Gemma's special tokens (<bos>, <eos>, <pad>, <start_of_turn>, <end_of_turn>) and Gemma's turn
    format, whose end of turn is not its eos, and which has no system role."""
    import torch
    from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig

    from rlsd_cli.model import CHAT_TEMPLATES_DIR

    tokenizer = AutoTokenizer.from_pretrained(smollm_dir)
    tokenizer.add_special_tokens({"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>",
                                  "additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"]})
    tokenizer.chat_template = (CHAT_TEMPLATES_DIR / "gemma.jinja").read_text()
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=1, head_dim=16, max_position_embeddings=512, sliding_window=16,
        layer_types=["sliding_attention", "full_attention"], bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny-gemma")
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def sft_run(tmp_path_factory, smollm_dir):
    """`rlsd sft` on the test corpus, trained once per session: the sft end-to-end tests check it, and `recover`'s
    end-to-end test repairs it. The default settings but 4 epochs (not 6), a 0.1 general-chat mix (not 0.3) and no
    LoRA dropout: the default schedule took 17-20 minutes on a 2-core CPU without AVX512, too much of CI's 30; this
    one took 7.6 minutes there and answered 16 of the 24 questions (3 epochs: 9 of 24), replaying general chat
    only; with the default replay (general+factual) seed 0 answered 15 (docs/forgetting.md)."""
    data = Path(__file__).parent / "data"
    runs = tmp_path_factory.mktemp("e2e") / "runs"
    result = run_cli("sft", str(data / "docs"), "--epochs", "4", "--mix", "0.1", "--lora-dropout", "0", "--eval-qa",
                     str(data / "docs_qa.jsonl"), "--runs-dir", str(runs), "--name", "docs", "--json", timeout=2400)
    assert result.returncode == 0, result.stderr
    return runs / "docs", json.loads(result.stdout)


@pytest.fixture
def runs_root(tmp_path) -> Path:
    return tmp_path / "runs"


@pytest.fixture(autouse=True)
def _release_run_locks():
    """Runs made in the test process hold their lock for the process's life (as a CLI run does); let each test
    end like a process would, so a later subprocess can resume them."""
    yield
    from rlsd_cli import runs

    for path in list(runs._held_locks):
        runs.release_run_lock(path)
    runs._unstarted.clear()


def run_cli(*args: str, cwd: Path | None = None, env_extra: dict | None = None, timeout: int = 600):
    """Run the installed `rlsd` console script as a user would; returns the CompletedProcess."""
    environment = dict(os.environ, **(env_extra or {}))
    rlsd = Path(sys.executable).with_name("rlsd")
    return subprocess.run(
        [str(rlsd), *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout
    )


def stop_when_logged(args: list[str], metrics: Path, rows: int, stop_signal: int = 15, freeze: bool = False,
                     env_extra: dict | None = None):
    """Start `args`, wait until `metrics` has `rows` lines, send `stop_signal`; returns (returncode, stderr).
    `freeze` stops the process first (SIGSTOP/SIGCONT around the signal) so it is caught in the next step."""
    import signal
    import time

    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, **(env_extra or {})))
    deadline = time.time() + 300
    while process.poll() is None and time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < rows):
        time.sleep(0.01)
    if freeze:
        process.send_signal(signal.SIGSTOP)
    process.send_signal(stop_signal)
    if freeze:
        process.send_signal(signal.SIGCONT)
    _, stderr = process.communicate(timeout=300)
    return process.returncode, stderr


def assert_same_adapter(folder_a: Path, folder_b: Path, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Two runs' final adapters hold the same tensors within float tolerance, and training moved them."""
    import torch
    from safetensors.torch import load_file

    a, b = (load_file(Path(f) / "adapter" / "adapter_model.safetensors") for f in (folder_a, folder_b))
    assert a.keys() == b.keys()
    assert any(value.abs().max() > 1e-4 for key, value in b.items() if "lora_B" in key)  # it trained
    for key, value in b.items():
        torch.testing.assert_close(a[key], value, rtol=rtol, atol=atol, msg=key)
