"""Every option of the training verbs, declared once: type, default, help, choices and bounds.

The CLI flags (`cli.py`), the recipe keys (`recipes.py`), the validation (`Options.__post_init__`) and
`rlsd recipes show` all come from these declarations, as TRL's parser makes its flags and `--config` keys from its
config dataclasses' `metadata["help"]`. A verb's own cross-option checks follow in its `check()`.

Light on purpose: no torch, transformers or TRL, so that `rlsd --help` and bad flags answer at once.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import BadInputError
from .model import DEFAULT_MODEL, QUANT_CHOICES
from .replay import builtin_set_files

GENERATION_ENGINES = ("transformers", "vllm")
TRACKERS = ("none", "tensorboard", "mlflow", "wandb", "trackio")
RECOVER_METHODS = ("distill", "sft-self")
DIVERGENCES = ("full", "sampled")
KEEP_WITH = ("sft", "distill")
ALGOS = ("rlsd", "grpo", "opsd")
PRIVILEGED = ("answer", "solution")


def option(default: Any = MISSING, help: str = "", *, flag: str | None = None, choices: tuple | None = None,
           ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None,
           argument: bool = False, factory=None, metavar: str | None = None):
    """A config field with what the CLI, recipes and validation need to know about it.

    `flag`: the long flag when it is not the field name with dashes (`--from` for `from_run`); `argument`: a
    positional argument instead; `ge/gt/le/lt`: bounds (NaN and infinities are refused for every float)."""
    metadata = {"help": help, "flag": flag, "choices": choices, "argument": argument, "metavar": metavar,
                "bounds": {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def flag_name(f) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def check_value(f, value: Any) -> None:
    """One option's value against its declaration: finite, in its choices, within its bounds."""
    if value is None or isinstance(value, bool):
        return
    name = f.name.upper() if f.metadata.get("argument") else flag_name(f)
    if isinstance(value, float) and not math.isfinite(value):
        raise BadInputError(f"{name} must be a finite number, got {value}")
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise BadInputError(f"{name} {value!r}: choose one of {', '.join(map(str, choices))}")
    bounds = f.metadata.get("bounds") or {}
    if isinstance(value, (int, float)) and bounds:
        failed = (("ge" in bounds and value < bounds["ge"]) or ("gt" in bounds and value <= bounds["gt"])
                  or ("le" in bounds and value > bounds["le"]) or ("lt" in bounds and value >= bounds["lt"]))
        if failed:
            raise BadInputError(f"{name} must be {describe_bounds(bounds, isinstance(value, int))}, got {value}")


def describe_bounds(bounds: dict[str, float], integer: bool) -> str:
    """'a positive integer', 'at least 32', 'in [0, 1)'..., as a flag's help and its error message say it."""
    if integer and bounds == {"ge": 1}:
        return "a positive integer"
    if bounds == {"gt": 0}:
        return "positive"
    if bounds == {"ge": 0}:
        return "0 or positive"
    if set(bounds) == {"ge"}:
        return f"at least {bounds['ge']}"
    if set(bounds) == {"gt"}:
        return f"greater than {bounds['gt']}"
    low = f"[{bounds['ge']}" if "ge" in bounds else f"({bounds['gt']}" if "gt" in bounds else "(-inf"
    high = f"{bounds['le']}]" if "le" in bounds else f"{bounds['lt']})" if "lt" in bounds else "inf)"
    return f"in {low}, {high}"


@dataclass(kw_only=True)
class Options:
    """Base of every verb's config: validates each field from its declaration, then the verb's own `check()`."""

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str) and f.type in ("Path", "Path | None"):
                value = Path(value)
                setattr(self, f.name, value)
            if f.type == "list[Path]":
                value = [Path(v) for v in ([value] if isinstance(value, (str, Path)) else value)]
                setattr(self, f.name, value)
            if isinstance(value, list):
                for item in value:
                    check_value(f, item)
            else:
                check_value(f, value)
        self.check()

    def check(self) -> None:
        """Checks across options (one option's own bounds are declared with it); each group calls super()."""


@dataclass(kw_only=True)
class ModelOptions(Options):
    model: str | None = option(None, f"Model spec: {DEFAULT_MODEL} (the default), gemma3-270m, a folder, a .gguf, "
                               "runs/NAME or a hub id. A continuing round (--from) keeps its lineage's base.")

    def check(self) -> None:
        super().check()
        if self.model is not None and not self.model.strip():
            raise BadInputError(f"--model is empty; pass a model spec, or leave it out for {DEFAULT_MODEL}")
        if self.model is None and getattr(self, "from_run", None) is None:
            self.model = DEFAULT_MODEL


@dataclass(kw_only=True)
class PrecisionOptions(Options):
    quant: str = option("auto", "Weights precision (auto: 4-bit on a GPU, full precision on a CPU; fp32: no bf16 "
                        "autocast even where the CPU has fast bf16).", choices=QUANT_CHOICES)


@dataclass(kw_only=True)
class RunOptions(Options):
    """Where a training run's folder lives and how the run starts (sft, recover, reason)."""

    seed: int = option(0, "Seed of everything random in the run (the same seed gives the same run).", ge=0,
                       le=2**32 - 1)  # numpy's seed range
    name: str | None = option(None, "Run name (default <verb>-<timestamp>).")
    runs_dir: Path | None = option(None, "Where run folders live (default: ./runs, or $RLSD_RUNS).")
    resume: bool = option(False, "Continue the run named --name from its last checkpoint.")
    force: bool = option(False, "Move an existing run of that name to runs/.trash/ and start again.")
    save_every: int = option(0, "Write a checkpoint every N steps (0: only on interruption; the last step's is kept "
                             "until the trained model is scored).", ge=0)
    report_to: str = option("none", "Also send the metrics to a tracker (Trainer's integrations; install the matching "
                            "extra, e.g. pip install 'rlsd[tensorboard]'); tensorboard and mlflow's file store work "
                            "offline, writing under the run folder.", choices=TRACKERS)
    forgetting: bool = option(True, "Also score, before and after, the drift from the base model (KL on 96 everyday "
                              "prompts) and the retention of 157 world-knowledge answers (about 80 s per trained model on 2 "
                              "cores; the base's side is cached).")

    def check(self) -> None:
        super().check()
        if self.name is not None and (not self.name or "/" in self.name or self.name.startswith(".")):
            raise BadInputError(f"--name {self.name!r}: a run name is one folder name, without '/' or a leading '.'")
        if self.resume and self.force:
            raise BadInputError("--resume and --force contradict each other: --resume continues the run, --force "
                                "starts it again; pass one")
        if self.report_to != "none":
            from transformers import integrations

            # Trainer's own test of the tracker (tensorboardX counts for tensorboard), asked before the run begins.
            if not getattr(integrations, f"is_{self.report_to}_available")():
                raise BadInputError(f"--report-to {self.report_to}: the {self.report_to} package is not installed; "
                                    f"pip install {self.report_to}, or leave out --report-to")


@dataclass(kw_only=True)
class EvalOptions(Options):
    """Suites scored before and after training (sft, recover)."""

    eval_qa: list[Path] = option(help="Document QA JSONL to score before and after training; repeatable (a continuing "
                                 "round also scores the QA files of the rounds before it).", factory=list)
    eval: list[str] = option(help="Another suite to score before and after (e.g. ifeval); repeatable.", factory=list,
                             flag="--eval")
    eval_data: Path | None = option(None, "Data for the --eval suites (default: the copy shipped with rlsd; 'hub' for "
                                    "the hub's).")
    eval_limit: int | None = option(None, "Seeded sample of N items of the --eval suites.", ge=1)
    eval_max_new_tokens: int | None = option(None, "Most tokens per --eval response.", ge=1)

    def check(self) -> None:
        super().check()
        from .suites import SUITES

        for suite in self.eval:
            if suite not in SUITES or suite == "qa":
                raise BadInputError(f"--eval {suite!r}: choose {', '.join(s for s in SUITES if s != 'qa')} (document QA "
                                    "files go to --eval-qa)")


@dataclass(kw_only=True)
class RolloutOptions(Options):
    """How the on-policy verbs sample (recover, reason): transformers `generate`, or vLLM through TRL's integration
    (GPU, the optional `vllm` extra), colocated with training in the same processes."""

    generation: str = option("transformers", "Rollouts with transformers (default) or vllm (GPU; the optional vllm "
                             "extra).", choices=GENERATION_ENGINES)

    def check(self) -> None:
        super().check()
        if self.generation == "vllm":
            import importlib.util

            if importlib.util.find_spec("vllm") is None:
                raise BadInputError("--generation vllm: vLLM is not installed; install the extra with "
                                    "`pip install 'rlsd[vllm]'` on a machine with a CUDA GPU, or leave the default "
                                    "(transformers)")

    def generation_kwargs(self) -> dict:
        """The TRL config fields that pick the engine."""
        return {"use_vllm": self.generation == "vllm", "vllm_mode": "colocate"}


@dataclass(kw_only=True)
class PeriodicEvalOptions(Options):
    eval_every: int = option(0, "Also score the evaluations every N steps into metrics.jsonl (0: off).", ge=0)


@dataclass(kw_only=True)
class LoraOptions(Options):
    lora_r: int = option(16, "LoRA rank.", ge=1, le=4096)
    lora_alpha: int | None = option(None, "LoRA alpha (default: 2 x --lora-r).", ge=1, le=65536)

    def check(self) -> None:
        super().check()
        if self.lora_alpha is None:  # recorded as the value used
            self.lora_alpha = 2 * self.lora_r


@dataclass(kw_only=True)
class SFTConfig(ModelOptions, PrecisionOptions, LoraOptions, RunOptions, EvalOptions):
    docs: Path = option(help="Folder of documents (md, txt, rst, html, pdf, docx, jsonl/json).", argument=True)
    from_run: Path | None = option(None, "Continue an earlier run (sft or recover) on the folder as it is now: learn "
                                   "the new and changed documents, replay what still holds, retire what changed.",
                                   flag="--from")
    knowledge_replay: float = option(0.3, "In a continuing round, the share of examples that replay the Q/A pairs of "
                                     "unchanged documents.", ge=0, lt=1)
    update_pairs: bool = option(False, "In a continuing round, also train 'is this still true?' pairs for every fact "
                                "sentence a revision rewrote (the old sentence asked, the new one answered). Off by "
                                "default: at 135M they taught fewer new facts than the revision alone (docs/continual.md).")
    lora_dropout: float = option(0.05, "LoRA dropout.", ge=0, lt=1)
    lr: float = option(2e-3, "Learning rate.", gt=0)
    epochs: float = option(6.0, "Passes over the examples.", gt=0)
    max_steps: int = option(-1, "Stop after this many optimizer steps (overrides --epochs; -1: off).", ge=-1)
    batch_size: int = option(8, "Examples per step (per device).", ge=1, le=65536)
    grad_accum: int = option(1, "Gradient accumulation steps.", ge=1)
    max_length: int = option(256, "Tokens per example (document windows and chats).", ge=32)
    chunk_overlap: int = option(32, "Tokens shared by consecutive document windows (less than half of --max-length).",
                                ge=0)
    mix: float = option(0.3, "Fraction of training examples that are general chat.", ge=0, lt=1)
    chat_data: Path | None = option(None, "General chat (JSONL with 'messages') instead of replay.")
    augment: bool = option(True, "Add question/answer pairs and fact lists made from the documents.")
    augment_model: str | None = option(None, "Also have this model ('base' = the model being trained) write Q/A pairs "
                                       "per chunk.")
    replay: str = option("general+factual", "Built-in instruction sets the base model answers for the general chat "
                         "mixed in (general | format | factual | all, joined with '+'); --chat-data replaces them. "
                         "With the factual questions sft kept more world knowledge on average (docs/forgetting.md).")
    replay_max_new_tokens: int = option(128, "Most tokens of each replayed general-chat answer.", ge=1)
    strict: bool = option(False, "Stop at the first unusable file instead of skipping it.")
    dry_run: bool = option(False, "Show what would be trained on, without loading the model.")

    def check(self) -> None:
        super().check()
        if self.chunk_overlap >= self.max_length // 2:
            raise BadInputError(f"--chunk-overlap must be in [0, max_length/2), got {self.chunk_overlap}")
        if self.max_steps == 0:
            raise BadInputError("--max-steps 0 would train nothing; pass a positive number of steps, or -1 for --epochs")
        builtin_set_files(self.replay, f"--replay {self.replay}:")


@dataclass(kw_only=True)
class RecoverConfig(PrecisionOptions, RunOptions, EvalOptions, PeriodicEvalOptions, RolloutOptions):
    from_run: Path = option(help="The run to repair (runs/<name>, made by `rlsd sft`).", flag="--from")
    teacher: str = option("base", "'base' (the same weights, adapter off) or a model spec / run with the same "
                          "tokenizer.")
    teacher_precision: str = option("same", "same | full (a separate full-precision base copy for a 4-bit student).",
                                    choices=("same", "full"))
    method: str = option("distill", "distill | sft-self (supervised on own samples: the baseline).",
                         choices=RECOVER_METHODS)
    divergence: str = option("full", "full (full-vocabulary reverse KL) | sampled (per-token estimator). sft-self "
                             "always trains on the sampled tokens.", choices=DIVERGENCES)
    prompts: str = option("format", "General prompts: built-in sets (general | format | factual | all, "
                          "joined with '+') or a JSONL file ('prompt' or 'messages').")
    keep_mix: float = option(0.5, "Share of the loss that keeps what sft taught (see --keep-with); 0 is plain "
                             "distillation from the base.", ge=0, lt=1)
    keep_with: str = option("sft", "sft (supervised loss on the sft run's Q/A pairs) | distill (on-policy from a frozen "
                            "sft snapshot).", choices=KEEP_WITH)
    keep_prompts: Path | None = option(None, "Questions (and answers, for --keep-with sft) about the documents "
                                       "(default: the sft run's knowledge_prompts.jsonl).")
    keep_examples_per_step: int = option(8, "Q/A pairs per step for --keep-with sft.", ge=1)
    keep_newest_share: float = option(0.0, "After a continuing round (sft --from): share of each step's Q/A pairs "
                                      "drawn from the pairs that round made (0: the whole pool alike; 0.5 kept the "
                                      "new facts but cost IFEval and older QA, docs/continual.md).", ge=0, le=1)
    base_answers: int = option(0, "Per step, N of the base model's own cached answers to --base-answer-sets, "
                               "teacher-forced: the full-vocabulary KL to the teacher (the base unless --teacher names "
                               "another) at every answer token, no sampling (GKD's off-policy half); it shares the "
                               "general prompts' part of the loss equally. 0: off.", ge=0)
    base_answer_sets: str = option("general+factual", "Built-in sets whose base answers --base-answers draws "
                                   "(the answers sft replays, cached once per base).")
    samples_per_prompt: int = option(2, "Completions sampled per prompt (temperature 1, no truncation).", ge=1)
    top_k: int = option(0, "Sample from the k likeliest tokens (0: all, as on-policy distillation assumes; 1: greedy, "
                        "the same rollouts on any number of processes).", ge=0)
    prompts_per_step: int = option(4, "Prompts per optimizer step, over all processes.", ge=1)
    max_new_tokens: int = option(128, "Most tokens per sampled completion.", ge=1)
    steps: int = option(30, "Optimizer steps.", ge=1)
    lr: float = option(1e-3, "Learning rate.", gt=0)

    def check(self) -> None:
        super().check()
        if self.method == "sft-self":  # it trains on the sampled tokens themselves; record what runs
            self.divergence = "sampled"


# `rlsd reason`'s defaults by device. CPU: the embedded 135M model on `rlsd data math` (docs/reason.md: with
# dynamic sampling, the curriculum and the overlong punishment, held-out 0.07 -> 0.20 / 0.15 / 0.17 on three seeds
# in 40 steps at lr 5e-4 on the bf16 CPU kind; at 1e-4, without the punishment, 0.08). GPU: a
# reasoning model's chains need room (the paper's temperature 1 and 1024+ tokens; lr as in
# recipes/gpu-qwen3-8b-reason.yaml).
REASON_DEVICE_DEFAULTS = {
    "cpu": {"temperature": 0.7, "max_new_tokens": 128, "lr": 5e-4},
    "cuda": {"temperature": 1.0, "max_new_tokens": 1024, "lr": 2e-5},
}


def device_default_help(name: str) -> str:
    cpu, gpu = REASON_DEVICE_DEFAULTS["cpu"][name], REASON_DEVICE_DEFAULTS["cuda"][name]
    return f"(default: {cpu:g} on a CPU, {gpu:g} on a GPU)"


@dataclass(kw_only=True)
class ReasonConfig(ModelOptions, PrecisionOptions, LoraOptions, RunOptions, PeriodicEvalOptions, RolloutOptions):
    data: Path = option(help="A folder with train.jsonl (and test.jsonl), or a JSONL of problems: prompt|question, "
                        "answer, optional solution.")
    verifier: list[str] = option(help="math | exact | regex:PATTERN | python:module:function; repeat to combine, "
                                 "weight as 0.5*math.", factory=lambda: ["math"])
    algo: str = option("rlsd", "rlsd | grpo | opsd (one code path).", choices=ALGOS)
    privileged: str = option("answer", "What the teacher is shown: answer | solution.", choices=PRIVILEGED)
    teacher: str = option("sync", "sync (a frozen adapter copy, re-synced every --teacher-sync-steps) | live.",
                          choices=("sync", "live"))
    teacher_sync_steps: int = option(20, "Steps between re-syncs of the sync teacher.", ge=1)
    num_generations: int = option(8, "Completions per problem (the group G; at least 2).", ge=2)
    prompts_per_step: int = option(2, "Problems per optimizer step.", ge=1)
    max_new_tokens: int | None = option(None, f"Most tokens per completion {device_default_help('max_new_tokens')}.",
                                        ge=1)
    temperature: float | None = option(None, "Rollout sampling temperature (no top-k/top-p); the teacher scores at "
                                       f"the same one {device_default_help('temperature')}.", gt=0)
    steps: int = option(40, "Optimizer steps.", ge=1)
    lr: float | None = option(None, f"Learning rate of the LoRA weights {device_default_help('lr')}.", gt=0)
    dynamic_sampling: int = option(2, "DAPO dynamic sampling: groups whose verdicts are all equal (no signal) are "
                                   "dropped and fresh problems refill the step, for at most N more generations "
                                   "(0: off; one process only).", ge=0, le=15)
    curriculum: str = option("pass-rate", "How problems are drawn: pass-rate (in proportion to p(1-p), p the measured "
                             "pass rate of the problem and its difficulty) | uniform (TRL's shuffled order).",
                             choices=("pass-rate", "uniform"))
    overlong_cache: int | None = option(None, "DAPO's soft overlong punishment (TRL's): a completion longer than "
                                        "--max-new-tokens minus N tokens loses reward linearly, down to -1 at the "
                                        "limit (default: a quarter of --max-new-tokens; 0: off).", ge=0)
    lam: float = option(0.5, "RLSD mixing weight at step 0.", flag="--lambda", ge=0, le=1)
    lambda_decay_steps: int = option(60, "lambda falls linearly to 0 over these steps (0: constant).", ge=0)
    eps_w: float = option(0.2, "Token weights are clipped to [1-eps_w, 1+eps_w].", ge=0, lt=1)
    eps_low: float = option(0.2, "PPO clip below: the ratio is kept above 1 - eps_low.", ge=0, lt=1)
    eps_high: float = option(0.28, "PPO clip above (DAPO's clip-higher): the ratio is kept below 1 + eps_high.", ge=0)
    dual_clip: float = option(3.0, "Dual clip for negative advantages: the loss is bounded by dual_clip x |A|.", gt=1)
    test_data: Path | None = option(None, "Held-out problems (default: test.jsonl beside --data).")
    eval_limit: int | None = option(100, "Seeded sample of N held-out problems.", ge=1)
    eval_max_new_tokens: int | None = option(None, "Most tokens per held-out answer (default: --max-new-tokens).", ge=1)

    def check(self) -> None:
        super().check()
        if isinstance(self.verifier, str):  # one verifier given alone, as a recipe may
            self.verifier = [self.verifier]

    def fill_device_defaults(self, device: str) -> dict[str, Any]:
        """The options left unset take the device's defaults (REASON_DEVICE_DEFAULTS), and the overlong
        punishment a quarter of the completion limit; returns what was filled."""
        filled = {name: value for name, value in REASON_DEVICE_DEFAULTS[device].items() if getattr(self, name) is None}
        for name, value in filled.items():
            setattr(self, name, value)
        if self.overlong_cache is None:  # a quarter of the limit on any device (DAPO punished its last fifth)
            self.overlong_cache = filled["overlong_cache"] = self.max_new_tokens // 4
        return filled


TRAINING_CONFIGS = {"sft": SFTConfig, "recover": RecoverConfig, "reason": ReasonConfig}


def default_of(f) -> Any:
    """A field's default as the CLI shows it (None for a required option)."""
    if f.default is not MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not MISSING else None


def options_by_key(config_class) -> dict[str, Any]:
    """Recipe key -> declared field: the long flag without dashes (`max-new-tokens`, `from`, `lambda`) or with
    underscores (`max_new_tokens`), or a positional argument's name (`docs`)."""
    keys = {}
    for f in fields(config_class):
        key = f.name if f.metadata["argument"] else flag_name(f)[2:]
        keys[key] = keys[key.replace("-", "_")] = f
    return keys
