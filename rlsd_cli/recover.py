"""`rlsd recover --from runs/<sft-run>`: undo forgetting with on-policy distillation from the original model.

The student (the run's base + its adapter) samples answers to general prompts; the teacher scores every
sampled token; the per-token reverse KL is the training signal (Agarwal et al. 2024; the Thinking Machines
recipe: sampled-token estimator as a per-token advantage, importance-sampled policy gradient). The default
teacher `base` is the student's own weights with the adapter switched off: no second copy in memory.

Distilling toward the base alone pulls the whole adapter back, the new knowledge included (measured: document
QA 8 -> 0 of 40 in the prototype). So by default a `--keep-mix` fraction of every batch are questions built
from the sft run's documents, distilled on-policy from a frozen snapshot of the sft adapter: the base teaches
general behaviour, the snapshot teaches the documents.

Built on TRL's DistillationTrainer (its on-policy generation, batching, logging, checkpoints); the loss,
the teachers and the per-row teacher routing are ours (`losses.py`, `teachers.py`).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from trl import DistillationConfig, DistillationTrainer
from trl.trainer.utils import RepeatSampler

from .chat_format import chat_example
from .configs import RecoverConfig, SFTConfig, default_of
from .console import say
from .distributed import per_process_share
from .errors import BadInputError
from .evaluate import EvalConfig
from .losses import chunked_reverse_kl, on_policy_distillation_loss, sampled_reverse_kl, self_sft_loss
from .model import LoadedModel, load_model, resolve_model, weights_hash
from .plots import plot_curves
from .replay import builtin_instructions, builtin_set_files, read_prompts, replay_conversations
from .run_record import RUN_RECORD
from .runs import Run
from .teachers import (
    AdapterOffTeacher,
    EvalModeRollouts,
    ModelTeacher,
    SnapshotTeacher,
    causal_lm,
    completion_hidden_states,
    completion_logps,
    shared_prefix_completion_logps,
)
from .training import (
    RunLogger,
    TrainingRecipe,
    mean_or_none,
    on_policy_trainer_kwargs,
    qa_eval_configs,
    recorded_qa_files,
    run_recipe,
)

KNOWLEDGE_PROMPTS = "knowledge_prompts.jsonl"
SNAPSHOT_ADAPTER = "sft_snapshot"
# Token means logged each step, added up over all processes before they are logged.
LOGGED_KEYS = ("reverse_kl", "logp/student", "logp/teacher", "reverse_kl/keep", "reverse_kl/general")
# The base's cached answers are as long as sft's replay made them, so sft's cache serves recover too.
BASE_ANSWER_TOKENS = default_of(SFTConfig.__dataclass_fields__["replay_max_new_tokens"])


# ---------------------------------------------------------------- prompts


def step_prompts(general_sets: list[list], keep: list, steps: int, per_step: int, keep_mix: float,
                 seed: int) -> list[dict[str, Any]]:
    """The prompts of every step in training order: round(per_step * keep_mix) knowledge prompts and the
    rest general ones per step, each pool walked in a seeded shuffled order and reshuffled when used up.
    General draws take the sets in turn, so sets of different sizes weigh alike and no prompt repeats
    before its own set is used up.

    The order is fixed before training (no sampler shuffle), so a resumed run sees the same prompts.
    """
    n_keep = round(per_step * keep_mix) if keep else 0
    if keep_mix > 0 and keep and n_keep == 0:
        n_keep = 1
    rng = random.Random(seed)
    queues: dict[Any, list] = {}
    general_drawn = 0

    def draw(source: list, key: Any) -> Any:
        queue = queues.setdefault(key, [])
        if not queue:
            queue.extend(rng.sample(source, len(source)))
        return queue.pop()

    rows = []
    for _ in range(steps):
        for kind in ["keep"] * n_keep + ["general"] * (per_step - n_keep):
            if kind == "keep":
                prompt = draw(keep, "keep")
            else:
                which = general_drawn % len(general_sets)
                prompt, general_drawn = draw(general_sets[which], which), general_drawn + 1
            rows.append({"prompt": prompt, "kind": kind})
    return rows


def kind_shares(is_keep, keep_mix: float, step_tokens) -> list[tuple[str, float, Any, Any]]:
    """(kind, share, row selector, normalizer) for each prompt kind with tokens in the step; shares sum to 1.

    Each kind's loss is its own token mean, weighted by `keep_mix`: document answers are short, so one token
    mean over the whole batch would give the general prompts most of the gradient whatever the mix.
    `step_tokens` holds the step's (keep, general) token counts over all processes: a process with no prompt of
    one kind still weighs the other by its share of the step, and divides by the step's count, not its own.
    """
    kinds = [("keep", keep_mix, is_keep, step_tokens[0]), ("general", 1.0 - keep_mix, ~is_keep, step_tokens[1])]
    present = [(kind, share, rows, tokens) for kind, share, rows, tokens in kinds if bool(tokens > 0) and share > 0]
    total = sum(share for _, share, _, _ in present) or 1.0
    return [(kind, share / total, rows, tokens) for kind, share, rows, tokens in present]


def knowledge_path(run_dir: Path, override: Path | None) -> Path:
    path = override or run_dir / KNOWLEDGE_PROMPTS
    if not path.is_file():
        raise BadInputError(
            f"{path}: no knowledge prompts (runs made by `rlsd sft` write them); pass --keep-prompts FILE.jsonl "
            "with questions about the documents, or --keep-mix 0"
        )
    return path


def knowledge_prompts(run_dir: Path, override: Path | None) -> list[list[dict[str, str]]]:
    return read_prompts(knowledge_path(run_dir, override))


def knowledge_conversations(run_dir: Path, override: Path | None) -> list[tuple[list[dict[str, str]], int]]:
    """Question -> answer conversations for the supervised anchor (`prompt` + `answer` per line), each with the
    round its pair was made in (1 when the file does not say: a user's file, or a run made before rounds)."""
    from .suites.base import read_jsonl

    path = knowledge_path(run_dir, override)
    conversations = []
    for number, record in read_jsonl(path):
        question, answer = record.get("prompt"), record.get("answer")
        if not (isinstance(question, str) and isinstance(answer, str) and question.strip() and answer.strip()):
            raise BadInputError(f"{path}:{number}: --keep-with sft needs 'prompt' and 'answer' on every line "
                                "(or use --keep-with distill, which needs only 'prompt')")
        made_in = record.get("round", 1)
        conversations.append(([{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
                              made_in if isinstance(made_in, int) and not isinstance(made_in, bool) else 1))
    return conversations


def anchor_batches(examples: list[dict[str, Any]], per_step: int, steps: int, seed: int,
                   newest: list[dict[str, Any]] = (), newest_share: float = 0.0) -> list[list[dict[str, Any]]]:
    """The supervised anchor's examples for each step: each pool walked in seeded shuffled order, reshuffled when
    used up. `newest_share` of every step's examples come from `newest` (the newest round's pairs): after a
    continuing round they are a small part of the knowledge (28 of 320 in the example's second round), and an anchor
    drawn from the whole pool let distillation from the base erase them (docs/continual.md)."""
    rng = random.Random(seed)
    if newest_share == 0 or not examples:  # one pool
        examples, newest = list(examples) + list(newest), []
    pools = [(list(newest), []), (list(examples), [])]
    from_newest = round(per_step * newest_share) if newest else 0
    batches = []
    for _ in range(steps):
        batch = []
        for index in range(per_step):
            pool, queue = pools[0] if index < from_newest else pools[1]
            if not queue:
                queue.extend(rng.sample(pool, len(pool)))
            batch.append(queue.pop())
        batches.append(batch)
    return batches


def general_prompts(spec: str) -> tuple[list[list[list[dict[str, str]]]], str]:
    """Prompt sets from a JSONL file (one set), or built-in sets by name joined with "+" (a file of that name
    wins). `step_prompts` draws the sets in turn: a user who names two sets asks for both kinds, whatever size each
    file happens to have."""
    if Path(spec).is_file():
        return [read_prompts(Path(spec))], str(spec)
    files = builtin_set_files(spec, f"--prompts {spec}: no such file, and", "give one JSONL file, or built-in sets")
    sets = [[[{"role": "user", "content": item["prompt"]}] for item in builtin_instructions(file)] for file in files]
    sizes = " + ".join(str(len(prompts)) for prompts in sets)
    return sets, f"built-in {spec} instructions ({sizes}{', drawn in turn' if len(sets) > 1 else ''})"


def check_trained_adapter(peft_model, run_dir: Path) -> None:
    """A fresh LoRA adapter (B = 0) is the base model: distilling it toward the base has zero loss."""
    import torch

    lora_b = [p for n, p in peft_model.named_parameters() if "lora_B" in n]
    if not lora_b or all(torch.count_nonzero(p).item() == 0 for p in lora_b):
        raise BadInputError(
            f"{run_dir}: its adapter is untrained (all LoRA B weights are zero), so the student equals the base "
            "and the distillation loss is exactly zero; pass a run trained by `rlsd sft`"
        )


# ---------------------------------------------------------------- trainer


class OnPolicyDistillationTrainer(EvalModeRollouts, DistillationTrainer):
    """TRL's DistillationTrainer with several samples per prompt, one teacher per prompt kind, the sampled-token
    reverse-KL policy gradient or the full-vocabulary reverse KL, the supervised anchor on the sft run's Q/A pairs,
    and the self-SFT baseline. TRL's generation, batching, logging and checkpoints are kept."""

    def __init__(self, *args, teachers, method, divergence, samples_per_prompt, keep_mix, anchor, autocast,
                 base_answers=None, **kwargs):
        self.teachers = teachers
        self.keep_mix = keep_mix
        self.anchor = anchor  # per-step supervised batches of the sft run's Q/A pairs, or None
        self.base_answers = base_answers  # per-step batches of the base's own answers, or None
        self.method = method
        self.divergence = divergence
        self.samples_per_prompt = samples_per_prompt
        self.autocast = autocast
        super().__init__(*args, teacher_model=None, **kwargs)

    def _get_train_sampler(self, dataset=None):
        dataset = dataset if dataset is not None else self.train_dataset
        generation_batch = self.args.per_device_train_batch_size * self.args.gradient_accumulation_steps
        return RepeatSampler(
            data_source=dataset,
            mini_repeat_count=self.samples_per_prompt,
            batch_size=generation_batch // self.samples_per_prompt,
            repeat_count=self.args.gradient_accumulation_steps,
            shuffle=False,
            seed=self.args.seed,
        )

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        kinds = [x.get("kind", "general") for x in inputs]
        device = output["completion_ids"].device
        teacher_logps = torch.zeros(output["completion_ids"].shape, dtype=torch.float32, device=device)
        is_keep = torch.tensor([k == "keep" for k in kinds], device=device)
        if self.divergence == "sampled":  # the full divergence scores the teacher inside the loss instead
            for kind, teacher in self.teachers.items():
                rows = [i for i, k in enumerate(kinds) if k == kind]
                if rows:
                    with teacher.scoring() as model:
                        teacher_logps[rows] = shared_prefix_completion_logps(
                            model, output["prompt_ids"][rows], output["prompt_mask"][rows],
                            output["completion_ids"][rows], output["completion_mask"][rows], self.autocast())
        output["teacher_logps"] = teacher_logps
        output["is_keep"] = is_keep
        # The step's token count per kind over all processes, as scalars (TRL shuffles and splits the batch's
        # rows, and passes scalars through). Counted here, outside the DDP-wrapped forward where a collective
        # could hang.
        mask = output["completion_mask"].float()
        local = torch.stack([(mask * is_keep.unsqueeze(-1)).sum(), (mask * (~is_keep).unsqueeze(-1)).sum()])
        output["keep_tokens"], output["general_tokens"] = self.accelerator.gather(local.unsqueeze(0)).sum(0).unbind()
        return output

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        self._reduce_logged_sums()
        return result

    def _compute_loss(self, unwrapped_student, inputs, num_items_in_batch):
        """The step's loss: the distillation loss (one per divergence), mixed with the supervised anchor."""
        input_ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
        attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        # Each process divides by its share of the step's tokens: DDP averages the processes' gradients, so
        # N processes give exactly the gradient one process gives on the whole step.
        shares = [(kind, share, rows, tokens / self.accelerator.num_processes) for kind, share, rows, tokens
                  in kind_shares(inputs["is_keep"], self.keep_mix, (inputs["keep_tokens"], inputs["general_tokens"]))]
        if self.base_answers is not None:  # the general prompts' part: their samples and the base's answers alike
            general = sum(share for kind, share, _, _ in shares if kind == "general")
            shares = [(kind, share * 0.5 if kind == "general" else share, rows, tokens)
                      for kind, share, rows, tokens in shares]
        loss_of = self._full_divergence_loss if self.divergence == "full" else self._sampled_token_loss
        loss, entropy_sum, valid = loss_of(unwrapped_student, shares, input_ids, attention_mask, inputs)
        if self.base_answers is not None:
            loss = loss + 0.5 * general * self._base_answers_loss(unwrapped_student)
        if self.anchor is not None:
            loss = (1.0 - self.keep_mix) * loss + self.keep_mix * self._anchor_loss(unwrapped_student)
        return loss, entropy_sum, valid

    def _sampled_token_loss(self, student, shares, input_ids, attention_mask, inputs):
        """The per-token estimator as an advantage (or, for `sft-self`, the NLL of the samples), per prompt kind."""
        mask = inputs["completion_mask"].float()
        student_logps, entropy = completion_logps(student, input_ids, attention_mask, inputs["completion_ids"].size(1),
                                                  self.autocast(), with_entropy=True)
        teacher_logps = inputs["teacher_logps"]
        loss = 0.0
        for _, share, rows, normalizer in shares:
            part = mask * rows.unsqueeze(-1)
            if self.method == "sft-self":
                loss = loss + share * self_sft_loss(student_logps, part, normalizer)
            else:
                loss = loss + share * on_policy_distillation_loss(student_logps, student_logps.detach(), teacher_logps, part, normalizer)
        kl = sampled_reverse_kl(student_logps.detach(), teacher_logps)
        is_keep = inputs["is_keep"].unsqueeze(-1)
        self._add_logged_sums({key: ((values * weight).sum(), weight.sum()) for key, (values, weight) in {
            "reverse_kl": (kl, mask), "logp/student": (student_logps.detach(), mask), "logp/teacher": (teacher_logps, mask),
            "reverse_kl/keep": (kl, mask * is_keep), "reverse_kl/general": (kl, mask * ~is_keep),
        }.items()})
        return loss, (entropy * mask).sum(), mask.sum()

    def _full_divergence_loss(self, student, shares, input_ids, attention_mask, inputs):
        """The full-vocabulary reverse KL to each kind's teacher, from both models' final hidden states."""
        length = inputs["completion_ids"].size(1)
        student_hidden = completion_hidden_states(student, input_ids, attention_mask, length, self.autocast())
        head = causal_lm(student).get_output_embeddings()
        loss = entropy_sum = valid = 0
        logged = {}
        for kind, share, selected, normalizer in shares:
            rows = selected.nonzero().flatten().tolist()
            if not rows:  # this kind's prompts all went to other processes
                continue
            with self.teachers[kind].scoring() as teacher:
                teacher_hidden = completion_hidden_states(teacher, input_ids[rows], attention_mask[rows], length, self.autocast())
                teacher_head = causal_lm(teacher).get_output_embeddings()
            part, part_entropy, part_valid = chunked_reverse_kl(
                student_hidden[rows].float(), teacher_hidden.float(), head.weight.float(), teacher_head.weight.float(),
                inputs["completion_mask"][rows], normalizer,
            )  # this process's sum over the kind's tokens / its share of the step's
            loss, entropy_sum, valid = loss + share * part, entropy_sum + part_entropy, valid + part_valid
            logged[f"reverse_kl/{kind}"] = (part.detach() * normalizer, part_valid)
        sums = [logged[key] for key in ("reverse_kl/keep", "reverse_kl/general") if key in logged]
        if sums:
            logged["reverse_kl"] = (sum(total for total, _ in sums), sum(count for _, count in sums))
        self._add_logged_sums(logged)
        return loss, entropy_sum, valid

    def _padded(self, batch):
        """(ids, attention, answer-token mask) of a step's teacher-forced examples, padded on the right."""
        width = max(len(e["input_ids"]) for e in batch)
        pad = self.processing_class.pad_token_id
        ids = torch.tensor([e["input_ids"] + [pad] * (width - len(e["input_ids"])) for e in batch])
        attention = torch.tensor([[1] * len(e["input_ids"]) + [0] * (width - len(e["input_ids"])) for e in batch])
        targets = torch.tensor([e["assistant_masks"] + [0] * (width - len(e["input_ids"])) for e in batch])
        return tuple(t.to(self.accelerator.device) for t in (ids, attention, targets))

    def _step_batch(self, batches):
        return batches[min(self.state.global_step, len(batches) - 1)]

    def _base_answers_loss(self, student):
        """The reverse KL to the base on this step's base answers (`teacher_forced_kl`). On-policy samples reach a
        few prompts per step at the cost of generation; these reach many for two forward passes. TRL's GKD mixes
        the two kinds of sequence by a coin flip per batch (`lmbda`); its DistillationTrainer, which recover
        extends, samples only. Every process takes the same batch."""
        ids, attention, targets = self._padded(self._step_batch(self.base_answers))
        kl = teacher_forced_kl(student, self.teachers["general"], ids, attention, targets, self.autocast())
        self._metrics["train"]["base_answers/kl"].append(kl.item())
        return kl

    def _anchor_loss(self, student):
        """Token-mean NLL of this step's sft Q/A answers (teacher-forced: no sampling needed). Every process
        takes the same batch, so the averaged gradient is the one-process gradient."""
        ids, attention, targets = self._padded(self._step_batch(self.anchor))
        width = ids.size(1)
        logps, _ = completion_logps(student, ids, attention, width - 1, self.autocast())
        nll = self_sft_loss(logps, targets[:, 1:].float(), targets[:, 1:].float().sum().clamp(min=1.0))
        self._metrics["train"]["keep/nll"].append(nll.item())
        return nll

    def _add_logged_sums(self, sums: dict):
        """Keep this micro-batch's (sum, count) per metric (absent: none); `_reduce_logged_sums` adds them over
        processes."""
        self._logged_sums = {key: tuple(float(v) for v in sums.get(key, (0.0, 0.0))) for key in LOGGED_KEYS}

    def _reduce_logged_sums(self):
        sums = getattr(self, "_logged_sums", None)
        if not sums:
            return
        local = torch.tensor([sums[key] for key in LOGGED_KEYS], dtype=torch.float64, device=self.accelerator.device)
        total = self.accelerator.gather(local.unsqueeze(0)).sum(0)
        for key, (value, count) in zip(LOGGED_KEYS, total.tolist(), strict=True):
            if count > 0:
                self._metrics["train"][key].append(value / count)
        self._logged_sums = {}


def teacher_forced_kl(student, teacher, ids, attention, answer_mask, autocast=None) -> torch.Tensor:
    """Token-mean full-vocabulary reverse KL(student || teacher) at every answer token of given sequences
    (`answer_mask` marks the tokens to predict), both models teacher-forced on the same text."""
    length = ids.size(1) - 1
    student_hidden = completion_hidden_states(student, ids, attention, length, autocast)
    with teacher.scoring() as model:
        teacher_hidden = completion_hidden_states(model, ids, attention, length, autocast)
        teacher_head = causal_lm(model).get_output_embeddings()
    mask = answer_mask[:, 1:]
    kl, _, _ = chunked_reverse_kl(student_hidden.float(), teacher_hidden.float(),
                                  causal_lm(student).get_output_embeddings().weight.float(),
                                  teacher_head.weight.float(), mask, mask.sum().clamp(min=1))
    return kl


# ---------------------------------------------------------------- the verb


def load_teachers(config: RecoverConfig, loaded: LoadedModel, keep: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The teacher of each prompt kind: the base (by default the student's own weights, adapter off) for general
    prompts, and the frozen sft snapshot for the document prompts when they are distilled."""
    if config.teacher == "base":
        if config.teacher_precision == "full" and loaded.precision.quant != "none":
            copy = load_model(loaded.resolved.base, quant="none")
            general = ModelTeacher(copy.model, f"{loaded.resolved.base} in full precision")
        else:
            if config.teacher_precision == "full":
                say("--teacher-precision full: the student is already full precision; its adapter-off base is that teacher")
            general = AdapterOffTeacher(loaded.model)
    else:
        resolved = resolve_model(config.teacher)
        other = load_model(config.teacher, quant="none" if config.teacher_precision == "full" else config.quant)
        if other.tokenizer.get_vocab() != loaded.tokenizer.get_vocab():
            raise BadInputError(
                f"--teacher {config.teacher}: its tokenizer differs from the student's ({resolved.base} vs "
                f"{loaded.resolved.base}); per-token distillation needs the same tokenizer"
            )
        general = ModelTeacher(other.model, config.teacher)
    teachers = {"general": general}
    if keep:
        teachers["keep"] = SnapshotTeacher(loaded.model, SNAPSHOT_ADAPTER)
    return teachers, {kind: t.describe() for kind, t in teachers.items()}


def run_recover(config: RecoverConfig) -> dict[str, Any]:
    return run_recipe(RecoverRecipe(config))


class RecoverRecipe(TrainingRecipe):
    verb = "recover"
    reports_base = True

    def prepare(self) -> None:
        config = self.config
        self.rollouts_per_process = per_process_share(config.prompts_per_step * config.samples_per_prompt,
                                                      "--prompts-per-step x --samples-per-prompt")
        self.parent = resolve_model(str(config.from_run))
        if self.parent.kind != "run":
            raise BadInputError(f"--from {config.from_run}: pass a run folder made by `rlsd sft` (runs/<name>)")
        self.general, self.general_source = general_prompts(config.prompts)
        self.distill_keep = config.keep_mix > 0 and config.keep_with == "distill"
        self.keep = knowledge_prompts(self.parent.run_dir, config.keep_prompts) if self.distill_keep else []
        self.anchor_pairs = (knowledge_conversations(self.parent.run_dir, config.keep_prompts)
                             if config.keep_mix > 0 and not self.distill_keep else [])

    def eval_configs(self) -> dict[str, EvalConfig]:
        config, parent = self.config, self.parent
        qa_files = config.eval_qa or recorded_qa_files(parent.run_record)
        missing = [f for f in qa_files if not f.exists()]
        if not config.eval_qa and missing:  # older sft runs kept the path as typed
            raise BadInputError(f"{parent.run_dir / RUN_RECORD}: the sft run's --eval-qa {missing[0]} is not found from "
                                f"{Path.cwd()}; pass --eval-qa FILE, or run from the folder the sft run ran in")
        config.eval_qa = qa_files  # recorded, so a later round scores them too
        out = qa_eval_configs(qa_files, str(parent.run_dir), config.quant)
        for suite in config.eval:
            out[suite] = EvalConfig(suite=suite, model=str(parent.run_dir), data=config.eval_data, limit=config.eval_limit,
                                    max_new_tokens=config.eval_max_new_tokens, quant=config.quant)
        return out

    def load(self) -> LoadedModel:
        config, parent = self.config, self.parent
        loaded = load_model(str(parent.run_dir), quant=config.quant, trainable=True)
        check_trained_adapter(loaded.model, parent.run_dir)
        self.anchor = None
        if self.anchor_pairs:
            newest_round = max(made_in for _, made_in in self.anchor_pairs)
            examples = {True: [], False: []}
            for messages, made_in in self.anchor_pairs:
                example = chat_example(loaded.tokenizer, messages, 256, "keep")
                if example:
                    examples[made_in == newest_round and newest_round > 1].append(example)
            self.anchor = anchor_batches(examples[False], config.keep_examples_per_step, config.steps, config.seed,
                                         newest=examples[True], newest_share=config.keep_newest_share)
        self.base_answers, self.base_answer_info = None, None
        if config.base_answers:
            with loaded.model.disable_adapter():  # generated by the base, once, if sft has not cached them
                conversations, self.base_answer_info = replay_conversations(
                    loaded, weights_hash(loaded.resolved.path), BASE_ANSWER_TOKENS, config.base_answer_sets)
            examples = [e for e in (chat_example(loaded.tokenizer, m, 320, "base-answer") for m in conversations) if e]
            if not examples:
                raise BadInputError(f"--base-answers: the base model finished no answer to the {config.base_answer_sets} "
                                    f"instructions (cached in {', '.join(self.base_answer_info['cache'])}); choose "
                                    "other sets with --base-answer-sets, or --base-answers 0")
            self.base_answers = anchor_batches(examples, config.base_answers, config.steps, config.seed + 1)
        if self.keep:
            loaded.model.load_adapter(str(parent.adapter_path), adapter_name=SNAPSHOT_ADAPTER, is_trainable=False)
            loaded.model.set_adapter("default")
        self.teachers, self.teacher_info = load_teachers(config, loaded, bool(self.keep))
        return loaded

    def record(self, loaded: LoadedModel) -> dict[str, Any]:
        return {"parent": str(self.parent.run_dir.resolve()), "teachers": self.teacher_info}

    def build_trainer(self, loaded: LoadedModel, run: Run, callbacks: list):
        config = self.config
        rows = step_prompts(self.general, self.keep, config.steps, config.prompts_per_step, config.keep_mix, config.seed)
        args = DistillationConfig(
            **on_policy_trainer_kwargs(config, loaded, run, self.rollouts_per_process),
            temperature=1.0,
            top_k=config.top_k,
            beta=1.0,
            shuffle_dataset=False,
        )
        args.include_num_input_tokens_seen = "no"  # TRL counts prompt and sampled tokens itself
        return OnPolicyDistillationTrainer(
            model=loaded.model, args=args, train_dataset=Dataset.from_list(rows), processing_class=loaded.tokenizer,
            callbacks=[RunLogger(run, "recover", show=("reverse_kl",)), *callbacks],
            teachers=self.teachers, method=config.method, divergence=config.divergence,
            samples_per_prompt=config.samples_per_prompt, keep_mix=config.keep_mix if (self.keep or self.anchor) else 0.0,
            anchor=self.anchor, autocast=loaded.autocast, base_answers=self.base_answers,
        )

    def describe(self, trainer) -> str:
        config = self.config
        if self.anchor:
            keeping = f"{config.keep_examples_per_step} sft Q/A pairs per step with their supervised loss ({config.keep_mix:.0%} of the loss)"
        elif self.keep:
            keeping = f"{round(config.prompts_per_step * config.keep_mix)} prompts per step from the documents, taught by the sft snapshot"
        else:
            keeping = "nothing kept from the documents (--keep-mix 0)"
        base_answers = (f"; {config.base_answers} of the base's own answers ({config.base_answer_sets}) per step, "
                        "teacher-forced" if self.base_answers else "")
        return (f"recover: {config.steps} steps of {config.prompts_per_step} prompts x {config.samples_per_prompt} samples"
                f"{base_answers}; {keeping}; teacher: {self.teacher_info['general']}")

    def finish(self, loaded: LoadedModel) -> None:
        if self.keep:
            loaded.model.delete_adapter(SNAPSHOT_ADAPTER)

    def summary(self, trainer, run: Run, train_seconds: float) -> dict[str, Any]:
        config, metrics = self.config, run.metrics()
        steps = [m for m in metrics if "reverse_kl" in m]
        curve = plot_curves(metrics, ["reverse_kl/general", "reverse_kl/keep"], run.path / "reverse_kl.png",
                            f"recover {run.name}: per-token reverse KL to the teacher")
        return {
            "parent": str(self.parent.run_dir),
            "method": config.method,
            "divergence": config.divergence,
            "teachers": self.teacher_info,
            "general_prompts": self.general_source,
            "knowledge_prompts": len(self.keep) or len(self.anchor_pairs),
            "keep_with": config.keep_with if config.keep_mix > 0 else None,
            "base_answers": self.base_answer_info,
            "reverse_kl_first": mean_or_none([m["reverse_kl"] for m in steps[:3]]),
            "reverse_kl_last": mean_or_none([m["reverse_kl"] for m in steps[-3:]]),
            "mean_length_first": mean_or_none([m.get("completions/mean_length") for m in steps[:3]]),
            "mean_length_last": mean_or_none([m.get("completions/mean_length") for m in steps[-3:]]),
            "kl_curve": str(curve) if curve else None,
        }
