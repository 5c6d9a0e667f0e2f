"""The `rlsd` command: parse, build a config, call a pipeline, print."""

from __future__ import annotations

from . import env

env.configure()  # before transformers / TRL / the hub client are imported anywhere

import dataclasses  # noqa: E402
import importlib  # noqa: E402
import inspect  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import typing  # noqa: E402
from dataclasses import MISSING  # noqa: E402
from pathlib import Path  # noqa: E402

import typer  # noqa: E402
from rich.table import Table  # noqa: E402
from typer._click.exceptions import ClickException, NoArgsIsHelpError  # noqa: E402
from typer.core import TyperGroup  # noqa: E402
from typer.exceptions import Abort, Exit  # noqa: E402

from . import __version__, console, distributed  # noqa: E402
from .configs import ReasonConfig, RecoverConfig, SFTConfig, describe_bounds, flag_name  # noqa: E402
from .errors import EXIT_INTERRUPTED, BadInputError, RlsdError  # noqa: E402
from .model import DEFAULT_MODEL, QUANT_CHOICES  # noqa: E402
from .recipes import apply_recipe, config_kwargs, recipe_error, require  # noqa: E402

_state = {"json": False}


class _Group(TyperGroup):
    """Turns expected failures into one line on stderr and their exit code, and Ctrl-C into 130."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Bad usage (an unknown flag, a value of the wrong type) is one line and exit 2 as well, not click's box."""
        _state["argv"] = list(sys.argv[1:] if args is None else args)
        try:
            code = super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as exc:
            exc.show()
            code = 2
        except ClickException as exc:
            where = f"rlsd {exc.ctx.command_path.split(' ', 1)[1]}" if getattr(exc, "ctx", None) and " " in exc.ctx.command_path else "rlsd"
            code = _report(f"{' '.join(exc.format_message().split()).rstrip('.')}; see `{where} --help`", 2)
        except Abort:
            code = _report("interrupted", EXIT_INTERRUPTED)
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RlsdError as exc:
            _fail(str(exc), exc.exit_code, shortened=exc.shortened)
        except KeyboardInterrupt:
            _fail("interrupted", EXIT_INTERRUPTED)
        except OSError as exc:
            # An unwritable folder, a full disk, a path that is a file: the user's to fix, so one line, not a
            # traceback (RLSD_DEBUG=1 shows it).
            if os.environ.get("RLSD_DEBUG"):
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            _fail(f"{where}{exc.strerror or exc}; check the path, its permissions and the free disk space", 2)
        except (ClickException, Abort, Exit):  # click's own ways out, handled in main()
            raise
        except Exception as exc:  # a bug: still one line (and the unstarted run folder removed), exit 1
            if os.environ.get("RLSD_DEBUG"):
                raise
            if type(exc).__name__ == "OutOfMemoryError":  # torch's, on a GPU: the settings', not a bug
                _fail(f"out of memory ({exc}); lower --batch-size (or --max-length, --num-generations), or use "
                      "--quant 4bit", 1)
            _fail(f"internal error ({type(exc).__name__}: {exc}); this is a bug in rlsd. RLSD_DEBUG=1 shows the "
                  "traceback; please report it with the command", 1)


def _without_option(argv: list[str], option: str) -> list[str]:
    """argv without `option VALUE` / `option=VALUE`."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            out.append(arg)
    return out


def _write_line(line: str) -> None:
    """One write: under several processes each rank's error line must reach the shared stderr whole, not
    interleaved with another rank's (a pipe keeps a write of up to 4 KiB in one piece)."""
    sys.stderr.flush()
    try:
        os.write(sys.stderr.fileno(), line.encode("utf-8", "replace"))
    except (AttributeError, OSError, ValueError):  # a stderr without a file descriptor (captured in tests)
        sys.stderr.write(line)
        sys.stderr.flush()


def _fail(message: str, code: int, shortened: bool = True):
    from .runs import discard_unstarted

    removed = discard_unstarted()
    if removed:  # still one line: the error, then what was cleaned up
        message += f" (removed the new run folder {', '.join(map(str, removed))}: it had not started training)"
    raise typer.Exit(_report(message, code, shortened))


def _report(message: str, code: int, shortened: bool = True) -> int:
    """The one error line (and with --json, before or after the verb, the one JSON object); returns the code."""
    message = console.printable(" ".join(message.split()))  # one line, whatever a library's message held
    if shortened:
        message = console.shorten(message)
    wants_json = _state["json"] or "--json" in _state.get("argv", [])
    if wants_json and not _state.get("reported") and distributed.is_main_process():
        console.print_json({"error": message, "exit_code": code})
    _write_line(f"rlsd: error: {message}\n")
    distributed.record_exit_code(code)
    return code


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Adapt an open LLM to your documents and tasks on one machine, and keep it good at everything else.",
)
models_app = typer.Typer(cls=_Group, no_args_is_help=True, help="Models: what is cached, where, how big.")
runs_app = typer.Typer(cls=_Group, no_args_is_help=True, help="Run directories written by the training verbs.")
app.add_typer(models_app, name="models")
app.add_typer(runs_app, name="runs")

JSON_HELP = "Print one JSON object instead of tables."
ModelOpt = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Model spec: smollm2-135m, a folder, a .gguf, runs/NAME or a hub id.")
QuantOpt = typer.Option("auto", "--quant", help=f"Weights precision: {'|'.join(QUANT_CHOICES)}.")
GenerationOpt = typer.Option("transformers", "--generation",
                             help="Rollouts with transformers (default) or vllm (GPU; the optional vllm extra).")
RecipeOpt = typer.Option(None, "--recipe", help="YAML file (or a shipped recipe's name) whose keys are this command's flags; flags given here win.")
RunsDirOpt = typer.Option(None, "--runs-dir", help="Where run folders live (default: ./runs, or $RLSD_RUNS).")
ResumeOpt = typer.Option(False, "--resume", help="Continue the run named --name from its last checkpoint.")
RunForceOpt = typer.Option(False, "--force", help="Move an existing run of that name to runs/.trash/ and start again.")
EvalDataOpt = typer.Option(None, "--eval-data", help="Data for the --eval suite.")
EvalLimitOpt = typer.Option(None, "--eval-limit", help="Seeded sample of N items for the --eval suite.")
EvalMaxNewTokensOpt = typer.Option(None, "--eval-max-new-tokens", help="Most tokens per --eval response.")


def _json(flag: bool) -> bool:
    _state["json"] = _state["json"] or flag
    return _state["json"]


def _version(value: bool):
    if value:
        print(f"rlsd {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
    version: bool | None = typer.Option(None, "--version", callback=_version, is_eager=True, help="Show the version."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code",
                                           help="Let a model folder's own Python code run when it loads (off: never)."),
    num_processes: int = typer.Option(1, "--num-processes", min=1,
                                      help="Train in N processes through accelerate launch (GPUs, or CPU with gloo)."),
):
    _state["json"] = json_out
    if num_processes > 1 and not os.environ.get(distributed.LAUNCHED):
        # The verb's flags are parsed here first: a bad one is one line from this process, not one from each worker.
        argv = _without_option(_state["argv"], "--num-processes")
        with ctx.command.make_context("rlsd", list(argv)) as parsed:
            name, command, args = ctx.command.resolve_command(parsed, [*parsed._protected_args, *parsed.args])
            command.make_context(name, args, parent=parsed).close()
        raise typer.Exit(distributed.relaunch(num_processes, argv))
    if os.environ.get(distributed.LAUNCHED):
        distributed.register_worker()
    if trust_remote_code:
        os.environ["RLSD_TRUST_REMOTE_CODE"] = "1"
    if not console.stderr.is_terminal:
        # Progress bars in a log file are noise; rich/plain status lines still say what is happening.
        os.environ.setdefault("TQDM_DISABLE", "1")


# ---------------------------------------------------------------- models


@models_app.command("list")
def models_list(json_out: bool = typer.Option(False, "--json", help=JSON_HELP)):
    """Models converted and cached under $RLSD_HOME/models."""
    from .model import list_cached_models, models_dir

    rows = list_cached_models()
    if _json(json_out):
        console.print_json({"models_dir": str(models_dir()), "models": rows})
        return
    table = Table(title=f"models in {models_dir()}")
    for column in ("name", "cached", "size", "source", "path"):
        table.add_column(column)
    for row in rows:
        source = row["source"] or {}
        table.add_row(
            row["name"],
            "yes" if row["cached"] else "no (converted on first use)",
            console.human_bytes(row["size_bytes"]),
            ", ".join(f"{k}={v}" for k, v in source.items()),
            row["path"] or "-",
        )
    console.stdout.print(table)


@models_app.command("show")
def models_show(
    spec: str = typer.Argument(DEFAULT_MODEL, help="Model spec."),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Where a model spec resolves to on disk and how big it is (converting or downloading it once if needed)."""
    from .model import describe_model

    info = describe_model(spec)
    if _json(json_out):
        console.print_json(info)
        return
    table = Table(show_header=False)
    for key, value in info.items():
        shown = console.human_bytes(value) if key.endswith("size_bytes") else f"{value:,}" if isinstance(value, int) else str(value)
        table.add_row(key, shown)
    console.stdout.print(table)


# ---------------------------------------------------------------- runs


@runs_app.command("list")
def runs_list(runs_dir: Path | None = RunsDirOpt, json_out: bool = typer.Option(False, "--json", help=JSON_HELP)):
    """Every run folder, newest last."""
    from .runs import list_runs

    rows = list_runs(runs_dir)
    if _json(json_out):
        console.print_json({"runs": [{k: v for k, v in r.items() if k != "record"} for r in rows]})
        return
    table = Table(title="runs")
    for column in ("name", "verb", "status", "steps", "base model", "parent", "created", "adapter"):
        table.add_column(column)
    for r in rows:
        table.add_row(*map(console.printable, (
            r["name"], r["verb"] or "-", r["status"], str(r["steps"]), r["base_model"], r["parent"] or "-",
            r["created"] or "-", console.human_bytes(r["adapter_size_bytes"]),
        )))
    console.stdout.print(table)


@runs_app.command("show")
def runs_show(
    name: str = typer.Argument(..., help="Run name (under the runs folder) or path."),
    runs_dir: Path | None = RunsDirOpt,
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """A run's record, final summary and its lineage: every round from the original model, with its changes and scores."""
    from .lineage import lineage_rows
    from .runs import describe_run, run_path

    info = describe_run(run_path(name, runs_dir))
    try:
        info["lineage"] = lineage_rows(Path(info["path"]))
    except RlsdError as exc:
        info["lineage"], info["lineage_error"] = [], str(exc)
    if _json(json_out):
        console.print_json(info)
        return
    # A run folder may have been made by hand: control characters in its name, paths and record are escaped.
    table = Table(show_header=False, title=console.printable(f"run {info['name']}"))
    for key in ("path", "verb", "status", "steps", "base_model", "parent", "created"):
        table.add_row(key, console.printable(info[key]))
    table.add_row("command", console.printable(" ".join(map(str, info["record"].get("command") or []))))
    for key, value in (info["summary"] or {}).items():
        table.add_row(console.printable(f"summary.{key}"), console.printable(value))
    console.stdout.print(table)
    if len(info["lineage"]) > 1:
        _print_lineage(info["lineage"])
    if info.get("lineage_error"):
        console.say(console.shorten(f"lineage: {info['lineage_error']}"))


def _print_lineage(rows: list[dict]) -> None:
    metrics = sorted({metric for row in rows for metric in row["scores"]})
    table = Table(title="lineage (oldest first; scores after each run)")
    for column in ("run", "verb", "round", "new / changed / removed", *metrics):
        table.add_column(column, overflow="fold")
    for row in rows:
        changes = row["changes"]
        changed = f"{changes.get('new', 0)} / {changes.get('changed', 0)} / {changes.get('removed', 0)}" if changes else "-"
        table.add_row(console.printable(row["name"]), console.printable(row["verb"] or "-"), str(row["round"] or "-"), changed,
                      *(f"{row['scores'][m]:.3f}" if m in row["scores"] else "-" for m in metrics))
    console.stdout.print(table)


@runs_app.command("plot")
def runs_plot(
    names: list[str] = typer.Argument(..., help="Run names (under the runs folder) or paths."),
    metric: list[str] = typer.Option(..., "--metric", help="metrics.jsonl key(s), e.g. reward or eval/math/accuracy."),
    out: Path = typer.Option(..., "--out", help="PNG to write (refused if it exists, unless --force)."),
    runs_dir: Path | None = RunsDirOpt,
    force: bool = typer.Option(False, "--force", help="Replace --out if it exists."),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Curves of several runs in one PNG (one line per run and metric), e.g. RLSD against GRPO."""
    from .runs import plot_runs, run_path

    result = plot_runs([run_path(n, runs_dir) for n in names], metric, out, force=force)
    if _json(json_out):
        console.print_json(result)
        return
    console.stdout.print(f"wrote {result['plot']} ({', '.join(f'{k}: {v} points' for k, v in result['points'].items())})")


# ---------------------------------------------------------------- chat


@app.command()
def chat(
    model: str = ModelOpt,
    prompt: str | None = typer.Option(None, "--prompt", "-p", help="Answer this one prompt and exit; interactive otherwise."),
    quant: str = QuantOpt,
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", help="Most tokens per answer."),
    temperature: float = typer.Option(0.0, "--temperature", help="0 = greedy; otherwise plain sampling."),
    system: str | None = typer.Option(None, "--system", help="System prompt (default: the chat template's own)."),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Talk to a model or a trained run; streams tokens as they come."""
    from .chat import ChatConfig, reply
    from .model import load_model

    config = ChatConfig(model=model, quant=quant, max_new_tokens=max_new_tokens, temperature=temperature, system=system)
    as_json = _json(json_out)
    loaded = load_model(config.model, quant=config.quant)

    def stream(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    if prompt is not None:
        result = reply(loaded, [{"role": "user", "content": prompt}], config, on_text=None if as_json else stream)
        if as_json:
            console.print_json({"model": model, "prompt": prompt, **result})
        else:
            sys.stdout.write("\n")
        return
    if as_json:
        raise RlsdError("--json needs --prompt: an interactive chat has no single result to print")
    console.say(f"chatting with {model}; /reset clears the conversation, /exit or Ctrl-D quits")
    history: list[dict[str, str]] = []
    while True:
        try:
            line = console.stdout.input("[bold cyan]you>[/] ", markup=True)
        except EOFError:
            sys.stdout.write("\n")
            return
        if line.strip() in ("/exit", "/quit"):
            return
        if line.strip() == "/reset":
            history = []
            continue
        if not line.strip():
            continue
        history.append({"role": "user", "content": line})
        result = reply(loaded, history, config, on_text=stream)
        sys.stdout.write("\n")
        history.append({"role": "assistant", "content": result["response"]})


# ---------------------------------------------------------------- training verbs
# Their flags, recipe keys and checks all come from the option declarations in configs.py.


def _option_parameter(f, hint) -> inspect.Parameter:
    """The Typer option (or argument) of one declared config field."""
    meta = f.metadata
    required = f.default is MISSING and f.default_factory is MISSING
    default = None if required else f.default_factory() if f.default is MISSING else f.default
    help_text = meta["help"]
    if meta["bounds"]:
        help_text += f" ({describe_bounds(meta['bounds'], hint is int)})"
    if meta["choices"] and "|" not in help_text:
        help_text += f" ({' | '.join(map(str, meta['choices']))})"
    annotation = hint | None if required and hint is not bool else hint
    if meta["argument"]:
        info = typer.Argument(default, help=help_text, show_default=not required)
    elif hint is bool:
        flag = flag_name(f)
        info = typer.Option(default, f"{flag}/--no-{flag[2:]}" if default else flag, help=help_text)
    else:
        info = typer.Option(default, flag_name(f), help=help_text, show_default=not required)
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)


def _training_command(verb: str, config_class, help_text: str) -> None:
    hints = typing.get_type_hints(config_class)
    own = config_class.__annotations__  # the verb's own options are listed first, then the shared groups'
    declared = sorted(dataclasses.fields(config_class), key=lambda f: f.name not in own)
    required = [f for f in declared if f.default is MISSING and f.default_factory is MISSING]

    def command(ctx: typer.Context, **values):
        values = apply_recipe(ctx, values["recipe"], values)
        for f in required:
            require(values, f.name, f.name.upper() if f.metadata["argument"] else flag_name(f))
        try:
            config = config_class(**{f.name: values[f.name] for f in declared})
        except BadInputError as error:
            raise recipe_error(ctx, error) from None
        result = getattr(importlib.import_module(f".{verb}", __package__), f"run_{verb}")(config)
        if not distributed.is_main_process():  # rank 0 reports for all
            return
        if _json(values["json_out"]):
            console.print_json(result)
        elif result.get("dry_run"):
            _print_dry_run(result)
        else:
            _print_training_summary(result)

    command.__signature__ = inspect.Signature([
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
        *(_option_parameter(f, hints[f.name]) for f in declared),
        inspect.Parameter("recipe", inspect.Parameter.KEYWORD_ONLY, default=RecipeOpt, annotation=str | None),
        inspect.Parameter("json_out", inspect.Parameter.KEYWORD_ONLY, default=typer.Option(False, "--json", help=JSON_HELP),
                          annotation=bool),
    ])
    command.__doc__ = help_text
    app.command(verb)(command)


_training_command("sft", SFTConfig, "Domain training on a folder of documents, mixed with general chat so the model keeps chatting.")
_training_command("recover", RecoverConfig, "Repair forgetting: on-policy distillation of a tuned run from its own base (adapter off), keeping what it learned.")
_training_command("reason", ReasonConfig, "RL with verifiable rewards: RLSD (GRPO with per-token credit from the model shown the answer), GRPO or OPSD.")


def _verb_rows(result: dict) -> list[tuple[str, str]]:
    """The rows particular to each verb's summary; steps, memory, evaluations and the chart are common."""
    if result["verb"] == "sft":
        corpus = result["corpus"]
        return [("files read / skipped", f"{corpus['files_read']} / {len(corpus['skipped'])}"),
                ("examples", ", ".join(f"{v} {k}" for k, v in sorted(result["examples"].items()))),
                ("tokens trained", f"{result['tokens_trained']:,}"),
                ("loss", f"{result['first_loss']} -> {result['final_loss']}"),
                ("train time", f"{result['train_seconds']} s ({result['tokens_per_second']} tokens/s)"
                 if result["train_seconds"] is not None else "trained before this resume")]
    if result["verb"] == "recover":
        return [("from", result["parent"]),
                *((f"teacher ({kind} prompts)", text) for kind, text in result["teachers"].items()),
                ("reverse KL", f"{result['reverse_kl_first']} -> {result['reverse_kl_last']}")]
    return [("verifier", result["verifier"]), ("teacher", str(result["teacher"])),
            ("reward", f"{result['reward_first']} -> {result['reward_last']}")]


def _print_training_summary(result: dict) -> None:
    algo = f" ({result['algo']})" if "algo" in result else ""
    table = Table(title=f"{result['verb']}{algo}: {result['run']}", show_header=False)
    for key, value in _verb_rows(result):
        table.add_row(key, value)
    table.add_row("steps", f"{result['steps']} ({result['seconds_per_step']} s/step)")
    table.add_row("peak memory", console.human_bytes(result["peak_rss_bytes"]))
    before, after, base = result["eval_before"], result["eval_after"], result.get("eval_base") or {}
    if before and not isinstance(next(iter(before.values())), dict):  # reason scores one held-out set
        before, after = {"held-out": before}, {"held-out": after}
    for suite, scores in before.items():
        for metric, value in scores.items():
            if isinstance(value, (int, float)):
                start = f"base {base[suite][metric]:.4f}, before " if metric in base.get(suite, {}) else ""
                table.add_row(f"{suite} {metric}", f"{start}{value:.4f} -> {after.get(suite, {}).get(metric, float('nan')):.4f}")
    table.add_row("curve", str(result.get("curve") or result.get("loss_curve") or result.get("kl_curve")))
    console.stdout.print(table)
    for skipped in (result.get("corpus") or {}).get("skipped", []):
        console.say(f"skipped {skipped['path']}: {skipped['reason']}")


def _print_dry_run(result: dict) -> None:
    table = Table(title=console.printable(f"sft --dry-run: {result['folder']}"), show_header=False)
    for key in ("files_read", "documents", "duplicates_dropped", "characters", "chunks", "chunk_tokens",
                "augmented_pairs", "augmented_by_kind", "chat_examples_in_data", "general_chat_examples",
                "general_chat_source", "chat_fraction"):
        table.add_row(key, str(result[key]))
    console.stdout.print(table)
    for skipped in result["skipped"]:
        console.stdout.print(console.printable(f"skipped {skipped['path']}: {skipped['reason']}"), highlight=False)
    for sample in result["augmentation_samples"]:
        console.stdout.print(console.printable(f"({sample['kind']}) Q: {sample['question']}") + "\n    A: "
                             + console.printable(sample["answer"][:160]), highlight=False)


# ---------------------------------------------------------------- export


@app.command()
def export(
    run: str = typer.Argument(..., help="The run to export (runs/NAME)."),
    out: Path = typer.Option(..., "--out", help="The folder to write (refused if not empty, unless --force)."),
    adapter_only: bool = typer.Option(False, "--adapter-only", help="Write the PEFT adapter naming its base (for vLLM or TGI LoRA serving) instead of a merged model."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out."),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """A standard Hugging Face model folder (adapter merged, tokenizer, chat template, model card) for any server."""
    from .export import export_run

    result = export_run(run, out, adapter_only=adapter_only, force=force)
    result["gguf"] = (f"python llama.cpp/convert_hf_to_gguf.py {result['out']} --outfile {result['out']}.gguf --outtype q8_0"
                      if not adapter_only else None)
    if _json(json_out):
        console.print_json(result)
        return
    console.stdout.print(f"wrote {result['out']} ({result['form']})", highlight=False)
    if result["gguf"]:
        console.say(f"for llama.cpp or Ollama, convert it with llama.cpp's converter (not on PyPI): {result['gguf']}")


# ---------------------------------------------------------------- data

data_app = typer.Typer(cls=_Group, no_args_is_help=True, help="Generate training and evaluation data.")
app.add_typer(data_app, name="data")


@data_app.command("math")
def data_math(
    ctx: typer.Context,
    n: int = typer.Option(1000, "--n", help="How many problems in all (train + test)."),
    seed: int = typer.Option(0, "--seed", help="The same seed gives the same files."),
    out: Path | None = typer.Option(None, "--out", help="Folder for train.jsonl and test.jsonl."),
    test_fraction: float = typer.Option(0.2, "--test-fraction", help="Share of the problems held out as test.jsonl."),
    max_steps: int = typer.Option(3, "--max-steps", help="Hardest problems chain this many operations (1-6)."),
    force: bool = typer.Option(False, "--force", help="Replace train.jsonl / test.jsonl if they exist."),
    recipe: str | None = RecipeOpt,
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Multi-step arithmetic word problems in graded difficulty, with answers and worked solutions (for `rlsd reason`)."""
    from .mathgen import write_math_data

    values = apply_recipe(ctx, recipe, locals())
    require(values, "out", "--out")
    n, seed, max_steps = values["n"], values["seed"], values["max_steps"]
    result = write_math_data(values["out"], n=n, seed=seed, test_fraction=values["test_fraction"], max_steps=max_steps,
                             force=values["force"])
    if _json(json_out):
        console.print_json(result)
        return
    console.stdout.print(f"wrote {result['train']} train and {result['test']} test problems to {result['out']} "
                         f"(difficulty 1-{max_steps} operations, seed {seed})")


# ---------------------------------------------------------------- recipes

recipes_app = typer.Typer(cls=_Group, no_args_is_help=True, help="Shipped recipes: YAML files of flags for each verb (--recipe NAME).")
app.add_typer(recipes_app, name="recipes")


@recipes_app.command("list")
def recipes_list(json_out: bool = typer.Option(False, "--json", help=JSON_HELP)):
    """The shipped recipes and what each is for."""
    from .recipes import list_recipes

    rows = list_recipes()
    if _json(json_out):
        console.print_json({"recipes": rows})
        return
    table = Table(title="recipes (use as --recipe NAME)")
    table.add_column("name")
    table.add_column("what for")
    for row in rows:
        table.add_row(row["name"], row["description"])
    console.stdout.print(table)


@recipes_app.command("show")
def recipes_show(
    name: str = typer.Argument(..., help="A recipe name (rlsd recipes list) or a YAML file."),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """A recipe's settings, each with what the option does and its default."""
    from .recipes import describe_recipe

    recipe = describe_recipe(name)
    if _json(json_out):
        console.print_json(recipe)
        return
    verbs = " or ".join(f"rlsd {verb}" for verb in recipe["verbs"]) or "no training verb (some keys are unknown)"
    # A recipe is the user's YAML: its keys and values may hold control characters or a lone surrogate ("\ud800"),
    # which no terminal encoding can write; they are shown escaped.
    table = Table(title=console.printable(f"{recipe['name']}: {recipe['description']}"),
                  caption=console.printable(f"for {verbs}; {recipe['path']}"))
    for column in ("key", "value", "default", "what it sets"):
        table.add_column(column)
    for row in recipe["settings"]:
        table.add_row(*map(console.printable, (row["key"], row["value"], "-" if row["default"] is None else row["default"],
                                               row["help"] or "?")))
    console.stdout.print(table)


# ---------------------------------------------------------------- eval

eval_app = typer.Typer(cls=_Group, no_args_is_help=True, help="Score a model on a suite; compare models; gate on a threshold (exit 3).")
app.add_typer(eval_app, name="eval")


def _print_report(report: dict, as_json: bool) -> None:
    if as_json:
        console.print_json(report)
        return
    title = f"{report['suite']}: {report.get('model') or report.get('responses')}  (n={report['n']})"
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("score", justify="right")
    for name, value in report["metrics"].items():
        marker = " *" if name == report["primary_metric"] else ""
        table.add_row(name + marker, f"{value:.4f}")
    console.stdout.print(table)
    generation = report.get("generation")
    if generation:
        console.say(
            f"{generation['items']} items, {generation['new_tokens']} new tokens in {generation['seconds']} s "
            f"({generation['tokens_per_second']} tokens/s)" + ("; cached" if report.get("cached") else "")
        )
    if report.get("report_path"):
        console.say(f"report: {report['report_path']} (per-item responses and verdicts beside it, .jsonl)")


def _data_help(suite) -> str:
    if suite.embedded_data and suite.hub_dataset:
        return f"JSONL data file, or 'hub' for {suite.hub_dataset[0]} from the Hugging Face hub; default: the copy shipped with rlsd."
    return "JSONL data file."


def _make_eval_command(suite_name: str):
    from .evaluate import EvalConfig
    from .suites import SUITES

    suite = SUITES[suite_name]

    def command(
        ctx: typer.Context,
        model: str = ModelOpt,
        data: Path | None = typer.Option(None, "--data", help=_data_help(suite)),
        responses: Path | None = typer.Option(None, "--responses", help=f"Score these responses (JSONL with '{suite.key_field}' and 'response') instead of generating."),
        limit: int | None = typer.Option(None, "--limit", help="Evaluate a seeded sample of N items (same items for every model)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the --limit sample."),
        max_new_tokens: int | None = typer.Option(None, "--max-new-tokens", help=f"Most tokens per response (default {suite.default_max_new_tokens})."),
        batch_size: int = typer.Option(EvalConfig.batch_size, "--batch-size", help="Prompts generated together."),
        temperature: float = typer.Option(0.0, "--temperature", help="0 = greedy (default)."),
        quant: str = QuantOpt,
        no_cache: bool = typer.Option(False, "--no-cache", help="Recompute even if a report for the same model, data and parameters exists."),
        min_score: float | None = typer.Option(None, "--min-score", help="Exit 3 when the metric is below this (metrics where higher is better)."),
        max_score: float | None = typer.Option(None, "--max-score", help="Exit 3 when the metric is above this (metrics where lower is better: stale_rate)."),
        metric: str | None = typer.Option(None, "--metric", help=f"Metric for --min-score (default {suite.primary_metric})."),
        out: Path | None = typer.Option(None, "--out", help="Also write the report (JSON) here."),
        recipe: str | None = RecipeOpt,
        json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
    ):
        from .evaluate import EvalConfig, enforce_threshold, run_eval, threshold_verdict

        values = apply_recipe(ctx, recipe, locals())
        config = EvalConfig(**config_kwargs(EvalConfig, values, suite=suite_name, use_cache=not values["no_cache"]))
        report = run_eval(config)
        verdict = threshold_verdict(report, config.min_score, config.metric, config.max_score)
        if verdict is not None:
            report["threshold"] = verdict
        _print_report(report, _json(json_out))
        _state["reported"] = True  # the report (with its threshold verdict) is the one JSON object
        enforce_threshold(verdict, suite_name)

    command.__doc__ = f"{suite.description}. Key field: '{suite.key_field}'."
    return command


def _register_eval_commands() -> None:
    from .suites import SUITES

    for name in SUITES:
        eval_app.command(name)(_make_eval_command(name))


_register_eval_commands()


@eval_app.command("drift")
def eval_drift(
    model: str = ModelOpt,
    quant: str = QuantOpt,
    no_cache: bool = typer.Option(False, "--no-cache", help="Recompute even if a report for the same model exists."),
    max_score: float | None = typer.Option(None, "--max-score", help="Exit 3 when the metric is above this."),
    metric: str | None = typer.Option(None, "--metric", help="Metric for --max-score: kl (default), early_divergence or kl/<category>."),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """How far a run moved from its base model on 96 everyday prompts, with no labels: KL(base || run) per token on
    the base's own answers (teacher forcing, no generation), and the share of answers the run departs from before
    their tenth token."""
    import math

    from .drift import run_drift
    from .evaluate import enforce_threshold, threshold_verdict

    if max_score is not None and not math.isfinite(max_score):
        raise BadInputError(f"--max-score must be a finite number, got {max_score}")
    report = run_drift(model, quant=quant, use_cache=not no_cache)
    verdict = threshold_verdict(report, None, metric, max_score)
    if verdict is not None:
        if report.get("scored_answers") == 0:  # nothing measured cannot pass a gate
            verdict = {**verdict, "passed": False, "reason": "no base answer had a token to score"}
        report["threshold"] = verdict
    _print_report(report, _json(json_out))
    _state["reported"] = True
    enforce_threshold(verdict, "drift")


@eval_app.command("compare")
def eval_compare(
    models: list[str] = typer.Argument(..., help="Two or more model specs (base models or runs) evaluated before."),
    plot: Path | None = typer.Option(None, "--plot", help="Where to write the bar chart (default: beside the first model's reports)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --plot file."),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """A table of every suite the models share, with deltas against the first, and a PNG bar chart."""
    from .evaluate import compare

    result = compare(models, plot=plot, force=force)
    if _json(json_out):
        console.print_json(result)
        return
    table = Table(title="rlsd eval compare")
    table.add_column("suite")
    table.add_column("metric")
    for i, spec in enumerate(models):
        table.add_column(spec if i == 0 else f"{spec} (delta)", justify="right")
    for row in result["rows"]:
        cells = [f"{row['values'][0]:.4f}"]
        for value, delta in zip(row["values"][1:], row["deltas"][1:], strict=True):
            cells.append("-" if value is None else f"{value:.4f} ({delta:+.4f})")
        table.add_row(row["suite"] + ("" if row["same_items"] else " (different items!)"), row["metric"], *cells)
    console.stdout.print(table)
    console.say(f"chart: {result['plot']}")


def _terminated(signum, frame):
    raise KeyboardInterrupt  # SIGTERM is Ctrl-C: one line, exit 130, a run that had not started removed


def main(argv: list[str] | None = None) -> None:
    import signal

    signal.signal(signal.SIGTERM, _terminated)
    app(args=argv, prog_name="rlsd")


if __name__ == "__main__":
    main()
