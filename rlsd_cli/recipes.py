"""`--recipe FILE`: a YAML file whose keys are a verb's own flags, so a recipe and a command line say the same thing.

Keys are the long flag names without dashes (`max-new-tokens` or `max_new_tokens`; `from`, `eval`, `lambda` as
on the command line; a positional argument by its name, e.g. `docs`). Values are converted and checked by the
same click types as the flags. A flag given on the command line wins over the recipe. An unknown key or a value
of the wrong type is an error naming the file, the line and the valid keys.

A bare name (`--recipe cpu-sft`) is looked up in the recipes folder shipped with the project (`rlsd recipes list`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import BadInputError

# A wheel installs recipes/ as rlsd_cli/_recipes (pyproject.toml); a source checkout reads it where it stands.
_INSTALLED_RECIPES = Path(__file__).resolve().parent / "_recipes"
RECIPES_DIR = _INSTALLED_RECIPES if _INSTALLED_RECIPES.is_dir() else Path(__file__).resolve().parent.parent / "recipes"
NOT_FROM_RECIPES = {"recipe", "json_out", "help"}


def recipe_path(spec: Path | str) -> Path:
    """A recipe file, or a bare name in the shipped recipes folder."""
    path = Path(spec)
    if path.is_file():
        return path
    if path.is_dir():
        raise BadInputError(f"--recipe {spec}: is a folder; pass a recipe .yaml file or a shipped recipe's name")
    named = RECIPES_DIR / (path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml")
    if path.parent == Path(".") and named.is_file():
        return named
    known = ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))) or "none"
    raise BadInputError(f"--recipe {spec}: no such file (shipped recipes: {known}; `rlsd recipes list`)")


MAX_RECIPE_BYTES = 64 * 1024  # a recipe is a page of flags; anything bigger is not one


def _loader():
    """YAML's safe loader without anchors and aliases: a recipe has no use for them, and an alias bomb (a few lines
    that expand to gigabytes) would otherwise cost minutes and memory before any check ran."""
    import yaml

    class RecipeLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent) or getattr(self.peek_event(), "anchor", None):
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(f"line {mark.line + 1}: YAML anchors and aliases (& and *) are not allowed in a recipe")
            return super().compose_node(parent, index)

        def construct_yaml_int(self, node):
            if ":" in node.value:  # YAML 1.1 reads 1:30 as 90 (base 60); no option means that
                return node.value
            return super().construct_yaml_int(node)

        def construct_yaml_float(self, node):
            if ":" in node.value:
                return node.value
            return super().construct_yaml_float(node)

    RecipeLoader.add_constructor("tag:yaml.org,2002:int", RecipeLoader.construct_yaml_int)
    RecipeLoader.add_constructor("tag:yaml.org,2002:float", RecipeLoader.construct_yaml_float)
    return RecipeLoader


def read_recipe(path: Path) -> list[tuple[str, Any, int]]:
    """(key, value, line) for every top-level key of a YAML mapping, in file order."""
    import yaml

    try:
        if path.stat().st_size > MAX_RECIPE_BYTES:
            raise BadInputError(f"{path}: {path.stat().st_size:,} bytes, more than a recipe's {MAX_RECIPE_BYTES:,}; a recipe "
                                "is a short YAML file of flags")
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=_loader())
        data = yaml.load(text, Loader=_loader())
    except UnicodeDecodeError:
        raise BadInputError(f"{path}: not UTF-8 text; save the recipe as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise BadInputError(f"{where}: not valid YAML ({problem}); fix the syntax") from None
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise BadInputError(f"{path}: a recipe is a mapping of flag names to values (e.g. 'lr: 0.001'), got {type(data).__name__}")
    lines: dict[str, int] = {}
    for key_node, _ in node.value:
        if key_node.value in lines:
            raise BadInputError(f"{path}:{key_node.start_mark.line + 1}: {key_node.value!r} is set twice (first on line "
                                f"{lines[key_node.value]}); keep one")
        lines[key_node.value] = key_node.start_mark.line + 1
    return [(str(key), value, lines.get(str(key), 1)) for key, value in data.items()]


def recipe_keys(command) -> dict[str, Any]:
    """Recipe key -> click parameter: the long flag without dashes, with underscores too, and positional names."""
    keys: dict[str, Any] = {}
    for param in command.params:
        if param.name in NOT_FROM_RECIPES:
            continue
        names = [o[2:] for o in getattr(param, "opts", []) if o.startswith("--")] or [param.name]
        for name in names:
            keys[name] = param
            keys[name.replace("-", "_")] = param
    return keys


def apply_recipe(ctx, spec: Path | str | None, values: dict[str, Any]) -> dict[str, Any]:
    """`values` (the verb's parameters as parsed) with the recipe's settings for every flag not given on the
    command line."""
    if spec is None:
        return values
    path = recipe_path(spec)
    keys = recipe_keys(ctx.command)
    valid = sorted({k for k in keys if "_" not in k or k.replace("_", "-") not in keys})
    values = dict(values)
    set_here: dict[str, tuple[int, str]] = {}
    for key, value, line in read_recipe(path):
        param = keys.get(key)
        if value is None and param is not None:
            raise BadInputError(f"{path}:{line}: {key} has no value; give one (e.g. '{key}: ...') or delete the line")
        if param is None:
            raise BadInputError(f"{path}:{line}: unknown key {key!r} for `rlsd {ctx.command_path.split(' ', 1)[-1]}`; "
                                f"valid keys: {', '.join(valid)}")
        if param.name in set_here:  # `max-length` and `max_length` name one setting
            first_line, first_key = set_here[param.name]
            raise BadInputError(f"{path}:{line}: {key} sets what line {first_line} ({first_key}) already set; keep one")
        set_here[param.name] = (line, key)
        try:  # a wrong value is an error even where the command line wins
            converted = _convert(param, ctx, value)
        except Exception as exc:  # click's BadParameter (typer vendors click, so match by duck type)
            message = getattr(exc, "message", None) or str(exc)
            raise BadInputError(f"{path}:{line}: {key}: {message}") from None
        if getattr(ctx.get_parameter_source(param.name), "name", "") in ("COMMANDLINE", "ENVIRONMENT"):
            continue  # the command line wins
        values[param.name] = converted
        ctx.meta.setdefault(RECIPE_LINES, {})[param.name] = (path, line, key)
    return values


RECIPE_LINES = "rlsd.recipe_lines"  # ctx.meta: parameter name -> (recipe, line, key) of each value a recipe set


def recipe_error(ctx, error: BadInputError) -> BadInputError:
    """A config's bound check names the flag (`--lr must be positive`); for a value the recipe set, the error
    names the recipe's file and line instead, where the fix goes."""
    for name, (path, line, key) in ctx.meta.get(RECIPE_LINES, {}).items():
        param = next((p for p in ctx.command.params if p.name == name), None)
        flags = [o for o in getattr(param, "opts", []) if o.startswith("--")]
        if any(str(error).startswith(f"{flag} ") for flag in flags):
            return BadInputError(f"{path}:{line}: {key}: {error}")
    return error


def _convert(param, ctx, value: Any) -> Any:
    """A recipe value through the flag's own click type (a list for repeatable flags)."""
    if value is None:
        return None
    if getattr(param, "multiple", False):
        return param.process_value(ctx, [str(v) for v in (value if isinstance(value, list) else [value])])
    if isinstance(value, (list, dict)):
        raise ValueError(f"expected one value, got a {type(value).__name__}")
    if getattr(param, "is_flag", False) and not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    if isinstance(value, bool) and not getattr(param, "is_flag", False):  # click would read true as 1
        raise ValueError(f"expected a value for {param.opts[0]}, not {str(value).lower()} (YAML reads yes, no, on, "
                         "off, true and false as booleans: quote a text value)")
    return param.process_value(ctx, value if isinstance(value, bool) else str(value))


def require(values: dict[str, Any], name: str, flag: str) -> None:
    """Options a recipe may supply are optional to click; here they must have a value from one or the other."""
    if values.get(name) is None:
        key = flag[2:] if flag.startswith("--") else name
        raise BadInputError(f"{flag} is required: pass it on the command line or set '{key}:' in the --recipe")


def list_recipes() -> list[dict[str, str]]:
    """Shipped recipes: name, path and the first comment line as a description."""
    rows = []
    for path in sorted(RECIPES_DIR.glob("*.yaml")):
        first = next((line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#")), "#")
        rows.append({"name": path.stem, "path": str(path), "description": first.lstrip("# ").strip()})
    return rows


def describe_recipe(spec: Path | str) -> dict[str, Any]:
    """A recipe's settings with what each one is, from the option declarations (`configs.py`), and the training
    verbs whose options it fits."""
    from .configs import TRAINING_CONFIGS, default_of, options_by_key

    path = recipe_path(spec)
    settings = read_recipe(path)
    keys = {verb: options_by_key(config_class) for verb, config_class in TRAINING_CONFIGS.items()}
    verbs = [verb for verb, known in keys.items() if all(key in known for key, _, _ in settings)]
    rows = []
    for key, value, line in settings:
        declared = next((keys[verb][key] for verb in verbs), None)
        rows.append({"key": key, "value": value, "line": line, "help": declared.metadata["help"] if declared else None,
                     "default": default_of(declared) if declared else None})
    first = next((line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#")), "#")
    return {"name": path.stem, "path": str(path), "description": first.lstrip("# ").strip(), "verbs": verbs,
            "settings": rows}


def config_kwargs(config_class, values: dict[str, Any], **renamed: Any) -> dict[str, Any]:
    """The verb's parameters that are fields of its config dataclass, plus the renamed ones."""
    fields = config_class.__dataclass_fields__
    kwargs = {k: v for k, v in values.items() if k in fields}
    kwargs.update(renamed)
    return kwargs
