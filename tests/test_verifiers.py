"""The math answer extraction and the verifier specs shared by `eval math|gsm8k` and `reason`."""

from __future__ import annotations

import pytest

from rlsd_cli.errors import BadInputError
from rlsd_cli.verifiers import (
    answers_match,
    build_verifier,
    checkable_reference,
    extract_final_answer,
    gsm8k_reference,
    parse_number,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("She has 3 apples, then 4 more, so 7 in total.", "7"),
        ("Step 1: 12 + 30 = 42\n#### 42", "42"),
        ("The answer is 18. Later she buys 2 more.", "18"),
        ("Answer: 1,250", "1,250"),
        ("Now we have 12, which is the total weight.", "12"),
        ("so the result is \\boxed{\\frac{3}{4}}", "\\frac{3}{4}"),
        ("I do not know.", None),
    ],
)
def test_extract_final_answer(text, expected):
    assert extract_final_answer(text) == expected


@pytest.mark.parametrize(
    ("predicted", "reference", "same"),
    [
        ("$1,250.00", "1250", True),
        ("0.75", "3/4", True),
        ("\\frac{3}{4}", "0.75", True),
        ("12", "2", False),
        ("-5", "5", False),
        (None, "5", False),
    ],
)
def test_answers_match_by_value(predicted, reference, same):
    assert answers_match(predicted, reference) is same


def test_parse_number_rejects_words():
    assert parse_number("twelve") is None
    assert parse_number("12%") == 12


@pytest.mark.parametrize(("reference", "checkable"), [
    ("18", True), ("1,072", True), ("-3.5", True), ("3/4", True), ("\\frac{1}{2}", True), ("$\\sqrt{2}$", True),
    ("2x+1", True), ("x", True), ("\\pi", True), ("two", False), ("Paris", False), ("", False),
])
def test_a_reference_no_answer_could_match_is_told_apart(reference, checkable):
    assert checkable_reference(reference) is checkable
    if checkable and reference:  # a checkable reference is matched by itself, boxed as a model would write it
        assert answers_match(extract_final_answer(f"\\boxed{{{reference.strip('$')}}}"), reference)


def test_an_expression_is_not_matched_by_its_leading_number():
    assert not answers_match("2", "2x+1") and answers_match("2x + 1", "2x+1")


def test_gsm8k_reference_takes_the_number_after_hashes():
    assert gsm8k_reference("Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 1,072") == "1072"


def test_weighted_combination_and_regex():
    verifier = build_verifier(["0.5*math", "0.5*regex:^Answer:"])
    assert verifier("Answer: 7", {"answer": "7"}) == 1.0
    assert verifier("It is 7", {"answer": "7"}) == 0.5
    assert verifier("Answer: 8", {"answer": "7"}) == 0.5


def test_python_plugin_that_raises_scores_zero_and_is_counted(tmp_path, monkeypatch):
    (tmp_path / "my_plugin.py").write_text(
        "def reward(completion, example):\n    if 'boom' in completion:\n        raise RuntimeError('boom')\n    return 1.0\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    verifier = build_verifier("python:my_plugin:reward")
    assert verifier("fine", {}) == 1.0
    assert verifier("boom", {}) == 0.0
    assert verifier.failures == 1 and "RuntimeError" in verifier.last_error


def test_python_plugin_returning_nan_scores_zero_and_is_counted(tmp_path, monkeypatch):
    (tmp_path / "nan_plugin.py").write_text("def reward(completion, example):\n    return float('nan')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    verifier = build_verifier(["python:nan_plugin:reward", "0.5*exact"])
    assert verifier("7", {"answer": "7"}) == 0.5
    assert verifier.failures == 1 and "nan" in verifier.last_error


def test_python_plugin_that_fails_to_import_is_a_one_line_error(tmp_path, monkeypatch):
    (tmp_path / "broken_plugin.py").write_text("def reward(completion, example)\n    return 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BadInputError, match="importing broken_plugin failed .*SyntaxError.*fix the module"):
        build_verifier("python:broken_plugin:reward")


@pytest.mark.parametrize("spec", ["maths", "regex:(", "python:nomodule_xyz:f", "python:justmodule"])
def test_bad_verifier_specs(spec):
    with pytest.raises(BadInputError):
        build_verifier(spec)
