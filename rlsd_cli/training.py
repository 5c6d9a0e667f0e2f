"""What every training verb shares: Trainer arguments set right for CPU and GPU, metrics into the run
folder, interruption into a checkpoint, peak memory and the loss curve."""

from __future__ import annotations

import contextlib
import os
import resource
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from .console import say
from .distributed import LAUNCHED, any_process, world_size
from .errors import EXIT_INTERRUPTED, RlsdError
from .runs import Run


class Interrupted(RlsdError):
    exit_code = EXIT_INTERRUPTED


def peak_rss_bytes() -> int:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def common_trainer_kwargs(precision, run: Run, seed: int, save_every: int, checkpointing: bool = False) -> dict[str, Any]:
    """TrainingArguments fields every verb sets the same way.

    TRL defaults to bf16 weights and gradient checkpointing; on a CPU we keep fp32 master weights with bf16
    autocast where the CPU has fast bf16 (Trainer's `bf16=True` on CPU is exactly that autocast). `sft`
    trains without checkpointing (batch 8 x 256 fits; it only costs time there).
    """
    on_cpu = precision.device == "cpu"
    return {
        "output_dir": str(run.path / "checkpoints"),
        "bf16": precision.autocast_dtype == "bfloat16",
        "fp16": precision.autocast_dtype == "float16",
        "use_cpu": on_cpu,
        # On-policy verbs turn it on: their backward over 16 sampled rows held ~10 GB of activations on the
        # 135M model (16 x 200 tokens); recomputing them costs ~8% of the backward and halves peak memory.
        "gradient_checkpointing": checkpointing,
        "gradient_checkpointing_kwargs": {"use_reentrant": False} if checkpointing else None,
        "report_to": [],
        "seed": seed,
        "data_seed": seed,
        "logging_steps": 1,
        "logging_first_step": True,
        "save_strategy": "steps" if save_every > 0 else "no",
        "save_steps": save_every if save_every > 0 else 500,
        "save_only_model": False,
        "dataloader_num_workers": 0,
        # Under several processes: every LoRA parameter gets a gradient each step, so DDP need not search for unused ones.
        "ddp_find_unused_parameters": False,
        "disable_tqdm": True,
        "include_num_input_tokens_seen": "non_padding",
    }


class RunLogger(TrainerCallback):
    """Writes every logged step to metrics.jsonl and prints a short line about every 10% of training."""

    def __init__(self, run: Run, label: str, show: tuple[str, ...] = ("loss",)):
        self.run, self.label, self.show = run, label, show
        self.started = time.perf_counter()
        self._last_report = -1.0

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "train_loss" in logs:  # the end-of-training summary, not a step (rank 0 alone writes: Run)
            return
        row = {k: _number(v) for k, v in logs.items() if k not in ("train_runtime", "train_tokens_per_second")}
        row["tokens_seen"] = int(getattr(state, "num_input_tokens_seen", 0) or 0)
        row["elapsed_s"] = round(time.perf_counter() - self.started, 2)
        self.run.log_metrics(state.global_step, **row)
        fraction = state.global_step / max(state.max_steps, 1)
        if fraction - self._last_report >= 0.1 or state.global_step == state.max_steps:
            self._last_report = fraction
            shown = "".join(f" {key} {row[key]:.4f}" for key in self.show if isinstance(row.get(key), (int, float)))
            say(f"{self.label}: step {state.global_step}/{state.max_steps}{shown} ({row['elapsed_s']:.0f} s)")


class PeriodicEval(TrainerCallback):
    """Scores the model being trained every `every` steps (no cache, no report files) into metrics.jsonl as
    `eval/<suite>/<metric>`, so a trade-off between suites is visible during training."""

    def __init__(self, every: int, eval_configs: dict[str, Any], loaded, run: Run):
        self.every, self.eval_configs, self.loaded, self.run = every, eval_configs, loaded, run

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every or state.global_step == state.max_steps or not state.is_world_process_zero:
            return  # the final step is scored by the verb's after-training evaluation; rank 0 scores for all
        from .evaluate import score_in_memory

        row = {}
        for suite, config in self.eval_configs.items():
            for metric, value in score_in_memory(config, self.loaded).items():
                if isinstance(value, (int, float)):
                    row[f"eval/{suite}/{metric}"] = round(float(value), 6)
        self.run.log_metrics(state.global_step, **row)
        say(f"eval at step {state.global_step}: " + ", ".join(f"{k.split('/', 1)[1]} {v:.3f}" for k, v in row.items()))


def _number(value: Any) -> Any:
    """Trainer logs may hold numbers as formatted strings; store numbers."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return value
    return round(value, 6) if isinstance(value, float) else value


def make_quiet(trainer) -> None:
    """Our RunLogger reports progress; Trainer's own printer would dump every log dict on stdout."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)


class StopAtStepEnd(TrainerCallback):
    """The first Ctrl-C or SIGTERM lets the running step finish, then Trainer saves a checkpoint and stops; a
    second one stops at once, without a checkpoint.

    Why at a step boundary: a checkpoint taken mid-step holds weights, optimizer, RNG and data position from
    different moments (a step may already be half applied, the sampler's RNG already advanced), so a resumed
    run would not be the run that was stopped. Saved after the step, it is exactly that run.
    """

    def __init__(self):
        self.requested = False

    def on_step_end(self, args, state, control, **kwargs):
        if any_process(self.requested, args.device):
            control.should_save = True
            control.should_training_stop = True
        return control

    @contextlib.contextmanager
    def handling_signals(self):
        def handler(signum, frame):
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True
            name = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
            say(f"{name}: stopping after this step and saving a checkpoint (Ctrl-C again stops now, without one)")

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


def resume_command(name: str) -> str:
    argv = [a for a in sys.argv if a not in ("--resume", "--force")]
    prog = "rlsd" if argv and argv[0].endswith("rlsd") else shlex.quote(argv[0]) if argv else "rlsd"
    if os.environ.get(LAUNCHED):  # a worker under `rlsd --num-processes N`
        prog = f"rlsd --num-processes {world_size()}"
    rest = [shlex.quote(a) for a in argv[1:]]
    if "--name" not in argv:
        rest += ["--name", shlex.quote(name)]
    return " ".join([prog, *rest, "--resume"])


def complete_checkpoint(folder: Path) -> bool:
    """Trainer writes a checkpoint in place, trainer_state.json last: a folder is complete when that file
    parses and the adapter and optimizer state are there (a kill -9 mid-save leaves an incomplete one)."""
    import json

    try:
        json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (folder / "adapter_model.safetensors").is_file() and (folder / "optimizer.pt").is_file()


def latest_checkpoint(run: Run) -> Path | None:
    """The newest complete checkpoint; incomplete ones (a save cut short) are passed over."""
    folder = run.path / "checkpoints"
    candidates = sorted(
        (p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name.rsplit("-", 1)[-1].isdigit()),
        key=lambda p: int(p.name.rsplit("-", 1)[-1]),
    )
    complete = [p for p in candidates if complete_checkpoint(p)]
    newest = complete[-1] if complete else None
    for later in candidates[candidates.index(newest) + 1 if newest else 0:]:
        say(f"{later}: incomplete checkpoint (its save was cut short); passed over")
    return newest


def train(trainer, run: Run, resume: bool) -> None:
    """trainer.train(), resuming from the run's last checkpoint when asked; Ctrl-C or SIGTERM saves a
    checkpoint and exits 130 with the command that resumes."""
    make_quiet(trainer)
    run.mark_started()
    checkpoint = latest_checkpoint(run) if resume else None
    if resume and checkpoint is None:
        say(f"{run.path}: no checkpoint yet; starting from the beginning")
        run.drop_metrics_after(0)
    elif checkpoint is not None:
        run.drop_metrics_after(int(checkpoint.name.rsplit("-", 1)[-1]))
    stopper = StopAtStepEnd()
    trainer.add_callback(stopper)
    try:
        with stopper.handling_signals():
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except KeyboardInterrupt:
        last = latest_checkpoint(run)
        where = f"the last complete checkpoint is {last}" if last else "no checkpoint was written"
        raise Interrupted(f"stopped at once at step {trainer.state.global_step}; {where}. "
                          f"Resume with: {resume_command(run.name)}") from None
    if stopper.requested and trainer.state.global_step < trainer.state.max_steps:
        step = trainer.state.global_step
        raise Interrupted(f"stopped after step {step}; checkpoint saved in {run.path / 'checkpoints'}. "
                          f"Resume with: {resume_command(run.name)}")


def config_record(config) -> dict[str, Any]:
    """A config dataclass as JSON-ready values, for run.json. Paths are made absolute: a later command (`recover`
    reading the sft run's `--eval-qa`, a resume) may run from another folder."""
    from dataclasses import asdict

    from .suites.base import HUB

    def recorded(value: Any) -> Any:
        if not isinstance(value, Path):
            return value
        return str(value) if str(value) == HUB else str(value.absolute())  # `--eval-data hub` is a word, not a path

    return {k: recorded(v) for k, v in asdict(config).items()}


def mean_or_none(values: list) -> float | None:
    """The mean of the numbers among `values` (rounded), or None when there are none."""
    values = [v for v in values if isinstance(v, (int, float))]
    return round(sum(values) / len(values), 4) if values else None


def cost_summary(steps: int, train_seconds: float, started: float) -> dict[str, Any]:
    """Steps, time and peak memory: the part of every training verb's summary that is the same."""
    import torch

    return {
        "steps": steps,
        "train_seconds": round(train_seconds, 1),
        "seconds_per_step": round(train_seconds / max(steps, 1), 2),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "peak_rss_bytes": peak_rss_bytes(),
        "peak_cuda_bytes": torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None,
    }
