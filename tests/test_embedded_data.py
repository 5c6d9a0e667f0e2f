"""The evaluation data rlsd ships: byte-exact copies with their licenses, read when no --data is given; and no
file of the repository depends on a folder beside the checkout."""

from __future__ import annotations

import hashlib
import re

import pytest

from conftest import REPO
from rlsd_cli.suites import get_suite
from rlsd_cli.suites.base import EMBEDDED_DATA_DIR

SOURCES = EMBEDDED_DATA_DIR / "SOURCES.md"


def _recorded_hashes() -> dict[str, str]:
    """file -> SHA-256 from the SOURCES.md table."""
    return {m.group(1): m.group(2) for m in re.finditer(r"^\| `([^`]+)` \|.*\| ([0-9a-f]{64}) \|$", SOURCES.read_text(), re.M)}


@pytest.mark.parametrize(("suite_name", "lines", "license_word"), [("ifeval", 541, "Apache License"), ("gsm8k", 1319, "MIT License")])
def test_embedded_copy_is_the_published_file_with_its_license(suite_name, lines, license_word):
    path = get_suite(suite_name).data_file(None)
    relative = path.relative_to(EMBEDDED_DATA_DIR).as_posix()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == _recorded_hashes()[relative]
    assert len(path.read_bytes().splitlines()) == lines
    assert license_word in (path.parent / "LICENSE").read_text()
    assert len(get_suite(suite_name).load(None)) == lines


def test_hub_stays_an_option_and_a_path_still_wins(tmp_path):
    suite = get_suite("gsm8k")
    assert suite.data_file("hub") is None  # read from the hub by its id
    own = tmp_path / "mine.jsonl"
    assert suite.data_file(own) == own


def _text_files():
    skip = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", "runs", ".cache"}
    for path in REPO.rglob("*"):
        if path.is_file() and not skip.intersection(path.relative_to(REPO).parts) and ".egg-info" not in str(path):
            try:
                yield path, path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue  # binary


def test_no_file_names_a_folder_beside_the_checkout():
    """Data the product needs ships inside it: a path out of the repository works only on one machine."""
    needles = (".." + "/shared", "shared/" + "benchmarks")
    offenders = [str(path.relative_to(REPO)) for path, text in _text_files() if any(n in text for n in needles)]
    assert not offenders
