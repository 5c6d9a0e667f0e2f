"""Reading a folder of documents: every format, and every way a file can be unusable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from docfactory import minimal_docx, minimal_pdf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import run_cli
from rlsd_cli.errors import BadInputError
from rlsd_cli.ingest import normalize_whitespace, read_corpus

DOCS = Path(__file__).parent / "data" / "docs"


def test_the_test_corpus_reads_every_format_and_drops_html_scripts():
    corpus = read_corpus(DOCS)
    assert corpus.files_read == 5 and not corpus.skipped
    texts = {d.path.split("#")[0]: d.text for d in corpus.documents}
    assert set(texts) == {"company_history.md", "employee_handbook.md", "faq.jsonl", "product_sheet.html", "travel_policy.txt"}
    html = texts["product_sheet.html"]
    assert "Kavrin Cells" in html
    assert "trackPageView" not in html and "spec-table" not in html  # script and style are not content
    titles = {d.path: d.title for d in corpus.documents}
    assert titles["company_history.md"] == "A Short History of Velora Dynamics"
    assert sum(1 for d in corpus.documents if d.path.startswith("faq.jsonl#")) == 6


def test_pdf_and_docx(tmp_path):
    (tmp_path / "note.pdf").write_bytes(minimal_pdf(["The warehouse is in Ostvik.", "It opened in 2019."], "Warehouse note"))
    minimal_docx(tmp_path / "memo.docx", "Memo", ["The retreat is called Skarva Days."])
    corpus = read_corpus(tmp_path)
    by_path = {d.path: d for d in corpus.documents}
    assert "Ostvik" in by_path["note.pdf"].text and by_path["note.pdf"].title == "Warehouse note"
    assert "Skarva Days" in by_path["memo.docx"].text and by_path["memo.docx"].title == "Memo"


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf", "unreadable PDF"),
        ("empty.txt", b"", "empty file"),
        ("latin1.txt", "caf\u00e9 cr\u00e8me".encode("latin-1"), "not UTF-8"),
        ("blob.md", b"\x00\x01\x02binary\x00", "binary content"),
        ("image.png", b"\x89PNG\r\n\x1a\n", "unsupported file type"),
        ("broken.docx", b"PK\x03\x04 not a zip", "unreadable DOCX"),
        ("bad.jsonl", b'{"text": "fine"}\n{"text": \n', "line 2 is not valid JSON"),
        ("fields.jsonl", b'{"title": "no text"}\n', "needs 'text', 'messages' or 'prompt'+'completion'"),
        # One bad record skips the whole file: none of its good records are trained on either.
        ("mixed.jsonl", b'{"text": "Alone this would be trained on."}\n{"title": "no text"}\n', "needs 'text'"),
        ("deep.jsonl", b"[" * 100000 + b"\n", "nested too deeply"),
    ],
)
def test_unusable_files_are_skipped_with_a_reason_or_fail_under_strict(tmp_path, name, content, reason):
    (tmp_path / "good.md").write_text("# Good\nThe office dog is named Tjorven.\n")
    (tmp_path / name).write_bytes(content)
    corpus = read_corpus(tmp_path)
    assert [d.path for d in corpus.documents] == ["good.md"]
    ((path, why),) = corpus.skipped
    assert path == name and reason in why
    with pytest.raises(BadInputError, match=name):
        read_corpus(tmp_path, strict=True)


def test_links_leading_out_of_the_folder_or_in_circles_are_skipped_with_a_reason(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("The vault code is 4471.")
    (outside / "more.md").write_text("# More\nThe lab is on floor nine.")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text("# Good\nThe office dog is named Tjorven.")
    (docs / "inside-link.md").symlink_to(docs / "good.md")  # a link within the folder is read (then a duplicate)
    (docs / "secret.txt").symlink_to(outside / "secret.txt")
    (docs / "linked-folder").symlink_to(outside, target_is_directory=True)
    (docs / "loop.md").symlink_to(docs / "loop.md")
    corpus = read_corpus(docs)
    assert [d.path for d in corpus.documents] == ["good.md"] and corpus.duplicates == 1
    reasons = dict(corpus.skipped)
    assert "outside the folder" in reasons["secret.txt"]
    assert "folder; not followed" in reasons["linked-folder"]
    assert "loop" in reasons["loop.md"]
    assert "4471" not in "".join(d.text for d in corpus.documents)
    with pytest.raises(BadInputError, match="linked-folder"):
        read_corpus(docs, strict=True)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-32-be"])
def test_unicode_with_a_byte_order_mark_is_read_as_text(tmp_path, encoding):
    bom = {"utf-16-be": b"\xfe\xff", "utf-32-be": b"\x00\x00\xfe\xff"}.get(encoding, b"")
    (tmp_path / "notes.txt").write_bytes(bom + "The office dog is named Tjorven.".encode(encoding))
    (text,) = [d.text for d in read_corpus(tmp_path).documents]
    assert text == "The office dog is named Tjorven."


def test_a_file_passed_by_name_is_read_wherever_its_link_leads(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "notes.md").write_text("# Notes\nThe office dog is named Tjorven.")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "link.md").symlink_to(tmp_path / "elsewhere" / "notes.md")
    assert "Tjorven" in read_corpus(tmp_path / "docs" / "link.md").documents[0].text


def test_a_line_repeated_many_times_makes_one_fact(tmp_path):
    from rlsd_cli.augment import rule_based_pairs

    (tmp_path / "a.md").write_text("# Office\n" + "The office dog is named Tjorven. " * 2000)
    (tmp_path / "b.md").write_text("# Office\nThe office dog is named Tjorven.")
    many, once = (rule_based_pairs(d) for d in read_corpus(tmp_path).documents)
    assert [(p.question, p.answer) for p in many] == [(p.question, p.answer) for p in once]


def test_empty_folder_and_missing_folder_are_errors(tmp_path):
    with pytest.raises(BadInputError, match="no usable text"):
        read_corpus(tmp_path)
    with pytest.raises(BadInputError, match="no such folder"):
        read_corpus(tmp_path / "missing")


def test_only_binary_files_is_an_error_naming_them(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"\x00\xff" * 10)
    (tmp_path / "b.txt").write_bytes(b"\x00\x00\x00")
    with pytest.raises(BadInputError, match="a.bin: unsupported"):
        read_corpus(tmp_path)


def test_duplicates_and_hidden_files_are_dropped(tmp_path):
    (tmp_path / "a.txt").write_text("Same text here.")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("Same   text here.\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config.txt").write_text("not a document")
    corpus = read_corpus(tmp_path)
    assert [d.path for d in corpus.documents] == ["a.txt"] and corpus.duplicates == 1


def test_jsonl_chats_and_prompt_completion(tmp_path):
    lines = [
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]},
        {"prompt": "Name our dog.", "completion": "Tjorven."},
        {"text": "Plain text record.", "title": "Record"},
    ]
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    corpus = read_corpus(tmp_path)
    assert len(corpus.chats) == 2 and corpus.documents[0].title == "Record"


def test_nothing_is_written_into_the_data_folder(tmp_path):
    (tmp_path / "a.md").write_text("# A\nThe office dog is named Tjorven.")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    read_corpus(tmp_path)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_whitespace_is_normalised_keeping_paragraphs():
    assert normalize_whitespace("a \t b\r\n\r\n\r\n\nc\u00a0d  ") == "a b\n\nc d"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".md", ".txt", ".html", ".pdf", ".docx", ".jsonl", ".json", ".rst"]))
def test_random_bytes_never_crash(tmp_path_factory, data, suffix):
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / f"file{suffix}").write_bytes(data)
    try:
        corpus = read_corpus(folder)
    except BadInputError as exc:
        assert "\n" not in str(exc)
    else:
        assert corpus.documents or corpus.chats


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                          lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
                          max_leaves=10))
def test_random_json_never_crashes(tmp_path_factory, value):
    folder = tmp_path_factory.mktemp("fuzzjson")
    (folder / "a.jsonl").write_text(json.dumps(value) + "\n")
    (folder / "b.json").write_text(json.dumps(value))
    try:
        read_corpus(folder)
    except BadInputError as exc:
        assert "\n" not in str(exc)


def test_cli_dry_run_shows_the_plan_without_training(tmp_path):
    result = run_cli("sft", str(DOCS), "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["documents"] == 10 and plan["chunks"] > 0 and plan["augmented_pairs"] > 24
    assert 0.25 <= plan["chat_fraction"] <= 0.35
    assert plan["augmentation_samples"]


def test_cli_empty_folder_exits_2(tmp_path):
    result = run_cli("sft", str(tmp_path), "--dry-run")
    assert result.returncode == 2 and "no usable text" in result.stderr
