from __future__ import annotations

import json
import os

import pytest

from rlsd_cli.fsutil import atomic_directory, atomic_write_json, replace_directory


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_interrupted_write_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": 1})

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_atomic_directory_appears_whole_or_not_at_all(tmp_path):
    final = tmp_path / "adapter"
    with pytest.raises(KeyboardInterrupt), atomic_directory(final) as tmp:
        (tmp / "part").write_text("half")
        raise KeyboardInterrupt
    assert not final.exists() and list(tmp_path.iterdir()) == []
    with atomic_directory(final) as tmp:
        (tmp / "whole").write_text("done")
    assert (final / "whole").read_text() == "done"


def test_replace_directory_swaps_in_the_new_one(tmp_path):
    final = tmp_path / "adapter"
    final.mkdir()
    (final / "v").write_text("1")
    new = tmp_path / "new"
    new.mkdir()
    (new / "v").write_text("2")
    replace_directory(new, final)
    assert (final / "v").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]
