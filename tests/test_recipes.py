"""`--recipe FILE`: keys are the verb's flags, flags win, bad keys and values are one-line errors with the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer

from conftest import run_cli
from rlsd_cli.cli import app
from rlsd_cli.recipes import RECIPES_DIR, _convert, read_recipe, recipe_keys

DOCS = Path(__file__).parent / "data" / "docs"


def _command(*path: str):
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command


def test_recipe_sets_flags_and_the_command_line_wins(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("epochs: 2\nmix: 0.5\neval:\n  - ifeval\nmax-length: 128\n")
    result = run_cli("sft", str(DOCS), "--recipe", str(recipe), "--epochs", "3", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)["config"]
    assert (config["epochs"], config["mix"], config["eval"], config["max_length"]) == (3.0, 0.5, ["ifeval"], 128)


@pytest.mark.parametrize("text,line,message", [
    ("lr: 0.1\nbogus: 3\n", 2, "unknown key 'bogus' for `rlsd sft`; valid keys: augment, augment-model,"),
    ("lr: fast\n", 1, "lr: "),
    ("augment: maybe\n", 1, "augment: expected true or false, got 'maybe'"),
    ("epochs: [1, 2]\n", 1, "epochs: expected one value, got a list"),
    ("lr: [\n", 2, "not valid YAML"),
    ("- lr\n", None, "a recipe is a mapping of flag names to values"),
])
def test_bad_recipes_are_one_line_errors_naming_file_and_line(tmp_path, text, line, message):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(text)
    result = run_cli("sft", str(DOCS), "--recipe", str(recipe), "--dry-run")
    assert result.returncode == 2
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, lines
    where = f"{recipe}:{line}: " if line else f"{recipe}: "
    assert lines[0].startswith(f"rlsd: error: {where}") and message in lines[0], lines[0]


def test_a_required_option_can_come_from_the_recipe_and_is_still_required(tmp_path):
    out = tmp_path / "arith"
    recipe = tmp_path / "data.yaml"
    recipe.write_text(f"out: {out}\nn: 20\n")
    assert run_cli("data", "math", "--recipe", str(recipe)).returncode == 0
    assert len((out / "train.jsonl").read_text().splitlines()) == 16
    result = run_cli("data", "math", "--n", "20")
    assert result.returncode == 2 and "--out is required" in result.stderr and "'out:'" in result.stderr
    result = run_cli("sft")
    assert result.returncode == 2 and "DOCS is required" in result.stderr and "'docs:'" in result.stderr


def test_unknown_recipe_name_lists_the_shipped_ones():
    result = run_cli("sft", str(DOCS), "--recipe", "no-such-recipe", "--dry-run")
    assert result.returncode == 2 and "cpu-sft" in result.stderr


@pytest.mark.parametrize("path", sorted(RECIPES_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_recipe_is_valid_for_its_verb(path):
    verb = next(v for v in ("sft", "recover", "reason") if v in path.stem)
    command = _command(verb)
    keys = recipe_keys(command)
    context = command.make_context(verb, ["--help"], resilient_parsing=True)
    entries = read_recipe(path)
    assert entries and path.read_text().startswith("# ")  # the first comment line is its description
    for key, value, _ in entries:
        assert key in keys, f"{path.name}: {key}"
        assert _convert(keys[key], context, value) is not None


def test_recipes_list_and_show():
    listed = json.loads(run_cli("recipes", "list", "--json").stdout)["recipes"]
    assert {"cpu-sft", "cpu-recover", "cpu-reason"} <= {r["name"] for r in listed}
    shown = json.loads(run_cli("recipes", "show", "cpu-recover", "--json").stdout)
    assert shown["verbs"] == ["recover"]
    teacher = next(row for row in shown["settings"] if row["key"] == "teacher")
    assert teacher["value"] == "base" and teacher["default"] == "base" and "adapter off" in teacher["help"]


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "recipes" / "accelerate").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_accelerate_configs_parse_and_state_their_memory(path):
    import yaml

    config = yaml.safe_load(path.read_text())
    assert config["distributed_type"] in {"MULTI_GPU", "DEEPSPEED", "FSDP"} and config["num_processes"] >= 2
    if config["distributed_type"] != "MULTI_GPU":
        assert "Expected per GPU" in path.read_text() and "not measured" in path.read_text()
