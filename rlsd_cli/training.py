"""What every training verb shares: the run skeleton (`TrainingRecipe`, `run_recipe`), Trainer arguments set right
for CPU and GPU, metrics into the run folder, scores before and after, interruption into a checkpoint, peak memory."""

from __future__ import annotations

import contextlib
import os
import resource
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerState

from . import env
from .console import say
from .distributed import LAUNCHED, any_process, is_main_process, world_size
from .errors import EXIT_INTERRUPTED, BadInputError, RlsdError
from .evaluate import EvalConfig, check_eval_data, run_eval, score_in_memory
from .fsutil import read_json
from .model import LoadedModel, resolve_model
from .runs import Run


class Interrupted(RlsdError):
    exit_code = EXIT_INTERRUPTED
    shortened = False  # its message ends in the resume command


class Diverged(RlsdError):
    """The loss or the gradient stopped being a finite number: nothing trained after that step can be kept."""


FAILURE_RECORD = "failure.json"


class StopWhenNonFinite(TrainerCallback):
    """Stops training the first step whose logged loss or gradient norm is NaN or infinite, whatever caused it (a
    learning rate too high, a broken batch), marking the run failed; checkpoints already written stay as they were
    and nothing after the bad step is saved."""

    def __init__(self, run: Run):
        self.run = run

    def on_log(self, args, state, control, logs=None, **kwargs):
        import math

        values = {k: _number(v, keep_non_finite=True) for k, v in (logs or {}).items() if k in ("loss", "grad_norm")}
        bad = {k: v for k, v in values.items() if isinstance(v, float) and not math.isfinite(v)}
        if not bad:
            return
        last = latest_checkpoint(self.run)
        reason = ", ".join(f"{k} {v}" for k, v in bad.items())
        self.run.mark_failed(state.global_step, reason)
        raise Diverged(f"{reason} at step {state.global_step}: training stopped and {self.run.path} is marked failed; "
                       f"{f'its last good checkpoint is {last}' if last else 'no checkpoint was written'}. Lower --lr, "
                       "or look at that step's batch")


def peak_rss_bytes() -> int:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def common_trainer_kwargs(precision, run: Run, seed: int, save_every: int, checkpointing: bool = False,
                          report_to: str = "none") -> dict[str, Any]:
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
        "report_to": [] if report_to == "none" else [report_to],
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
        self.trackers: list = []  # the trainer's tracker callbacks (--report-to), set once the trainer exists

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every or state.global_step == state.max_steps or not state.is_world_process_zero:
            return  # the final step is scored by the verb's after-training evaluation; rank 0 scores for all
        scores = {suite: score_in_memory(config, self.loaded) for suite, config in self.eval_configs.items()}
        row = {key: round(float(value), 6) for key, value in eval_row(scores).items()}
        self.run.log_metrics(state.global_step, **row)
        for tracker in self.trackers:
            tracker.on_log(args, state, control, logs=row)
        say(f"eval at step {state.global_step}: " + ", ".join(f"{k.split('/', 1)[1]} {v:.3f}" for k, v in row.items()))


def _number(value: Any, keep_non_finite: bool = False) -> Any:
    """Trainer logs may hold numbers as formatted strings; store numbers (NaN and infinities as null: JSON has none)."""
    import math

    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return value
    if isinstance(value, float) and not math.isfinite(value):
        return value if keep_non_finite else None
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
        if state.global_step >= state.max_steps:
            # The trained state is a checkpoint too: a signal while the trained model is scored (minutes of
            # generation) then costs no training, and --resume only scores it.
            control.should_save = True
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
    parses, the adapter and optimizer state are there (a kill -9 mid-save leaves an incomplete one), and every file
    of it opens (a damaged disk or a hand edit leaves one a resume would stop on with a traceback)."""
    try:
        if not isinstance(read_json(folder / "trainer_state.json", "passed over"), dict):
            return False
    except (OSError, BadInputError):
        return False
    if not all((folder / name).is_file() for name in ("adapter_model.safetensors", "optimizer.pt")):
        return False
    return all(_opens(path) for path in folder.rglob("*") if path.is_file())


def _opens(path: Path) -> bool:
    """Whether a checkpoint file's structure reads: JSON parses, a safetensors header reads, and the zip directory
    torch.save writes at a file's end is there (a cut-short or overwritten file fails). Tensors are not loaded."""
    import zipfile

    from safetensors import SafetensorError, safe_open

    try:
        if path.suffix == ".json":
            read_json(path, "passed over")
        elif path.suffix == ".safetensors":
            with safe_open(path, framework="pt"):
                pass
        elif path.suffix in (".pt", ".pth", ".bin"):
            with zipfile.ZipFile(path) as archive:
                return bool(archive.namelist())
    except (OSError, BadInputError, SafetensorError, zipfile.BadZipFile):
        return False
    return True


def finished_checkpoint(folder: Path) -> bool:
    """Whether a complete checkpoint holds the run's last step (saved before the trained model is scored)."""
    state = read_json(folder / "trainer_state.json", "passed over")
    steps, done = state.get("max_steps"), state.get("global_step")
    return isinstance(steps, int) and isinstance(done, int) and 0 < steps <= done


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
        say(f"{later}: incomplete or damaged checkpoint (its save was cut short, or a file in it does not open); "
            "passed over")
    return newest


def train(trainer, run: Run, resume: bool) -> bool:
    """trainer.train(), resuming from the run's last checkpoint when asked; Ctrl-C or SIGTERM saves a
    checkpoint and exits 130 with the command that resumes. False when the checkpoint had finished training, so
    this process only loaded it."""
    make_quiet(trainer)
    run.mark_started()
    checkpoint = latest_checkpoint(run) if resume else None
    if resume and checkpoint is None:
        say(f"{run.path}: no checkpoint yet; starting from the beginning")
        run.drop_metrics_after(0)
    elif checkpoint is not None:
        run.drop_metrics_after(int(checkpoint.name.rsplit("-", 1)[-1]))
    if checkpoint is not None and finished_checkpoint(checkpoint):
        # Trainer resumed from its last step trains one step more, so the finished state is loaded instead.
        say(f"{checkpoint}: training had finished; scoring it")
        trainer._load_from_checkpoint(str(checkpoint))
        trainer.state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
        return False
    stopper = StopAtStepEnd()
    trainer.add_callback(stopper)
    trainer.callback_handler.callbacks.insert(0, StopWhenNonFinite(run))  # before the step is logged as a number
    try:
        with stopper.handling_signals():
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except KeyboardInterrupt:
        last = latest_checkpoint(run)
        where = f"the last complete checkpoint is {last}" if last else "no checkpoint was written"
        raise Interrupted(f"stopped at once at step {trainer.state.global_step}; {where}. "
                          f"Resume with: {resume_command(run.name)}") from None
    if stopper.requested:
        step = trainer.state.global_step
        done = "the last step" if step >= trainer.state.max_steps else f"step {step}"
        raise Interrupted(f"stopped after {done}; checkpoint saved in {run.path / 'checkpoints'}. "
                          f"Resume with: {resume_command(run.name)}")
    return True


@contextlib.contextmanager
def scoring_trained(run: Run):
    """A signal while the trained model is saved and scored leaves its final checkpoint: say how to finish."""
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(f"stopped while scoring the trained model; its training is saved in "
                          f"{run.path / 'checkpoints'}. Resume (it only scores) with: {resume_command(run.name)}") from None


def config_record(config) -> dict[str, Any]:
    """A config dataclass as JSON-ready values, for run.json. Paths are made absolute: a later command (`recover`
    reading the sft run's `--eval-qa`, a resume) may run from another folder."""
    from dataclasses import asdict

    from .suites.base import HUB

    def recorded(value: Any) -> Any:
        if isinstance(value, list):
            return [recorded(v) for v in value]
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
        # None when this process only scored a finished checkpoint: its training time is not known here.
        "train_seconds": round(train_seconds, 1) if train_seconds > 0 else None,
        "seconds_per_step": round(train_seconds / max(steps, 1), 2) if train_seconds > 0 else None,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "peak_rss_bytes": peak_rss_bytes(),
        "peak_cuda_bytes": torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None,
    }


def tracker_environment(run: Run, report_to: str) -> None:
    """Trackers write into the run folder unless told otherwise: TensorBoard's event files in `tensorboard/`, MLflow's
    file store in `mlruns/`, W&B's files in `wandb/` (offline trackers then need no network)."""
    if report_to == "tensorboard":
        os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(run.path / "tensorboard"))
    elif report_to == "mlflow":
        os.environ.setdefault("MLFLOW_TRACKING_URI", (run.path / "mlruns").absolute().as_uri())
    elif report_to == "wandb":
        os.environ.setdefault("WANDB_DIR", str(run.path))


def on_policy_trainer_kwargs(config, loaded, run: Run, rollouts_per_process: int) -> dict[str, Any]:
    """The TRL config fields recover and reason (both sample, score and update once a step) set the same way."""
    return {
        **common_trainer_kwargs(loaded.precision, run, config.seed, config.save_every, checkpointing=True,
                                report_to=config.report_to),
        **config.generation_kwargs(),
        "per_device_train_batch_size": rollouts_per_process,
        "gradient_accumulation_steps": 1,
        "learning_rate": config.lr,
        "max_steps": config.steps,
        "lr_scheduler_type": "constant",
        "weight_decay": 0.0,
        "max_completion_length": config.max_new_tokens,
        "top_p": 1.0,
        "disable_dropout": True,  # the policy that samples must be the policy that is scored
        "remove_unused_columns": False,
    }


def eval_row(scores: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Scores by suite as metrics.jsonl keys: `eval/<suite>/<metric>`."""
    return {f"eval/{suite}/{metric}": value for suite, metrics in scores.items() for metric, value in metrics.items()
            if isinstance(value, (int, float))}


# What a training summary shows of the forgetting measures; their reports hold the per-category figures too.
FORGETTING_SUMMARY = {"knowledge": ("accuracy", "retention", "fact_retention"), "drift": ("kl", "early_divergence")}


def score(eval_configs: dict[str, EvalConfig], loaded: LoadedModel, spec: str, adapter_off: bool = False,
          drift: bool = False) -> dict[str, dict]:
    """Every suite's metrics for the model `spec` names, computed on the weights already in memory (with the
    adapter switched off for a base model), and its drift from the base; reports are cached and filed under `spec`."""
    import contextlib
    from dataclasses import replace

    from .drift import run_drift

    if not eval_configs and not drift:
        return {}
    view = LoadedModel(model=loaded.model, tokenizer=loaded.tokenizer, resolved=resolve_model(spec, unfinished_ok=True), precision=loaded.precision)
    with loaded.model.disable_adapter() if adapter_off else contextlib.nullcontext():
        scores = {suite: run_eval(replace(config, model=spec), loaded=view)["metrics"] for suite, config in eval_configs.items()}
        if drift:
            scores["drift"] = run_drift(spec, loaded=view)["metrics"]
    return {suite: {k: v for k, v in metrics.items() if k in FORGETTING_SUMMARY.get(suite, (k,))}
            for suite, metrics in scores.items()}


def forgetting_configs(config) -> dict[str, EvalConfig]:
    """The knowledge-retention suite, scored with every run unless --no-forgetting (drift is scored beside it)."""
    if not getattr(config, "forgetting", False):
        return {}
    return {"knowledge": EvalConfig(suite="knowledge", quant=getattr(config, "quant", "auto"))}


def qa_eval_configs(files: list[Path], model: str, quant: str) -> dict[str, EvalConfig]:
    """Document QA configs, one per file: the first reported as `qa`, others as `qa-<file stem>` (a lineage scores
    every round's questions)."""
    out: dict[str, EvalConfig] = {}
    for i, path in enumerate(files):
        name = "qa" if i == 0 else f"qa-{Path(path).stem}"
        out[name] = EvalConfig(suite="qa", model=model, data=Path(path), quant=quant, report_name=name)
    return out


def recorded_qa_files(record: dict[str, Any]) -> list[Path]:
    """The QA files a run was scored on, from its run.json (one path in runs made before --eval-qa repeated)."""
    files = (record.get("config") or {}).get("eval_qa") or []
    return [Path(f) for f in ([files] if isinstance(files, str) else files)]


def merged_paths(*groups: list[Path]) -> list[Path]:
    """The paths of every group in order, each file once however it is spelled."""
    seen, out = set(), []
    for path in (p for group in groups for p in group):
        if Path(path).resolve() not in seen:
            seen.add(Path(path).resolve())
            out.append(Path(path))
    return out


class TrainingRecipe:
    """One training verb, as `run_recipe` drives it: what it reads, loads and trains, and what its summary says.
    A verb's module subclasses it with only what is particular to its method (torchtune's recipe interface;
    tinker-cookbook's shared rl/train.py)."""

    verb = ""
    reports_base = False  # also score the base model (adapter off) when training starts from a run

    def __init__(self, config):
        self.config = config

    def prepare(self) -> None:
        """Read every input before any model work, so a bad file fails in seconds, not after the model loads."""

    def eval_configs(self) -> dict[str, EvalConfig]:
        return {}

    def load(self) -> LoadedModel:
        raise NotImplementedError

    def record(self, loaded: LoadedModel) -> dict[str, Any]:
        """What run.json keeps beyond the base model and the config (the parent run, the teachers, the data)."""
        return {}

    def build_trainer(self, loaded: LoadedModel, run: Run, callbacks: list):
        raise NotImplementedError

    def describe(self, trainer) -> str:
        """The line said as training starts."""
        return ""

    def finish(self, loaded: LoadedModel) -> None:
        """After training, before the adapter is saved (e.g. drop helper adapters)."""

    def summary(self, trainer, run: Run, train_seconds: float) -> dict[str, Any]:
        """The verb's own summary keys (its curve, its measures of progress)."""
        return {}

    def report_scores(self, scores: dict[str, dict]) -> dict:
        """How the summary shows one stage's scores: by suite."""
        return scores


def check_inputs(recipe: TrainingRecipe) -> tuple[dict[str, EvalConfig], dict[str, EvalConfig]]:
    """Everything a run refuses before its model loads (and `--dry-run` with it): the verb's inputs, the
    evaluation data, the run folder. Returns the suites asked for, and those with the forgetting measures."""
    config = recipe.config
    recipe.prepare()
    requested = recipe.eval_configs()
    eval_configs = {**requested, **forgetting_configs(config)}
    check_eval_data(eval_configs.values())
    if is_main_process():  # the others would find the folder rank 0 has just made
        Run.check_target(recipe.verb, name=config.name, root=config.runs_dir, force=config.force, resume=config.resume)
    return requested, eval_configs


def run_recipe(recipe: TrainingRecipe) -> dict[str, Any]:
    """Check inputs, load, make the run folder, score the start, train, save the adapter, score the result, and
    write the summary: the same order for every training verb."""
    env.require_supported_trl()
    config = recipe.config
    started = time.perf_counter()
    requested, eval_configs = check_inputs(recipe)
    loaded = recipe.load()
    run = Run.create(recipe.verb, name=config.name, root=config.runs_dir, force=config.force, resume=config.resume,
                     record={"base_model": loaded.record(), "config": config_record(config), "parent": None,
                             **recipe.record(loaded)})
    say(f"run folder: {run.path}")

    starts_from_base = loaded.resolved.run_dir is None  # a fresh adapter: the start is the base model itself
    start = loaded.resolved.spec if starts_from_base else str(loaded.resolved.run_dir)
    drift = bool(getattr(config, "forgetting", False))
    before = score(eval_configs, loaded, start, adapter_off=starts_from_base, drift=drift)
    base = score(eval_configs, loaded, loaded.resolved.base, adapter_off=True, drift=drift) if recipe.reports_base else {}
    # --eval-every scores the suites asked for; the forgetting measures cost 157 generations more each time.
    periodic = bool(getattr(config, "eval_every", 0) and requested)
    if periodic and before:
        run.log_metrics(0, **eval_row(before))
    callbacks = [PeriodicEval(config.eval_every, requested, loaded, run)] if periodic else []

    tracker_environment(run, config.report_to)
    trainer = recipe.build_trainer(loaded, run, callbacks)
    for callback in callbacks:  # evaluations during training reach the trackers too
        callback.trackers = [c for c in trainer.callback_handler.callbacks if type(c).__module__.startswith("transformers.integrations")]
    say(recipe.describe(trainer))
    train_started = time.perf_counter()
    trained = train(trainer, run, config.resume)
    train_seconds = time.perf_counter() - train_started if trained else 0.0
    with scoring_trained(run):
        recipe.finish(loaded)
        run.save_adapter(loaded.model)
        after = score(eval_configs, loaded, str(run.path), drift=drift)
    if periodic and after:
        run.log_metrics(trainer.state.global_step, **eval_row(after))
    summary = {
        "verb": recipe.verb,
        "run": str(run.path),
        **recipe.summary(trainer, run, train_seconds),
        **cost_summary(trainer.state.global_step, train_seconds, started),
        **({"eval_base": recipe.report_scores(base)} if recipe.reports_base else {}),
        "eval_before": recipe.report_scores(before),
        "eval_after": recipe.report_scores(after),
    }
    run.write_summary(summary)
    step = trainer.state.global_step
    if is_main_process() and (not config.save_every or step % config.save_every):
        # The last step's checkpoint only guarded the scoring; a finished run is not resumed.
        shutil.rmtree(run.path / "checkpoints" / f"checkpoint-{step}", ignore_errors=True)
    return summary
