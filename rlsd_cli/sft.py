"""`rlsd sft DOCS_DIR`: LoRA/QLoRA domain training on a folder of documents, mixed with general chat.

Examples: token windows of the documents (each prefixed with its source, loss on the document text), rule-
based question/answer pairs and fact lists from every fact sentence (`augment.py`), optional model-written
pairs, the user's own conversations from JSONL, and a `--mix` fraction of general chat (the base model's
own answers to built-in instructions, or `--chat-data`). Training is TRL's SFTTrainer on pre-tokenised
examples whose assistant masks TRL turns into labels (loss on assistant tokens only, end-of-turn included).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers.trainer_pt_utils import LengthGroupedSampler
from trl import SFTConfig as TRLSFTConfig
from trl import SFTTrainer
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from .augment import QAPair, model_pairs, rule_based_pairs, split_sentences
from .chat_format import chat_example
from .configs import SFTConfig
from .distributed import is_main_process
from .errors import BadInputError
from .evaluate import EvalConfig
from .ingest import Corpus, Document, read_corpus
from .lineage import (
    RoundPlan,
    carried_knowledge,
    changed_facts,
    plan_round,
    read_lineage,
    text_sha256,
    write_documents,
    write_knowledge,
)
from .losses import target_token_nll
from .model import LoadedModel, LoraSettings, load_model, load_tokenizer, resolve_model, weights_hash
from .plots import plot_curve
from .replay import read_chat_data, replay_conversations
from .run_record import RUN_RECORD, read_run_record
from .runs import Run
from .training import (
    RunLogger,
    TrainingRecipe,
    check_inputs,
    common_trainer_kwargs,
    config_record,
    merged_paths,
    qa_eval_configs,
    recorded_qa_files,
    run_recipe,
)

# ---------------------------------------------------------------- examples


def document_chunks(documents: list[Document], tokenizer, max_length: int, overlap: int) -> list[dict[str, Any]]:
    """Token windows of each document, each prefixed with its source so facts stay tied to it.

    The prefix is context, not a target (mask 0); the window is the target (mask 1). Each window ends with
    end-of-text only when it reaches the end of its document.
    """
    examples, seen = [], set()
    for document in documents:
        header = tokenizer(f"Source: {document.title} ({document.path})\n\n", add_special_tokens=False)["input_ids"]
        body = tokenizer(document.text, add_special_tokens=False)["input_ids"]
        window = max(max_length - len(header) - 1, 16)
        stride = max(window - overlap, 1)
        for start in range(0, max(len(body), 1), stride):
            piece = body[start : start + window]
            last = start + window >= len(body)
            ids = header + piece + ([tokenizer.eos_token_id] if last else [])
            if tuple(ids) not in seen:  # a text repeating itself gives the same window again and again
                seen.add(tuple(ids))
                mask = [0] * len(header) + [1] * (len(ids) - len(header))
                examples.append({"input_ids": ids, "assistant_masks": mask, "kind": "chunk", "source": document.path})
            if last:
                break
    return examples


def mix_in_chat(doc_examples: int, mix: float) -> int:
    """How many chat examples make them `mix` of the total."""
    return 0 if mix <= 0 else round(doc_examples * mix / (1.0 - mix))


def sample_chat(pool: list, n: int, seed: int) -> list:
    """n examples from the pool: all of it, repeated as needed, in a seeded order."""
    if not pool or n <= 0:
        return []
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        batch = pool[:]
        rng.shuffle(batch)
        out.extend(batch[: n - len(out)])
    return out


@dataclass
class Plan:
    """What a round trains on, decided before any model loads (and all `--dry-run` shows)."""

    corpus: Corpus
    chunks: list[dict[str, Any]]
    qa_pairs: list[QAPair]
    data_chats: list[dict[str, Any]]
    chat_needed: int
    chat_source: str
    # A continuing round (--from): the lineage's newest sft round, how the folder changed since, and the pairs of
    # the unchanged documents that are replayed (and carried into this round's knowledge).
    knowledge_from: Path | None = None
    changes: RoundPlan | None = None
    carried: list[dict[str, Any]] = field(default_factory=list)
    replay_needed: int = 0

    def doc_examples(self) -> int:
        return len(self.chunks) + len(self.qa_pairs) + len(self.data_chats)

    def knowledge(self, round_number: int) -> list[dict[str, Any]]:
        """The Q/A pairs current after this round, each tied to the document version and the round it was made in."""
        digests = {d.path: text_sha256(d.text) for d in self.corpus.documents}
        made = [{"prompt": p.question, "answer": p.answer, "kind": p.kind, "source": p.source,
                 "sha256": digests.get(p.source), "round": round_number} for p in self.qa_pairs]
        return self.carried + made

    def describe(self, samples: int = 6, seed: int = 0) -> dict[str, Any]:
        rng = random.Random(seed)
        picks = rng.sample(self.qa_pairs, min(samples, len(self.qa_pairs)))
        kinds: dict[str, int] = {}
        for pair in self.qa_pairs:
            kinds[pair.kind] = kinds.get(pair.kind, 0) + 1
        chunk_tokens = sum(len(c["input_ids"]) for c in self.chunks)
        total = self.doc_examples() + self.replay_needed + self.chat_needed
        round_plan = {} if self.changes is None else {
            "continues": str(self.knowledge_from), "changes": self.changes.describe(),
            "replayed_pairs_available": len(self.carried), "replay_examples": self.replay_needed}
        return {
            **self.corpus.summary(),
            **round_plan,
            "chunks": len(self.chunks),
            "chunk_tokens": chunk_tokens,
            "augmented_pairs": len(self.qa_pairs),
            "augmented_by_kind": kinds,
            "chat_examples_in_data": len(self.data_chats),
            "general_chat_examples": self.chat_needed,
            "general_chat_source": self.chat_source,
            "chat_fraction": round(self.chat_needed / total, 3) if total else 0.0,
            "augmentation_samples": [{"kind": p.kind, "question": p.question, "answer": p.answer} for p in picks],
        }


def update_pairs(previous: dict[str, Any], document: Document) -> list[QAPair]:
    """For each fact sentence a revision rewrote: the old sentence asked about, the new one given as the answer."""
    return [QAPair(question=f"{old} Is that still true?", answer=f"No, not any more. {new}", source=document.path, kind="update")
            for old, new in changed_facts(previous, document, split_sentences)]


def plan(config: SFTConfig, get_tokenizer: Callable[[], Any], corpus: Corpus | None = None) -> Plan:
    """The tokenizer is asked for after the lineage's records are read: a damaged record is refused in seconds,
    before a model is converted for its tokenizer."""
    corpus = corpus or read_corpus(config.docs, strict=config.strict)
    documents, knowledge_from, changes, carried, extra = corpus.documents, None, None, [], []
    if config.from_run is not None:
        knowledge_from, previous, previous_pairs = read_lineage(config.from_run)
        changes = plan_round(previous, corpus)
        if not changes.trained():
            raise BadInputError(f"{config.docs}: no document is new or changed since {knowledge_from} (removed: "
                                f"{len(changes.removed)}); nothing to learn in this round")
        documents = [d for d in corpus.documents if d.path in changes.trained()]
        carried = carried_knowledge(previous_pairs, changes)
        if config.update_pairs:
            extra = [p for d in documents if d.path in changes.changed for p in update_pairs(previous[d.path], d)]
    tokenizer = get_tokenizer()
    chunks = document_chunks(documents, tokenizer, config.max_length, config.chunk_overlap)
    pairs = [p for d in documents for p in rule_based_pairs(d, seed=config.seed)] if config.augment else []
    pairs += extra
    data_chats = [e for e in (chat_example(tokenizer, m, config.max_length, "data-chat") for m in corpus.chats) if e]
    doc_examples = len(chunks) + len(pairs) + len(data_chats)
    replay_needed = mix_in_chat(doc_examples, config.knowledge_replay) if carried else 0
    source = (f"--chat-data {config.chat_data}" if config.chat_data
              else f"replay of the base model's answers to built-in instructions ({config.replay})")
    return Plan(corpus, chunks, pairs, data_chats, mix_in_chat(doc_examples + replay_needed, config.mix), source,
                knowledge_from, changes, carried, replay_needed)


# ---------------------------------------------------------------- trainer


class PadOrPackCollator:
    """TRL's language-modelling collator, padding each batch or packing it into one row, whichever is less work.

    A packed row (TRL's padding-free mode: position ids restart at each example, and transformers keeps each
    example's attention to itself) computes no padding, but its attention spans the whole row. A batch of one long
    document chunk and seven short Q/A pairs packs (on the test corpus, 26% of the tokens in padded batches were
    padding); a batch of equal chunks pads. The estimate: 2 x (non-embedding parameters) FLOPs a token for the
    layers and 4 x hidden x layers a (query, key) pair for attention, forward only (the backward scales both
    alike)."""

    def __init__(self, pad_token_id: int, model):
        config = model.config.get_text_config()
        self.token_flops = 2 * model.num_parameters(exclude_embeddings=True)
        self.pair_flops = 4 * config.hidden_size * config.num_hidden_layers
        self.padded = DataCollatorForLanguageModeling(pad_token_id=pad_token_id)
        self.packed = DataCollatorForLanguageModeling(pad_token_id=pad_token_id, padding_free=True)

    def packs(self, lengths: list[int]) -> bool:
        longest, total = max(lengths), sum(lengths)
        padded = len(lengths) * (longest * self.token_flops + longest * longest * self.pair_flops)
        return total * self.token_flops + total * total * self.pair_flops < padded

    def __call__(self, examples):
        return (self.packed if self.packs([len(e["input_ids"]) for e in examples]) else self.padded)(examples)


class DocumentSFTTrainer(SFTTrainer):
    """SFTTrainer whose length-grouped order is drawn for the global batch, whose token count sees packed rows, and
    whose loss on a CPU projects the vocabulary at the target positions only."""

    def __init__(self, *args, target_only_loss: bool, **kwargs):
        self.target_only_loss = target_only_loss
        super().__init__(*args, **kwargs)

    def _get_train_sampler(self, train_dataset=None):
        """Length groups sized for the global batch (per-device batch x accumulation x processes) rather than one
        device's, so N processes see the batches one process would (Trainer sizes the groups per device, which
        reorders the data whenever the process count changes)."""
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy != "group_by_length" or dataset is None:
            return super()._get_train_sampler(train_dataset)
        global_batch = self.args.train_batch_size * self.args.gradient_accumulation_steps * max(1, self.args.world_size)
        return LengthGroupedSampler(global_batch, dataset=dataset, lengths=[len(x) for x in dataset["input_ids"]])

    def _track_num_input_tokens(self, inputs):
        if "attention_mask" not in inputs and "position_ids" in inputs:  # a packed row: every token is real
            inputs = {**inputs, "attention_mask": torch.ones_like(inputs["input_ids"])}
        super()._track_num_input_tokens(inputs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """On a CPU, one forward whose vocabulary projection covers the target positions only
        (`losses.target_token_nll`). TRL's fused LM head projects the vocabulary in tiles and adds per-token
        entropy and top-1; that saves memory on a GPU, but on this CPU it measured 1.5x slower than the plain
        full-logits forward (263 vs 385 tokens/s, SmolLM2-135M + LoRA, batch 8 x 80, bf16 autocast), and
        memory is not what limits a CPU run. Skipping the prompt positions is cheaper still (benchmarks/)."""
        if not self.target_only_loss or return_outputs:
            return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        head = self.accelerator.unwrap_model(model).get_output_embeddings()
        forward = {k: v for k, v in inputs.items() if k != "labels"}
        # use_cache=False also lets transformers find the examples of a packed row (TRL's own loss sets it too).
        # logits_to_keep=1: the model's own projection runs on one position; the final hidden state is the loss's input.
        outputs = model(**forward, use_cache=False, output_hidden_states=True, logits_to_keep=1)
        loss = target_token_nll(outputs.hidden_states[-1], inputs["labels"], head, num_items_in_batch)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes  # as Trainer.compute_loss: DDP averages the gradients
        return loss


# ---------------------------------------------------------------- the verb


def run_sft(config: SFTConfig) -> dict[str, Any]:
    corpus = read_corpus(config.docs, strict=config.strict)  # the documents first: a bad folder fails before any model work
    if not corpus.documents and not any(m["role"] == "assistant" for chat in corpus.chats for m in chat):
        raise BadInputError(f"{config.docs}: nothing to train on: no document text, and no chat with an assistant turn; "
                            "add documents, or chats with answers")
    if config.from_run is not None:
        if (Path(config.from_run) / RUN_RECORD).is_file():  # a damaged record fails before the base is converted
            read_lineage(config.from_run)
        config.model = lineage_base(config)
    if config.dry_run:  # what the real run would refuse before its model loads, --dry-run refuses too
        check_inputs(SFTRecipe(config, None))
    resolved = resolve_model(config.model)
    if resolved.kind == "run":
        raise BadInputError(f"--model {config.model}: sft starts from a base model; to continue a run's lineage on "
                            f"new documents use --from {config.model}, to finish an interrupted run --resume")
    the_plan = plan(config, lambda: load_tokenizer(resolved.path), corpus)
    if config.dry_run:
        return {"dry_run": True, "model": config.model, "config": config_record(config), **the_plan.describe(seed=config.seed)}
    return run_recipe(SFTRecipe(config, the_plan))


def lineage_base(config: SFTConfig) -> str:
    """The base model of the run a round continues: the original checkpoint stays the base in every round, so
    `recover --teacher base` distills from it with the adapter off. Another --model is refused."""
    parent = resolve_model(str(config.from_run))
    if parent.kind != "run":
        raise BadInputError(f"--from {config.from_run}: pass a run folder (runs/<name>) made by sft or recover")
    if config.model is not None and weights_hash(resolve_model(config.model).path) != weights_hash(parent.path):
        raise BadInputError(f"--model {config.model}: {config.from_run} was trained on {parent.base}, and a round "
                            "continues its lineage's base model; leave out --model, or start a new lineage without --from")
    return parent.base


class SFTRecipe(TrainingRecipe):
    verb = "sft"

    def __init__(self, config: SFTConfig, the_plan: Plan | None):
        super().__init__(config)
        self.plan = the_plan

    def prepare(self) -> None:
        self.chat_data = read_chat_data(self.config.chat_data) if self.config.chat_data else None

    def eval_configs(self) -> dict[str, EvalConfig]:
        config = self.config
        earlier = recorded_qa_files(read_run_record(config.from_run)) if config.from_run else []
        for path in earlier:
            if not path.is_file():
                raise BadInputError(f"{path}: an earlier round's --eval-qa file, recorded in {config.from_run / 'run.json'}, "
                                    "is gone; restore it, since every round scores the questions of the rounds before")
        config.eval_qa = merged_paths(earlier, config.eval_qa)  # recorded, so a later round scores them too
        out = qa_eval_configs(config.eval_qa, config.model, config.quant)
        for suite in config.eval:
            out[suite] = EvalConfig(suite=suite, model=config.model, data=config.eval_data, limit=config.eval_limit,
                                    max_new_tokens=config.eval_max_new_tokens, quant=config.quant)
        return out

    def load(self) -> LoadedModel:
        config = self.config
        if config.from_run is not None:  # the lineage's adapter trains on; its LoRA shape is the run's
            return load_model(str(config.from_run), quant=config.quant, trainable=True)
        lora = LoraSettings(r=config.lora_r, alpha=config.lora_alpha, dropout=config.lora_dropout, seed=config.seed)
        return load_model(config.model, quant=config.quant, lora=lora, trainable=True)

    def record(self, loaded: LoadedModel) -> dict[str, Any]:
        if self.plan.changes is None:
            self.round = {"number": 1}
            return {"round": self.round}
        previous = read_run_record(self.plan.knowledge_from).get("round", {}).get("number", 1)
        self.round = {"number": previous + 1, "knowledge_from": str(self.plan.knowledge_from.resolve()),
                      "changes": self.plan.changes.describe(), "replayed_pairs": self.plan.replay_needed}
        return {"parent": str(Path(self.config.from_run).resolve()), "round": self.round}

    def build_trainer(self, loaded: LoadedModel, run: Run, callbacks: list):
        config, tokenizer = self.config, loaded.tokenizer
        # General chat, as a fraction of the whole.
        if self.chat_data is not None:
            pool_messages, self.chat_info = self.chat_data, {"source": str(config.chat_data)}
        elif self.plan.chat_needed:
            with loaded.model.disable_adapter():  # the base model's own answers, in every round
                pool_messages, self.chat_info = replay_conversations(loaded, weights_hash(loaded.resolved.path),
                                                                     config.replay_max_new_tokens, config.replay)
        else:
            pool_messages, self.chat_info = [], {"source": None}
        pool = [e for e in (chat_example(tokenizer, m, config.max_length, "general-chat") for m in pool_messages) if e]
        chats = sample_chat(pool, self.plan.chat_needed, config.seed)

        pairs = self.plan.qa_pairs + self._model_written_pairs(loaded)
        self.plan.qa_pairs = pairs
        # What the next round compares the folder with, and the knowledge current after this round (`recover`
        # keeps it; the next round replays its unchanged part).
        if is_main_process():
            write_documents(run.path, self.plan.corpus)
            write_knowledge(run.path, self.plan.knowledge(self.round["number"]))
        qa_examples = [chat_example(tokenizer, p.messages(), config.max_length, f"qa-{p.kind}", p.source) for p in pairs]
        replayed = [chat_example(tokenizer, [{"role": "user", "content": p["prompt"]}, {"role": "assistant", "content": p["answer"]}],
                                 config.max_length, "replay", p["source"])
                    for p in sample_chat(self.plan.carried, self.plan.replay_needed, config.seed)]
        examples = self.plan.chunks + [e for e in qa_examples + replayed if e] + self.plan.data_chats + chats
        random.Random(config.seed).shuffle(examples)
        self.counts: dict[str, int] = {}
        for example in examples:
            key = example["kind"].split("-")[0] if example["kind"].startswith("qa") else example["kind"]
            self.counts[key] = self.counts.get(key, 0) + 1
        dataset = Dataset.from_list([{"input_ids": e["input_ids"], "assistant_masks": e["assistant_masks"]} for e in examples])

        args = TRLSFTConfig(
            **common_trainer_kwargs(loaded.precision, run, config.seed, config.save_every, report_to=config.report_to),
            per_device_train_batch_size=config.batch_size,
            gradient_accumulation_steps=config.grad_accum,
            learning_rate=config.lr,
            num_train_epochs=config.epochs,
            max_steps=config.max_steps,
            lr_scheduler_type="cosine",
            warmup_steps=0.03,
            weight_decay=0.0,
            max_length=config.max_length,
            packing=False,
            train_sampling_strategy="group_by_length",
            dataset_num_proc=None,
        )
        return DocumentSFTTrainer(
            model=loaded.model, args=args, train_dataset=dataset, processing_class=tokenizer,
            callbacks=[RunLogger(run, "sft"), *callbacks], data_collator=PadOrPackCollator(tokenizer.pad_token_id, loaded.model),
            target_only_loss=loaded.precision.device == "cpu",
        )

    def _model_written_pairs(self, loaded: LoadedModel) -> list[QAPair]:
        """`--augment-model`: Q/A pairs another model (or the base: this one, adapter off) writes per chunk."""
        config = self.config
        if not config.augment_model:
            return []
        writer = loaded if config.augment_model in (config.model, "base") else load_model(config.augment_model, quant=config.quant)
        chunk_texts = [(c["source"], loaded.tokenizer.decode([t for t, m in zip(c["input_ids"], c["assistant_masks"], strict=True) if m],
                                                            skip_special_tokens=True)) for c in self.plan.chunks]
        with writer.model.disable_adapter() if writer is loaded else contextlib.nullcontext():
            pairs, self.chat_info["augment_model"] = model_pairs(writer, chunk_texts)
        return pairs

    def describe(self, trainer) -> str:
        return (f"sft: {len(trainer.train_dataset)} examples ({', '.join(f'{v} {k}' for k, v in sorted(self.counts.items()))}), "
                f"{trainer.state.max_steps or 'computing'} steps")

    def summary(self, trainer, run: Run, train_seconds: float) -> dict[str, Any]:
        metrics = run.metrics()
        curve = plot_curve(metrics, "loss", run.path / "loss.png", f"sft {run.name}: training loss")
        tokens = int(trainer.state.num_input_tokens_seen or 0)
        losses = [m["loss"] for m in metrics if "loss" in m]
        return {
            "round": self.round,
            "corpus": self.plan.corpus.summary(),
            "examples": self.counts,
            "general_chat": self.chat_info,
            "tokens_trained": tokens,
            "tokens_per_second": round(tokens / train_seconds, 1) if train_seconds > 0 else None,
            "first_loss": losses[0] if losses else None,
            "final_loss": losses[-1] if losses else None,
            "loss_curve": str(curve) if curve else None,
        }
