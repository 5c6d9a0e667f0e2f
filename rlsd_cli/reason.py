"""`rlsd reason --verifier math`: RLSD (Self-Distilled RLVR, arXiv 2604.03128), with GRPO and OPSD baselines.

GRPO gives every token of a completion the same advantage A (its reward against its group's). RLSD keeps A
as the direction of the update and lets the same model, shown the reference answer, say how much each token
deserves: w_t = exp(sign(A) * delta_t), delta_t = log pi_T(y_t) - log pi_S(y_t), and
A_t = A * [(1 - lam) + lam * clip(w_t, 1 - eps_w, 1 + eps_w)] (the released code's form). lam decays to 0
(pure GRPO) over `lambda_decay_steps`. OPSD trains on the reverse KL to the informed teacher alone; it is kept
as the baseline that shows why RLSD exists (the model learns to act as if it had seen the answer).

Built on TRL's GRPOTrainer (generation, rewards, batching, checkpoints). Ours, because no library has them:
the informed-teacher pass (one extra no-grad forward through the same weights, under a frozen extra adapter that
is re-synced from the student every `teacher_sync_steps`; each problem's teacher prompt runs once for its
group), the RLSD weighting, and the loss (TRL's GRPO loss has no dual clip for negative advantages): pure
functions in `losses.py`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import env
from .console import say
from .distributed import per_process_share
from .errors import BadInputError
from .model import DEFAULT_MODEL
from .options import RolloutOptions, RunOptions

ALGOS = ("rlsd", "grpo", "opsd")
PRIVILEGED = ("answer", "solution")
TEACHER_ADAPTER = "informed_teacher"

# The teacher sees the question, then the privileged information (methods.md: the released code inserts the
# final answer as "a reference solution" and asks the model to solve the problem its own way).
PRIVILEGED_TEMPLATE = (
    "{question}\n\nHere is a reference solution: {hint}\n"
    "After understanding the reference solution, solve this problem using your own approach. "
    "Solve it step by step, then give the final answer on the last line as 'Answer: <number>'."
)
# A completion that talks about a reference it was never shown has learned the teacher's prompt (OPSD's failure).
# The panels of training.png: what a reader checks first (is reward rising, are the token weights doing anything,
# is the policy collapsing, is the answer leaking).
TRAINING_PANELS = {
    "reward and accuracy": ["reward", "accuracy", "eval/math/accuracy"],
    "RLSD token weights w_t": ["w/mean", "w/p10", "w/p90", "w/clipped"],
    "PPO clip fraction": ["clip_fraction"],
    "entropy": ["entropy_mean"],
    "response length": ["completions/mean_length"],
    "leakage (completions citing a reference)": ["leakage"],
}
LEAKAGE = re.compile(r"reference (?:solution|answer)|the (?:given|provided) (?:solution|answer)", re.IGNORECASE)


@dataclass
class ReasonConfig(RunOptions, RolloutOptions):
    data: Path  # a folder with train.jsonl (and test.jsonl), or one JSONL file of training problems
    model: str = DEFAULT_MODEL
    verifier: list[str] = field(default_factory=lambda: ["math"])
    algo: str = "rlsd"
    privileged: str = "answer"
    teacher: str = "sync"  # sync: frozen copy of the adapter, re-synced every teacher_sync_steps | live
    teacher_sync_steps: int = 20
    num_generations: int = 8
    prompts_per_step: int = 2
    max_new_tokens: int = 128
    temperature: float = 1.0  # rollouts (the paper: 1.0); the teacher scores at the same temperature
    steps: int = 40
    lr: float = 2e-4
    lam: float = 0.5
    lambda_decay_steps: int = 60
    eps_w: float = 0.2
    eps_low: float = 0.2
    eps_high: float = 0.28
    dual_clip: float = 3.0
    lora_r: int = 16
    lora_alpha: int = 32
    quant: str = "auto"
    test_data: Path | None = None  # default: test.jsonl beside the training data
    eval_limit: int | None = 100
    eval_max_new_tokens: int | None = None  # default: max_new_tokens
    eval_every: int = 0

    def __post_init__(self):
        RunOptions.__post_init__(self)
        RolloutOptions.__post_init__(self)
        self.data = Path(self.data)
        if isinstance(self.verifier, str):
            self.verifier = [self.verifier]
        if self.algo not in ALGOS:
            raise BadInputError(f"--algo {self.algo!r}: choose one of {', '.join(ALGOS)}")
        if self.privileged not in PRIVILEGED:
            raise BadInputError(f"--privileged {self.privileged!r}: choose answer or solution")
        if self.teacher not in ("sync", "live"):
            raise BadInputError(f"--teacher {self.teacher!r}: choose sync (re-synced every --teacher-sync-steps) or live")
        for name in ("num_generations", "prompts_per_step", "max_new_tokens", "steps", "teacher_sync_steps", "lora_r"):
            if getattr(self, name) <= 0:
                raise BadInputError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        if self.num_generations < 2:
            raise BadInputError("--num-generations must be at least 2: the advantage compares completions of one prompt")
        if self.lr <= 0:
            raise BadInputError(f"--lr must be positive, got {self.lr}")
        if self.temperature <= 0:
            raise BadInputError(f"--temperature must be positive (rollouts are sampled), got {self.temperature}")
        if not 0.0 <= self.lam <= 1.0:
            raise BadInputError(f"--lambda must be in [0, 1], got {self.lam}")
        if not 0.0 <= self.eps_w < 1.0:
            raise BadInputError(f"--eps-w must be in [0, 1), got {self.eps_w}")
        if self.eval_every < 0:
            raise BadInputError(f"--eval-every must be 0 (off) or positive, got {self.eval_every}")
        for name in ("eval_limit", "eval_max_new_tokens"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise BadInputError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        if self.lambda_decay_steps < 0:
            raise BadInputError(f"--lambda-decay-steps must be 0 (constant lambda) or positive, got {self.lambda_decay_steps}")


# ---------------------------------------------------------------- data


def data_files(config: ReasonConfig) -> tuple[Path, Path | None]:
    """(train file, test file or None) from --data (a folder or a file) and --test-data."""
    data = config.data
    if data.is_dir():
        train = data / "train.jsonl"
        if not train.is_file():
            raise BadInputError(f"{data}: no train.jsonl in this folder; make one with `rlsd data math --out {data}` "
                                "or pass a JSONL file")
        test = data / "test.jsonl"
        test = test if test.is_file() else None
    elif data.is_file():
        train, test = data, None
    else:
        raise BadInputError(f"--data {data}: no such file or folder")
    if config.test_data is not None:
        if not Path(config.test_data).is_file():
            raise BadInputError(f"--test-data {config.test_data}: no such file")
        test = Path(config.test_data)
    return train, test


def training_rows(train_file: Path, privileged: str) -> list[dict[str, Any]]:
    """Dataset rows: the student prompt (the `math` eval suite's prompt), the teacher prompt with the hint, and
    the fields verifiers see (answer, solution)."""
    from .suites import get_suite

    items = get_suite("math").load(train_file)
    rows = []
    for item in items:
        record = item.record
        if privileged == "solution" and not record.get("solution"):
            raise BadInputError(f"{train_file}: problem {item.key} has no 'solution'; add one to every line or use "
                                "--privileged answer")
        hint = record["answer"] if privileged == "answer" else record["solution"]
        rows.append({
            "prompt": item.messages,
            "teacher_prompt": teacher_messages(record["question"], hint),
            "answer": record["answer"],
            "solution": record.get("solution") or "",
        })
    if not rows:
        raise BadInputError(f"{train_file}: no problems")
    return rows


def teacher_messages(question: str, hint: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": PRIVILEGED_TEMPLATE.format(question=question.strip(), hint=hint)}]


# ---------------------------------------------------------------- trainer


def _trainer_class():
    import torch
    from trl import GRPOTrainer

    from .chat_format import left_padding
    from .losses import (
        clipped_policy_loss,
        group_advantages,
        linear_decay,
        masked_mean,
        on_policy_distillation_loss,
        rlsd_advantages,
        rlsd_token_weights,
        sampled_reverse_kl,
    )
    from .teachers import EvalModeRollouts, copy_adapter_weights, shared_prefix_completion_logps

    class SelfDistilledGRPOTrainer(EvalModeRollouts, GRPOTrainer):
        """GRPOTrainer whose per-token advantages are reweighted by the model shown the reference (RLSD);
        `algo="grpo"` skips the teacher (lam = 0), `algo="opsd"` trains on the reverse KL to the teacher alone."""

        def __init__(self, *args, algo, teacher, sync_steps, lam, decay_steps, eps_w, eps_low, eps_high, dual_clip,
                     autocast, **kwargs):
            self.algo, self.informed_teacher, self.sync_steps = algo, teacher, sync_steps
            self.lam, self.decay_steps, self.eps_w = lam, decay_steps, eps_w
            self.clip = {"eps_low": eps_low, "eps_high": eps_high, "dual_clip": dual_clip}
            self.autocast = autocast
            self._teacher_synced = False  # once synced, again at every multiple of sync_steps
            self._rewards = None
            super().__init__(*args, **kwargs)


        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            """Trainer restores only the trained adapter; the frozen teacher snapshot (which PEFT saves beside it
            in the checkpoint) is put back too, so a resumed run scores with the teacher the uninterrupted run had
            until the next scheduled sync (not one re-synced from the resumed student)."""
            super()._load_from_checkpoint(resume_from_checkpoint, model)
            if self.informed_teacher is None or self.informed_teacher.kind != "snapshot":
                return
            from peft.utils import set_peft_model_state_dict
            from safetensors.torch import load_file

            saved = Path(resume_from_checkpoint) / self.informed_teacher.adapter_name / "adapter_model.safetensors"
            if saved.is_file():
                set_peft_model_state_dict(self.model, load_file(saved), adapter_name=self.informed_teacher.adapter_name)
                self._teacher_synced = True

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            self._rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
            self._metrics["train"]["leakage"].append(sum(bool(LEAKAGE.search(t)) for t in texts) / max(len(texts), 1))
            return self._rewards

        def _generate_and_score_completions(self, inputs):
            output = super()._generate_and_score_completions(inputs)
            # The paper's advantage (unbiased std, eps 1e-6), from the same rewards TRL computed.
            rewards = (self._rewards * self.reward_weights.to(self._rewards.device).unsqueeze(0)).nansum(dim=1)
            # The rewards are gathered from every process (a group may span them); this process keeps its rows.
            rows = output["completion_ids"].size(0)
            mine = slice(self.accelerator.process_index * rows, (self.accelerator.process_index + 1) * rows)
            output["advantages"] = group_advantages(rewards, self.num_generations)[mine].to(output["completion_ids"].device)
            self._metrics["train"]["accuracy"].append((rewards > 0.5).float().mean().item())
            if self.algo != "grpo":
                output["teacher_logps"] = self._informed_logps(inputs, output)
            return output

        def _informed_logps(self, inputs, output):
            """log pi_T(y_t) of every sampled token with the hint in the prompt: one no-grad forward."""
            if self.informed_teacher.kind == "snapshot":
                step = self.state.global_step
                # Rollouts are made once per step (one generation per step, one iteration), so a fixed schedule
                # of multiples says when: a resumed run keeps it without remembering when it last synced.
                if not self._teacher_synced or step % self.sync_steps == 0:
                    copy_adapter_weights(self.model, "default", self.informed_teacher.adapter_name)
                    self._teacher_synced = True
            with left_padding(self.processing_class) as tokenizer:
                encoded = tokenizer.apply_chat_template([x["teacher_prompt"] for x in inputs], add_generation_prompt=True,
                                                        tokenize=True, padding=True, return_dict=True, return_tensors="pt")
            completion_ids = output["completion_ids"]
            with self.informed_teacher.scoring() as model:
                return shared_prefix_completion_logps(
                    model, encoded["input_ids"].to(completion_ids.device), encoded["attention_mask"].to(completion_ids.device),
                    completion_ids, output["completion_mask"], self.autocast(), temperature=self.temperature)

        def _compute_loss(self, model, inputs):
            prompt_ids, completion_ids = inputs["prompt_ids"], inputs["completion_ids"]
            input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
            attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
            mask = inputs["completion_mask"].float()
            logps, entropies, _ = self._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, completion_ids.size(1), compute_entropy=True)
            old = inputs.get("old_per_token_logps")
            old = logps.detach() if old is None else old
            advantages = inputs["advantages"]
            # TRL counts the step's completion tokens over all processes (`num_items_in_batch`); each process divides
            # by its share of them, so DDP's average is the one-process token mean (TRL's own "dapo" normalizer).
            normalizer = inputs["num_items_in_batch"].clamp(min=1.0) / self.accelerator.num_processes
            logged = {}
            if self.algo == "opsd":
                loss = on_policy_distillation_loss(logps, old, inputs["teacher_logps"], mask, normalizer)
                logged["reverse_kl"] = masked_mean(sampled_reverse_kl(logps.detach(), inputs["teacher_logps"]), mask).item()
            else:
                lam = 0.0 if self.algo == "grpo" else linear_decay(self.state.global_step, self.lam, self.decay_steps)
                if self.algo == "rlsd":
                    delta = inputs["teacher_logps"] - logps.detach()
                    token_advantages = rlsd_advantages(advantages, delta, lam, self.eps_w)
                    weights = rlsd_token_weights(delta, advantages)[mask.bool()]
                    if not weights.numel():  # NaN: left out of the logged mean (every process still joins the gather)
                        weights = torch.full((1,), float("nan"))
                    logged["w/mean"] = weights.mean().item()
                    logged["w/p10"] = weights.quantile(0.1).item()
                    logged["w/p90"] = weights.quantile(0.9).item()
                    logged["w/clipped"] = ((weights < 1 - self.eps_w) | (weights > 1 + self.eps_w)).float().mean().item()
                    logged["delta/mean"] = masked_mean(delta, mask).item()
                else:
                    token_advantages = advantages.unsqueeze(-1).expand_as(logps)
                self._metrics["train"]["lambda"].append(lam)
                loss, clip_fraction = clipped_policy_loss(logps, old, token_advantages, mask, **self.clip, normalizer=normalizer)
                logged["clip_fraction"] = clip_fraction.item()
            logged["entropy_mean"] = masked_mean(entropies.detach(), mask).item()
            self._log_means(logged)
            return loss

        def _log_means(self, values: dict[str, float]):
            """Log the mean of every process's value, in one gather: TRL logs rank 0's list as given (its own
            metrics are gathered first). Every process logs the same keys."""
            if self.accelerator.num_processes > 1:
                local = torch.tensor([list(values.values())], dtype=torch.float64, device=self.accelerator.device)
                values = dict(zip(values, self.accelerator.gather(local).nanmean(0).tolist(), strict=True))
            for key, value in values.items():
                self._metrics["train"][key].append(value)

    return SelfDistilledGRPOTrainer


# ---------------------------------------------------------------- pipeline



def run_reason(config: ReasonConfig) -> dict[str, Any]:
    env.require_supported_trl()
    from datasets import Dataset
    from trl import GRPOConfig

    from .evaluate import EvalConfig, check_eval_data, run_eval
    from .model import LoadedModel, LoraSettings, load_model, resolve_model
    from .plots import plot_panels
    from .runs import Run
    from .teachers import LiveTeacher, SnapshotTeacher
    from .training import (
        PeriodicEval,
        RunLogger,
        common_trainer_kwargs,
        config_record,
        cost_summary,
        mean_or_none,
        train,
    )
    from .verifiers import build_verifier

    started = time.perf_counter()
    rollouts_per_process = per_process_share(config.prompts_per_step * config.num_generations,
                                             "--prompts-per-step x --num-generations")
    verifier = build_verifier(config.verifier)
    train_file, test_file = data_files(config)
    rows = training_rows(train_file, config.privileged)
    if test_file is not None:
        check_eval_data([EvalConfig(suite="math", model=config.model, data=test_file)])

    lora = LoraSettings(r=config.lora_r, alpha=config.lora_alpha, dropout=0.0, seed=config.seed)
    loaded = load_model(config.model, quant=config.quant, lora=lora, trainable=True)
    teacher = None
    if config.algo != "grpo":
        if config.teacher == "sync":
            loaded.model.add_adapter(TEACHER_ADAPTER, loaded.model.peft_config["default"])
            loaded.model.set_adapter("default")
            teacher = SnapshotTeacher(loaded.model, TEACHER_ADAPTER)
        else:
            teacher = LiveTeacher(loaded.model)

    run = Run.create(
        "reason", name=config.name, root=config.runs_dir, force=config.force, resume=config.resume,
        record={"base_model": loaded.record(), "config": config_record(config), "parent": None,
                "data": {"train": str(train_file), "test": str(test_file) if test_file else None}},
    )
    say(f"run folder: {run.path}")

    eval_config = None
    before: dict[str, Any] = {}
    if test_file is not None:
        eval_config = EvalConfig(suite="math", model=config.model, data=test_file, limit=config.eval_limit,
                                 max_new_tokens=config.eval_max_new_tokens or config.max_new_tokens, quant=config.quant)
        # Scored as loaded: a fresh adapter (lora_B = 0) is exactly the base; a run's adapter is that run.
        before = run_eval(eval_config, loaded=loaded)["metrics"]
        if config.eval_every:
            run.log_metrics(0, **{f"eval/math/{k}": v for k, v in before.items()})

    def reward(prompts, completions, **columns):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [verifier(text, {"answer": a, "solution": s}) for text, a, s in zip(texts, columns["answer"], columns["solution"], strict=True)]

    reward.__name__ = "verifier"
    args = GRPOConfig(
        **common_trainer_kwargs(loaded.precision, run, config.seed, config.save_every, checkpointing=True),
        per_device_train_batch_size=rollouts_per_process,
        **config.generation_kwargs(),
        gradient_accumulation_steps=1,
        num_generations=config.num_generations,
        learning_rate=config.lr,
        max_steps=config.steps,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_completion_length=config.max_new_tokens,
        temperature=config.temperature,
        top_k=0,
        top_p=1.0,
        beta=0.0,
        num_iterations=1,
        epsilon=config.eps_low,
        epsilon_high=config.eps_high,
        loss_type="dapo",
        disable_dropout=True,
        remove_unused_columns=False,
        log_completions=False,
    )
    args.include_num_input_tokens_seen = "no"
    callbacks = [RunLogger(run, f"reason ({config.algo})", show=("reward", "accuracy"))]
    if config.eval_every and eval_config is not None:
        callbacks.append(PeriodicEval(config.eval_every, {"math": eval_config}, loaded, run))
    dataset = Dataset.from_list(rows)
    trainer = _trainer_class()(
        model=loaded.model, reward_funcs=[reward], args=args, train_dataset=dataset, processing_class=loaded.tokenizer,
        callbacks=callbacks, algo=config.algo, teacher=teacher, sync_steps=config.teacher_sync_steps, lam=config.lam,
        decay_steps=config.lambda_decay_steps, eps_w=config.eps_w, eps_low=config.eps_low, eps_high=config.eps_high,
        dual_clip=config.dual_clip, autocast=loaded.autocast,
    )
    say(f"reason ({config.algo}): {config.steps} steps of {config.prompts_per_step} problems x {config.num_generations} "
        f"samples from {len(rows)} training problems; verifier {verifier.spec}")
    train_started = time.perf_counter()
    train(trainer, run, config.resume)
    train_seconds = time.perf_counter() - train_started
    if TEACHER_ADAPTER in loaded.model.peft_config:
        loaded.model.delete_adapter(TEACHER_ADAPTER)
    run.save_adapter(loaded.model)

    after: dict[str, Any] = {}
    if eval_config is not None:
        eval_config.model = str(run.path)
        run_view = LoadedModel(model=loaded.model, tokenizer=loaded.tokenizer, resolved=resolve_model(str(run.path)),
                               precision=loaded.precision)
        after = run_eval(eval_config, loaded=run_view)["metrics"]
        if config.eval_every:
            run.log_metrics(trainer.state.global_step, **{f"eval/math/{k}": v for k, v in after.items()})

    metrics = run.metrics()
    steps = [m for m in metrics if "reward" in m]
    curve = plot_panels(metrics, TRAINING_PANELS, run.path / "training.png", f"reason {run.name} ({config.algo})")
    summary = {
        "verb": "reason",
        "run": str(run.path),
        "algo": config.algo,
        "verifier": verifier.spec,
        "verifier_failures": verifier.failures,
        "teacher": teacher.describe() if teacher else None,
        "train_problems": len(rows),
        **cost_summary(trainer.state.global_step, train_seconds, started),
        "reward_first": mean_or_none([m.get("reward") for m in steps[:5]]),
        "reward_last": mean_or_none([m.get("reward") for m in steps[-5:]]),
        "leakage_last": mean_or_none([m.get("leakage") for m in steps[-5:]]),
        "curve": str(curve) if curve else None,
        "eval_before": before,
        "eval_after": after,
    }
    run.write_summary(summary)
    return summary

