"""Suite data loading and scoring without any model."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlsd_cli.errors import BadInputError
from rlsd_cli.suites import SUITES, get_suite
from rlsd_cli.suites.qa import contains_phrase


@pytest.mark.parametrize(
    ("response", "answer", "expected"),
    [
        ("The answer is 12.", "2", False),
        ("It has 2 wheels.", "2", True),
        ("Revenue was 1,000 euros", "1000", True),
        ("Ingrid Halvorsen leads it.", "ingrid halvorsen", True),
        ("Ingrid leads it; Halvorsen founded it.", "Ingrid Halvorsen", False),
        ("PROJECT KESTREL!", "Project Kestrel", True),
        ("Kestrels are birds", "Kestrel", False),
        ("", "x", False),
    ],
)
def test_qa_matches_whole_words_and_numbers(response, answer, expected):
    assert contains_phrase(response, answer) is expected


def test_qa_aliases_count(tmp_path):
    suite = get_suite("qa")
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"question": "Legs on a spider?", "answer": "8", "aliases": ["eight"]}) + "\n")
    (item,) = suite.load(path)
    assert item.key == 1
    assert suite.score(item, "Spiders have eight legs.")["correct"]
    assert not suite.score(item, "Spiders have 18 legs.")["correct"]


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "a", "answer": "b"}\n{"question": "c", "answer": \n')
    with pytest.raises(BadInputError, match=r"q\.jsonl:2: not valid JSON"):
        get_suite("qa").load(path)


def test_missing_field_names_file_and_line(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "a", "answer": "b"}\n\n{"question": "c"}\n')
    with pytest.raises(BadInputError, match=r"q\.jsonl:3: missing or empty 'answer'"):
        get_suite("qa").load(path)


def test_non_utf8_data_is_bad_input(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_bytes(b'{"question": "caf\xe9", "answer": "b"}\n')
    with pytest.raises(BadInputError, match="UTF-8"):
        get_suite("qa").load(path)


def test_unknown_suite():
    with pytest.raises(BadInputError, match="ifeval"):
        get_suite("mmlu")


def test_gsm8k_official_file_loads_with_line_keys():
    items = get_suite("gsm8k").load(None)  # the embedded copy
    assert len(items) == 1319
    assert items[0].key == 1 and items[0].record["answer"] == "18"
    assert "Janet" in items[0].messages[0]["content"]


def test_math_suite_accepts_prompt_or_question_and_hash_answers(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(
        json.dumps({"id": "a", "prompt": "2+2?", "answer": "4"}) + "\n"
        + json.dumps({"question": "3*3?", "answer": "so 9\n#### 9", "solution": "3*3=9"}) + "\n"
    )
    first, second = get_suite("math").load(path)
    assert (first.key, second.key) == ("a", 2)
    assert get_suite("math").score(second, "3 times 3 is 9.\nAnswer: 9")["correct"]
    assert not get_suite("math").score(first, "Answer: 5")["correct"]


def test_duplicate_keys_are_rejected(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": 1, "question": "a", "answer": "b"}\n{"id": 1, "question": "c", "answer": "d"}\n')
    with pytest.raises(BadInputError, match="duplicate"):
        get_suite("qa").load(path)


def test_every_suite_documents_its_key_field():
    for name, suite in SUITES.items():
        assert suite.key_field and suite.primary_metric and suite.description, name


# Any bytes or JSON a user may hand a loader: a clean one-line error or data, never a traceback.
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["prompt", "question", "answer", "aliases", "id", "key", "solution", "instruction_id_list",
                         "kwargs", "messages", "completion", "role", "content", "x"]), children, max_size=4),
    max_leaves=12,
)


def _loaders():
    from rlsd_cli.replay import read_chat_data, read_prompts

    return {**{name: get_suite(name).load for name in ("qa", "math", "gsm8k", "ifeval")},
            "chat data": read_chat_data, "prompts": read_prompts}


def _never_a_traceback(load, path):
    try:
        load(path)
    except BadInputError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 40)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(_JSON, min_size=1, max_size=3))
def test_random_json_records_never_crash_a_loader(tmp_path_factory, records):
    path = tmp_path_factory.mktemp("fuzz") / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    for load in _loaders().values():
        _never_a_traceback(load, path)


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 40)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
def test_random_bytes_never_crash_a_loader(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "data.jsonl"
    path.write_bytes(data)
    for load in _loaders().values():
        _never_a_traceback(load, path)


def test_qa_reports_accuracy_and_stale_rate_per_kind(tmp_path):
    path = tmp_path / "q.jsonl"
    rows = [
        {"id": "n1", "question": "Who runs the new lab?", "answer": "Ida Brandt", "kind": "new"},
        {"id": "u1", "question": "What is the portal called?", "answer": "Harbour", "stale": "Lantern", "kind": "updated"},
        {"id": "u2", "question": "How many days of leave?", "answer": "30", "stale": ["28", "twenty-eight"], "kind": "updated"},
        {"id": "k1", "question": "Where is the office?", "answer": "Harnby", "kind": "kept"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    suite = get_suite("qa")
    items = suite.load(path)
    responses = ["Ida Brandt runs it.", "It is called Lantern.", "Thirty: 30 days, not 28.", "In Oslo."]
    metrics = suite.aggregate([suite.score(item, text) for item, text in zip(items, responses, strict=True)])
    assert metrics["accuracy"] == 0.5 and metrics["accuracy/new"] == 1.0 and metrics["accuracy/kept"] == 0.0
    assert metrics["accuracy/updated"] == 0.5
    # Both updated answers still give a stale value (the second alongside the new one): stale counts either way.
    assert metrics["stale_rate"] == 1.0 and metrics["stale_rate/updated"] == 1.0 and "stale_rate/new" not in metrics


def test_qa_rejects_a_malformed_stale_or_kind(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": "a", "stale": {"old": "b"}}) + "\n")
    with pytest.raises(BadInputError, match=r"q\.jsonl:1: 'stale'"):
        get_suite("qa").load(path)
    path.write_text(json.dumps({"question": "q", "answer": "a", "kind": "two words"}) + "\n")
    with pytest.raises(BadInputError, match=r"q\.jsonl:1: 'kind'"):
        get_suite("qa").load(path)
