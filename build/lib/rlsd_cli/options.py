"""Option groups that several verbs' configs share, so a flag means the same thing and is checked the same way
everywhere. Keyword-only: they come after each verb's own fields, which may have no default."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import BadInputError


@dataclass(kw_only=True)
class RunOptions:
    """Where a training run's folder lives and how the run starts (sft, recover, reason)."""

    seed: int = 0
    name: str | None = None  # default: <verb>-<timestamp>
    runs_dir: Path | None = None  # default: ./runs ($RLSD_RUNS)
    resume: bool = False  # continue the run called `name` from its last checkpoint
    force: bool = False  # move an existing run of that name to runs/.trash/ and start again
    save_every: int = 0  # a checkpoint every N steps; 0: only on interruption

    def __post_init__(self):
        if self.save_every < 0:
            raise BadInputError(f"--save-every must be 0 (only on interruption) or positive, got {self.save_every}")
        if self.resume and self.force:
            raise BadInputError("--resume and --force contradict each other: --resume continues the run, --force "
                                "starts it again; pass one")


@dataclass(kw_only=True)
class EvalOptions:
    """Suites scored before and after training (sft, recover)."""

    eval_qa: Path | None = None  # document QA JSONL
    eval: list[str] = field(default_factory=list)  # other suites, e.g. ["ifeval"]
    eval_data: Path | None = None  # data for the `eval` suites
    eval_limit: int | None = None  # a seeded sample of N items of the `eval` suites
    eval_max_new_tokens: int | None = None

    def __post_init__(self):
        if self.eval_limit is not None and self.eval_limit <= 0:
            raise BadInputError(f"--eval-limit must be a positive integer, got {self.eval_limit}")
        if self.eval_max_new_tokens is not None and self.eval_max_new_tokens <= 0:
            raise BadInputError(f"--eval-max-new-tokens must be a positive integer, got {self.eval_max_new_tokens}")


GENERATION_ENGINES = ("transformers", "vllm")


@dataclass(kw_only=True)
class RolloutOptions:
    """How the on-policy verbs sample (recover, reason): transformers `generate` (default) or vLLM through TRL's
    integration (GPU, the optional `vllm` extra), colocated with training in the same processes."""

    generation: str = "transformers"

    def __post_init__(self):
        if self.generation not in GENERATION_ENGINES:
            raise BadInputError(f"--generation {self.generation!r}: choose {' or '.join(GENERATION_ENGINES)}")
        if self.generation == "vllm":
            import importlib.util

            if importlib.util.find_spec("vllm") is None:
                raise BadInputError("--generation vllm: vLLM is not installed; install the extra with "
                                    "`pip install 'rlsd[vllm]'` on a machine with a CUDA GPU, or leave the default "
                                    "(transformers)")

    def generation_kwargs(self) -> dict:
        """The TRL config fields that pick the engine."""
        return {"use_vllm": self.generation == "vllm", "vllm_mode": "colocate"}
