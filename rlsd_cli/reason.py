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

import json
import re
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import gather_object, is_peft_model
from datasets import Dataset
from peft.utils import set_peft_model_state_dict
from safetensors.torch import load_file
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer
from trl.rewards import get_soft_overlong_punishment
from trl.trainer.utils import add_fused_lm_head

from .chat_format import left_padding
from .configs import ReasonConfig
from .curriculum import ProblemCurriculum, concat_rollouts, groups_with_signal
from .distributed import per_process_share, world_size
from .errors import BadInputError
from .evaluate import EvalConfig
from .fsutil import atomic_write_json
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
from .model import LoadedModel, LoraSettings, load_model
from .plots import plot_panels
from .runs import Run
from .suites import get_suite
from .teachers import (
    EvalModeRollouts,
    LiveTeacher,
    SnapshotTeacher,
    copy_adapter_weights,
    shared_prefix_completion_logps,
)
from .training import RunLogger, TrainingRecipe, mean_or_none, on_policy_trainer_kwargs, run_recipe
from .verifiers import build_verifier

TEACHER_ADAPTER = "informed_teacher"
CURRICULUM_RECORD = "curriculum.json"  # in each checkpoint: the measured pass rates the next steps draw by

# The teacher sees the question, then the privileged information (the released code, iie-ycx/RLSD, inserts the
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
    "reward and accuracy": ["reward", "rewards/verifier/mean", "accuracy", "eval/math/accuracy"],
    "shares: groups whose verdicts are all alike (first draw), groups kept, completions punished as overlong": [
        "groups/zero_std_first", "groups/kept_share", "overlong/penalised"],
    "RLSD token weights w_t": ["w/mean", "w/p10", "w/p90", "w/clipped"],
    "PPO clip fraction": ["clip_fraction"],
    "entropy": ["entropy_mean"],
    "response length": ["completions/mean_length"],
    "leakage (completions citing a reference)": ["leakage"],
}
LEAKAGE = re.compile(r"reference (?:solution|answer)|the (?:given|provided) (?:solution|answer)", re.IGNORECASE)


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


def training_rows(train_file: Path, privileged: str, math_verified: bool = True) -> list[dict[str, Any]]:
    """Dataset rows: the student prompt (the `math` eval suite's prompt), the teacher prompt with the hint, and
    the fields verifiers see (answer, solution)."""

    suite = get_suite("math")
    suite.math_verified = math_verified
    items = suite.load(train_file)
    rows = []
    for item in items:
        record = item.record
        if privileged == "solution" and not record.get("solution"):
            raise BadInputError(f"{train_file}: problem {item.key} has no 'solution'; add one to every line or use "
                                "--privileged answer")
        hint = record["answer"] if privileged == "answer" else record["solution"]
        rows.append({
            "problem": len(rows),
            "level": record.get("difficulty") if isinstance(record.get("difficulty"), int) else 0,
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


class TeacherSync(TrainerCallback):
    """Re-syncs the informed teacher's frozen adapter from the student's at the start of every `every`-th step
    (before that step's rollouts are scored), as TRL's SyncRefModelCallback keeps a reference model in step. A
    fixed schedule of multiples, so a resumed run keeps it without remembering when it last synced; a resume that
    restored the teacher from its checkpoint (`synced`) keeps that teacher until the next multiple."""

    def __init__(self, peft_model, adapter_name: str, every: int):
        self.model, self.adapter_name, self.every = peft_model, adapter_name, every
        self.synced = False

    def on_step_begin(self, args, state, control, **kwargs):
        if not self.synced or state.global_step % self.every == 0:
            copy_adapter_weights(self.model, "default", self.adapter_name)
            self.synced = True


class SelfDistilledGRPOTrainer(EvalModeRollouts, GRPOTrainer):
    """GRPOTrainer whose per-token advantages are reweighted by the model shown the reference (RLSD);
    `algo="grpo"` skips the teacher (lam = 0), `algo="opsd"` trains on the reverse KL to the teacher alone."""

    returns_logprobs = True  # GRPOTrainer's _generate_single_turn returns (completion ids, log-probs)
    drop_finished_rows = True

    def __init__(self, *args, algo, teacher, lam, decay_steps, eps_w, eps_low, eps_high, dual_clip, autocast,
                 curriculum, refill_rounds=0, **kwargs):
        self.algo, self.informed_teacher = algo, teacher
        self.curriculum, self.refill_rounds = curriculum, refill_rounds
        # Dynamic sampling's filter holds on several processes too, where there is no refill: a group whose verdicts
        # are all alike trains nothing, whatever the overlong punishment's column says about its lengths.
        self.drop_groups_without_signal = refill_rounds > 0
        self.lam, self.decay_steps, self.eps_w = lam, decay_steps, eps_w
        self.clip = {"eps_low": eps_low, "eps_high": eps_high, "dual_clip": dual_clip}
        self.autocast = autocast
        self._rewards = None
        super().__init__(*args, **kwargs)
        self._score_student_with_fp32_head()
        if self.accelerator.num_processes > 1:
            # A refill would have to move rows between processes to keep whole groups on each; not done (yet).
            self.refill_rounds = 0

    def _score_student_with_fp32_head(self):
        """Under autocast, TRL's fused LM head scores the student in bf16 while the informed teacher's head runs in
        fp32 (`teachers.logps_from_hidden`), so delta = log pi_T - log pi_S took the head's rounding: mean |error|
        0.019 nats per token on the embedded model, 0.014 with both heads in fp32, where the bf16 backbone's own
        floor is 0.012 (benchmarks/reason_head_precision.py). TRL's `cast_lm_head_to_fp32` would do this, but in
        TRL 1.16 it fails on a PEFT model with tied embeddings (it looks up `model.model.embed_tokens` on the
        PeftModel). So the fused head is added again in fp32, over TRL's: a call with `fused_lm_head=True` stops at
        the outer one, and any other call passes through to the forward underneath, so sampling keeps its head.
        Without autocast the fp32 head is what TRL's already was, so it is added whatever the precision: one code
        path, which the tiny-model tests run on every CPU."""
        base = self.model.get_base_model() if is_peft_model(self.model) else self.model
        add_fused_lm_head(base, temperature=self.temperature, cast_lm_head_to_fp32=True, outputs=("log_probs", "entropy"))

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        """Trainer restores only the trained adapter; the frozen teacher snapshot (which PEFT saves beside it in the
        checkpoint) is put back too, so a resumed run scores with the teacher the uninterrupted run had until the
        next scheduled sync (not one re-synced from the resumed student)."""
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        record = Path(resume_from_checkpoint) / CURRICULUM_RECORD
        if record.is_file():
            self.curriculum.load_state(json.loads(record.read_text()))
        if self.informed_teacher is None or self.informed_teacher.kind != "snapshot":
            return
        saved = Path(resume_from_checkpoint) / self.informed_teacher.adapter_name / "adapter_model.safetensors"
        if saved.is_file():
            set_peft_model_state_dict(self.model, load_file(saved), adapter_name=self.informed_teacher.adapter_name)
            for callback in self.callback_handler.callbacks:
                if isinstance(callback, TeacherSync):
                    callback.synced = True

    def _save_rng_state(self, output_dir):
        """Beside the RNG state (and before trainer_state.json, which marks a checkpoint complete): the measured
        pass rates, without which a resumed run would draw other problems."""
        super()._save_rng_state(output_dir)
        if self.args.should_save:
            atomic_write_json(Path(output_dir) / CURRICULUM_RECORD, self.curriculum.state())

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        self._rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        self._metrics["train"]["leakage"].append(sum(bool(LEAKAGE.search(t)) for t in texts) / max(len(texts), 1))
        return self._rewards

    def _generate_and_score_completions(self, inputs):
        if self.model.training and self.curriculum.by_pass_rate:
            inputs = self._curriculum_rows(len(inputs), round_index=0)
        output, signal = self._sample_groups(inputs)
        self._metrics["train"]["accuracy"].append((self._rewards[:, 0] > 0.5).float().mean().item())
        if self._rewards.size(1) > 1:  # the overlong punishment's share of penalised completions
            self._metrics["train"]["overlong/penalised"].append((self._rewards[:, 1] < 0).float().mean().item())
        self._metrics["train"]["groups/zero_std_first"].append(1.0 - signal.float().mean().item())
        if self.model.training and self.refill_rounds > 0:
            inputs, output = self._refill(inputs, output, signal)
        if self.algo != "grpo":
            output["teacher_logps"] = self._informed_logps(inputs, output)
        return output

    def _sample_groups(self, inputs):
        """TRL's generation and rewards, with the paper's advantage; each group's verdicts (the verifier's column)
        feed the curriculum, and whether they differ (one bool per group) is returned for dynamic sampling. DAPO filters on accuracy: with the overlong
        punishment, a group all wrong still varies in length, and keeping it taught seed 1 of the embedded model to
        answer in three tokens (docs/reason.md)."""
        output = super()._generate_and_score_completions(inputs)
        # The paper's advantage (unbiased std, eps 1e-6), from the same rewards TRL computed.
        rewards = (self._rewards * self.reward_weights.to(self._rewards.device).unsqueeze(0)).nansum(dim=1)
        # The rewards are gathered from every process (a group may span them); this process keeps its rows.
        rows = output["completion_ids"].size(0)
        mine = slice(self.accelerator.process_index * rows, (self.accelerator.process_index + 1) * rows)
        verdicts = self._rewards[:, 0]  # the verifier's column, not a length penalty
        advantages = group_advantages(rewards, self.num_generations)
        signal = groups_with_signal(verdicts, self.num_generations)
        if self.drop_groups_without_signal:
            advantages = (advantages.view(-1, self.num_generations) * signal.unsqueeze(1)).view(-1)
        output["advantages"] = advantages[mine].to(output["completion_ids"].device)
        if self.model.training:
            problems = gather_object([row["problem"] for row in inputs])
            for start in range(0, len(problems), self.num_generations):
                self.curriculum.record(problems[start], verdicts[start:start + self.num_generations].tolist())
        return output, signal

    def _draw_key(self, round_index: int) -> int:
        # The step and the round within it: --dynamic-sampling is at most 15, so keys never collide.
        return self.state.global_step * 16 + round_index

    def _curriculum_rows(self, rows: int, round_index: int) -> list[dict[str, Any]]:
        """This process's share of the problems the curriculum draws for the step (every process draws the same
        global list and takes its slice, as TRL's sampler deals them)."""
        size, processes = self.num_generations, self.accelerator.num_processes
        problems = self.curriculum.draw(rows * processes // size, key=self._draw_key(round_index))
        global_rows = [self.train_dataset[i] for i in problems for _ in range(size)]
        return global_rows[self.accelerator.process_index * rows:(self.accelerator.process_index + 1) * rows]

    def _refill(self, inputs, output, signal):
        """DAPO's dynamic sampling (curriculum.py): groups with equal verdicts are dropped and problems drawn by the
        curriculum refill the step, for at most `refill_rounds` more generations."""
        size = self.num_generations
        wanted = len(inputs) // size
        parts = [(inputs, output, signal)]
        kept, rounds = int(parts[0][2].sum()), 0
        while kept < wanted and rounds < self.refill_rounds:
            rounds += 1
            problems = self.curriculum.draw(wanted - kept, key=self._draw_key(rounds))
            extra = [self.train_dataset[i] for i in problems for _ in range(size)]
            extra_output, extra_signal = self._sample_groups(extra)
            parts.append((extra, extra_output, extra_signal))
            kept += int(parts[-1][2].sum())
        generated = sum(len(part[0]) // size for part in parts)
        budget, selected = wanted, []
        for rows, out, signal in parts:  # the first `wanted` groups with signal, in the order drawn
            take = signal & (signal.cumsum(0) <= budget)
            budget -= int(take.sum())
            selected.append((rows, out, take))
        used = wanted - budget
        self._metrics["train"]["groups/kept_share"].append(used / wanted)
        self._metrics["train"]["groups/generated"].append(generated)
        self._metrics["train"]["groups/dropped"].append(generated - used)
        if used == 0:  # no group's verdicts differ: every advantage is already zero (`_sample_groups`)
            return inputs, output
        row_masks = [take.repeat_interleave(size).to(out["completion_ids"].device) for _, out, take in selected]
        merged = concat_rollouts([(out, mask) for (_, out, _), mask in zip(selected, row_masks, strict=True)],
                                 self.processing_class.pad_token_id)
        merged_inputs = [row for (rows, _, _), mask in zip(selected, row_masks, strict=True)
                         for row, keep in zip(rows, mask.tolist(), strict=True) if keep]
        return merged_inputs, merged

    def _informed_logps(self, inputs, output):
        """log pi_T(y_t) of every sampled token with the hint in the prompt: one no-grad forward."""
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
                # Masked before exp, as the release and ms-swift do: padding never reaches a weight.
                delta = (inputs["teacher_logps"] - logps.detach()) * mask
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


# ---------------------------------------------------------------- the verb


def run_reason(config: ReasonConfig) -> dict[str, Any]:
    return run_recipe(ReasonRecipe(config))


class ReasonRecipe(TrainingRecipe):
    verb = "reason"

    def prepare(self) -> None:
        config = self.config
        self.rollouts_per_process = per_process_share(config.prompts_per_step * config.num_generations,
                                                      "--prompts-per-step x --num-generations")
        self.verifier = build_verifier(config.verifier)
        self.train_file, self.test_file = data_files(config)
        self.rows = training_rows(self.train_file, config.privileged,
                                  math_verified=any(name == "math" for name, _, _ in self.verifier.parts))
        self.device_defaults = {"device": "cuda" if torch.cuda.is_available() else "cpu"}
        self.device_defaults["filled"] = config.fill_device_defaults(self.device_defaults["device"])
        if config.overlong_cache >= config.max_new_tokens:
            raise BadInputError(f"--overlong-cache {config.overlong_cache} leaves no unpunished length under "
                                f"--max-new-tokens {config.max_new_tokens}; give it fewer tokens than that")
        self.curriculum = ProblemCurriculum([row["level"] for row in self.rows], config.seed,
                                            by_pass_rate=config.curriculum == "pass-rate")

    def eval_configs(self) -> dict[str, EvalConfig]:
        config = self.config
        if self.test_file is None:
            return {}
        return {"math": EvalConfig(suite="math", model=config.model, data=self.test_file, limit=config.eval_limit,
                                   max_new_tokens=config.eval_max_new_tokens or config.max_new_tokens, quant=config.quant)}

    def load(self) -> LoadedModel:
        config = self.config
        lora = LoraSettings(r=config.lora_r, alpha=config.lora_alpha, dropout=0.0, seed=config.seed)
        loaded = load_model(config.model, quant=config.quant, lora=lora, trainable=True)
        self.teacher = None
        if config.algo != "grpo":
            if config.teacher == "sync":
                loaded.model.add_adapter(TEACHER_ADAPTER, loaded.model.peft_config["default"])
                loaded.model.set_adapter("default")
                self.teacher = SnapshotTeacher(loaded.model, TEACHER_ADAPTER)
            else:
                self.teacher = LiveTeacher(loaded.model)
        return loaded

    def record(self, loaded: LoadedModel) -> dict[str, Any]:
        refill = self.config.dynamic_sampling if world_size() == 1 else 0
        return {"data": {"train": str(self.train_file), "test": str(self.test_file) if self.test_file else None},
                "sampling": {"curriculum": self.config.curriculum, "dynamic_sampling_rounds": refill},
                "device_defaults": self.device_defaults}

    def build_trainer(self, loaded: LoadedModel, run: Run, callbacks: list):
        config, verifier = self.config, self.verifier

        def reward(prompts, completions, **columns):
            texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
            return [verifier(text, {"answer": a, "solution": s}) for text, a, s in zip(texts, columns["answer"], columns["solution"], strict=True)]

        reward.__name__ = "verifier"
        reward_funcs = [reward]  # the verifier first: its column is the accuracy and the curriculum's pass rate
        if config.overlong_cache:
            reward_funcs.append(get_soft_overlong_punishment(config.max_new_tokens, config.overlong_cache))
        args = GRPOConfig(
            **on_policy_trainer_kwargs(config, loaded, run, self.rollouts_per_process),
            num_generations=config.num_generations,
            temperature=config.temperature,
            top_k=0,
            beta=0.0,
            num_iterations=1,
            epsilon=config.eps_low,
            epsilon_high=config.eps_high,
            loss_type="dapo",
            log_completions=False,
        )
        args.include_num_input_tokens_seen = "no"
        if isinstance(self.teacher, SnapshotTeacher):
            callbacks = [*callbacks, TeacherSync(loaded.model, TEACHER_ADAPTER, config.teacher_sync_steps)]
        return SelfDistilledGRPOTrainer(
            model=loaded.model, reward_funcs=reward_funcs, args=args, train_dataset=Dataset.from_list(self.rows),
            processing_class=loaded.tokenizer, callbacks=[RunLogger(run, f"reason ({config.algo})", show=("reward", "accuracy")), *callbacks],
            algo=config.algo, teacher=self.teacher, lam=config.lam, decay_steps=config.lambda_decay_steps,
            eps_w=config.eps_w, eps_low=config.eps_low, eps_high=config.eps_high, dual_clip=config.dual_clip,
            autocast=loaded.autocast, curriculum=self.curriculum, refill_rounds=config.dynamic_sampling,
        )

    def describe(self, trainer) -> str:
        config = self.config
        return (f"reason ({config.algo}): {config.steps} steps of {config.prompts_per_step} problems x {config.num_generations} "
                f"samples from {len(self.rows)} training problems; verifier {self.verifier.spec}")

    def finish(self, loaded: LoadedModel) -> None:
        if TEACHER_ADAPTER in loaded.model.peft_config:
            loaded.model.delete_adapter(TEACHER_ADAPTER)

    def summary(self, trainer, run: Run, train_seconds: float) -> dict[str, Any]:
        config, metrics = self.config, run.metrics()
        steps = [m for m in metrics if "reward" in m]
        curve = plot_panels(metrics, TRAINING_PANELS, run.path / "training.png", f"reason {run.name} ({config.algo})")
        return {
            "algo": config.algo,
            "verifier": self.verifier.spec,
            "verifier_failures": self.verifier.failures,
            "teacher": self.teacher.describe() if self.teacher else None,
            "train_problems": len(self.rows),
            "zero_std_first": mean_or_none([m.get("groups/zero_std_first") for m in steps]),
            "kept_share": mean_or_none([m.get("groups/kept_share") for m in steps]),
            "groups_generated": sum(m.get("groups/generated", 0) for m in steps),
            "pass_rate_by_level": self.curriculum.describe(),
            # The verifier's own reward, without the overlong punishment: what the task scored.
            "reward_first": mean_or_none([m.get("rewards/verifier/mean") for m in steps[:5]]),
            "reward_last": mean_or_none([m.get("rewards/verifier/mean") for m in steps[-5:]]),
            "leakage_last": mean_or_none([m.get("leakage") for m in steps[-5:]]),
            "curve": str(curve) if curve else None,
        }

    def report_scores(self, scores: dict[str, dict]) -> dict:
        """One held-out set: its metrics alone (examples/reasoning.sh reads them so)."""
        return scores.get("math", {})
