"""IFEval scoring: every one of the 25 instruction types with a response that passes and one that fails,
run through the suite (lm-eval's checkers, loaded offline), plus the four metrics on the official data."""

from __future__ import annotations

import json
import socket

import pytest

from rlsd_cli.suites import Item, get_suite

CASES = [
    # (instruction id, kwargs, passing response, failing response)
    ("change_case:capital_word_frequency", {"capital_relation": "less than", "capital_frequency": 2},
     "This is VERY calm news.", "THIS IS VERY LOUD NEWS."),
    ("change_case:english_capital", {}, "ALL OF THIS IS IN CAPITALS.", "Not all of this is in capitals."),
    ("change_case:english_lowercase", {}, "all of this is in lowercase.", "Some of This is not."),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Tell me a joke."},
     "Tell me a joke. Why did the chicken cross the road?", "Why did the chicken cross the road?"),
    ("combination:two_responses", {}, "First answer.\n******\nSecond answer.", "Only one answer."),
    ("detectable_content:number_placeholders", {"num_placeholders": 2},
     "Dear [name], meet me at [address].", "Dear friend, meet me at home."),
    ("detectable_content:postscript", {"postscript_marker": "P.S."},
     "Hello there.\n\nP.S. See you soon.", "Hello there. See you soon."),
    ("detectable_format:constrained_response", {}, "My answer is yes.", "Probably, I think."),
    ("detectable_format:json_format", {}, '{"answer": 42}', "answer: 42"),
    ("detectable_format:multiple_sections", {"section_spliter": "SECTION", "num_sections": 2},
     "SECTION 1\nIntro.\nSECTION 2\nBody.", "Intro and body without sections."),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "Intro\n* first\n* second", "* one\n* two\n* three\n* four\n* five"),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2},
     "This is *important* and *urgent*.", "This is *important* only."),
    ("detectable_format:title", {}, "<<A Poem>>\nRoses are red.", "A Poem\nRoses are red."),
    ("keywords:existence", {"keywords": ["correlated", "experiencing"]},
     "We are experiencing correlated failures.", "We are seeing related failures."),
    ("keywords:forbidden_words", {"forbidden_words": ["rock"]}, "I like jazz music.", "I like rock music."),
    ("keywords:frequency", {"relation": "at least", "keyword": "story", "frequency": 2},
     "A story within a story.", "A tale within a tale."),
    ("keywords:letter_frequency", {"let_relation": "at least", "letter": "z", "let_frequency": 3},
     "Zany zebras zigzag.", "Calm horses walk."),
    ("language:response_language", {"language": "fr"},
     "Ceci est une phrase en français, écrite pour le test.", "This sentence is written in English for the test."),
    ("length_constraints:nth_paragraph_first_word", {"first_word": "weekend", "num_paragraphs": 2, "nth_paragraph": 2},
     "My plans.\n\nWeekend trips are fun.", "My plans.\n\nTrips are fun on the weekend."),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2},
     "First paragraph.\n***\nSecond paragraph.", "Just one paragraph."),
    ("length_constraints:number_sentences", {"relation": "less than", "num_sentences": 3},
     "Dr. Smith arrived. He sat down.", "One. Two. Three. Four."),
    ("length_constraints:number_words", {"relation": "at least", "num_words": 5},
     "one two three four five six", "too short"),
    ("punctuation:no_comma", {}, "No commas here at all.", "Well, this has one."),
    ("startend:end_checker", {"end_phrase": "Any other questions?"},
     "That is all. Any other questions?", "Any other questions? That is all."),
    ("startend:quotation", {}, '"Wrapped in double quotes."', "Not wrapped."),
]


@pytest.fixture(scope="module")
def suite():
    return get_suite("ifeval")


def test_cases_cover_all_25_instruction_types():
    from rlsd_cli.offline_nlp import ifeval_registry

    assert {case[0] for case in CASES} == set(ifeval_registry().INSTRUCTION_DICT)
    assert len(CASES) == 25


@pytest.mark.parametrize(("instruction", "kwargs", "good", "bad"), CASES, ids=[c[0] for c in CASES])
def test_instruction_passes_and_fails(suite, instruction, kwargs, good, bad):
    item = Item(key=1, messages=[], record={"prompt": "Tell me a joke.", "instruction_id_list": [instruction], "kwargs": [kwargs]})
    assert suite.score(item, good)["strict"] == [True]
    assert suite.score(item, bad)["strict"] == [False]
    assert suite.score(item, bad)["loose"] == [False]


def test_loose_forgives_a_markdown_wrapper(suite):
    item = Item(key=1, messages=[], record={"prompt": "p", "instruction_id_list": ["startend:quotation"], "kwargs": [{}]})
    verdict = suite.score(item, '**"Wrapped in quotes."**')
    assert verdict["strict"] == [False] and verdict["loose"] == [True]


def test_official_file_scores_the_four_metrics_with_no_network(suite, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    items = suite.load(None)  # the embedded copy
    assert len(items) == 541
    verdicts = [suite.score(item, item.record["prompt"]) for item in items]  # echoing the prompt back
    metrics = suite.aggregate(verdicts)
    # Reference values of lm-eval 0.4.13's checkers for this echo baseline, computed in a separate venv.
    assert metrics == pytest.approx(
        {"prompt_level_strict_acc": 0.2495, "inst_level_strict_acc": 0.3609,
         "prompt_level_loose_acc": 0.2976, "inst_level_loose_acc": 0.4101}, abs=1e-4
    )


def test_unknown_instruction_id_names_the_line(suite, tmp_path):
    path = tmp_path / "if.jsonl"
    path.write_text(json.dumps({"key": 1, "prompt": "p", "instruction_id_list": ["made:up"], "kwargs": [{}]}) + "\n")
    from rlsd_cli.errors import BadInputError

    with pytest.raises(BadInputError, match=r"if\.jsonl:1: unknown instruction id"):
        suite.load(path)
