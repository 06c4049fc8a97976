"""Tests of tfi2i.files: atomic writes through a temporary name and a rename."""

import json
import os

import pytest

from tfi2i.files import atomic_path, write_json_atomic


def test_success_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.weights.h5"
    path.write_text("old")
    with atomic_path(path) as tmp:
        # Same folder (so the rename is atomic), same ending (writers read the format from it).
        assert os.path.dirname(tmp) == str(tmp_path)
        assert tmp.endswith("out.weights.h5") and tmp != str(path)
        with open(tmp, "w") as f:
            f.write("new")
        assert path.read_text() == "old"  # not visible before the block ends
    assert path.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.weights.h5"]


def test_exception_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="interrupted"):
        with atomic_path(path, suffix=".part") as tmp:
            assert tmp.endswith("out.json.part")
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("interrupted")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.json"]


def test_exception_before_writing_and_missing_folder(tmp_path):
    path = tmp_path / "new" / "deeper" / "out.npy"
    with pytest.raises(KeyError):
        with atomic_path(path):
            raise KeyError("nothing written")
    assert os.listdir(tmp_path / "new" / "deeper") == []  # folder made, nothing left in it


def test_write_json_atomic(tmp_path):
    path = tmp_path / "run" / "config.json"
    write_json_atomic(path, {"b": 1, "a": [1, 2]})
    write_json_atomic(str(path), {"b": 2})
    assert json.loads(path.read_text()) == {"b": 2}
    assert path.read_text().endswith("}\n")
    with pytest.raises(TypeError):
        write_json_atomic(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"b": 2}
    assert os.listdir(path.parent) == ["config.json"]
