"""Each option of the training verbs is declared once (configs.py); its CLI flag, recipe key and checks come from
that declaration."""

from __future__ import annotations

import dataclasses
import math

import pytest
import typer

from rlsd_cli.cli import app
from rlsd_cli.configs import TRAINING_CONFIGS, default_of, flag_name, options_by_key
from rlsd_cli.errors import BadInputError
from rlsd_cli.recipes import recipe_keys

NOT_OPTIONS = {"ctx", "recipe", "json_out"}  # the command's own parameters, the same for every verb
REQUIRED = {"sft": {"docs": "d"}, "recover": {"from_run": "runs/x"}, "reason": {"data": "d"}}


def _command(verb: str):
    return typer.main.get_command(app).commands[verb]


@pytest.mark.parametrize("verb", TRAINING_CONFIGS)
def test_every_declared_option_is_a_flag_and_a_recipe_key_and_nothing_else_is(verb):
    command, declared = _command(verb), {f.name: f for f in dataclasses.fields(TRAINING_CONFIGS[verb])}
    params = {p.name: p for p in command.params if p.name not in NOT_OPTIONS}
    assert set(params) == set(declared)
    keys = recipe_keys(command)
    for name, f in declared.items():
        if f.metadata["argument"]:
            assert params[name].param_type_name == "argument" and name in keys
        else:
            assert flag_name(f) in params[name].opts
            assert flag_name(f)[2:] in keys and keys[flag_name(f)[2:]] is params[name]
        assert params[name].default == default_of(f) or (params[name].default is None and default_of(f) is None)
    assert set(options_by_key(TRAINING_CONFIGS[verb])) <= set(keys)


def _out_of_bounds(bounds: dict, integer: bool) -> list:
    step = 1 if integer else 1e-3
    values = []
    if "ge" in bounds:
        values.append(bounds["ge"] - step)
    if "gt" in bounds:
        values.append(bounds["gt"])
    if "le" in bounds:
        values.append(bounds["le"] + step)
    if "lt" in bounds:
        values.append(bounds["lt"])
    return [type(v)(v) if not integer else int(v) for v in values]


def _declared_cases():
    for verb, config_class in TRAINING_CONFIGS.items():
        for f in dataclasses.fields(config_class):
            integer = isinstance(default_of(f), int) and not isinstance(default_of(f), bool) or f.type in ("int", "int | None")
            for value in _out_of_bounds(f.metadata["bounds"], integer):
                yield pytest.param(verb, f.name, value, id=f"{verb}-{f.name}={value}")
            if f.metadata["choices"]:
                yield pytest.param(verb, f.name, "no-such-choice", id=f"{verb}-{f.name}=bad-choice")
            if f.type in ("float", "float | None"):
                for value in (math.nan, math.inf):
                    yield pytest.param(verb, f.name, value, id=f"{verb}-{f.name}={value}")


@pytest.mark.parametrize(("verb", "name", "value"), list(_declared_cases()))
def test_every_declared_bound_and_choice_is_enforced(verb, name, value):
    config_class = TRAINING_CONFIGS[verb]
    with pytest.raises(BadInputError, match=flag_name(next(f for f in dataclasses.fields(config_class) if f.name == name))):
        config_class(**REQUIRED[verb], **{name: value})


@pytest.mark.parametrize("verb", TRAINING_CONFIGS)
def test_the_defaults_pass_their_own_checks(verb):
    config = TRAINING_CONFIGS[verb](**REQUIRED[verb])
    assert config.seed == 0
