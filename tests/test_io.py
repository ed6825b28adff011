"""Outputs appear whole or not at all, and a killed writer's partial files do not pile up."""

import pytest

from giblet.io import atomic_path, write_json


def test_atomic_path_leaves_nothing_when_the_writer_fails(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "model.pt") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_removes_partial_files_of_a_killed_run(tmp_path):
    stale = tmp_path / ".checkpoint.pt.partial.k1ll3d.pt"  # as SIGKILL leaves it
    stale.write_bytes(b"x" * 1000)
    other = tmp_path / ".baselines.joblib.partial.abc.joblib"  # another output's: not ours to remove
    other.write_bytes(b"y")
    with atomic_path(tmp_path / "checkpoint.pt") as tmp:
        assert tmp.name.startswith(".checkpoint.pt.partial.") and tmp.suffix == ".pt"
        tmp.write_bytes(b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".baselines.joblib.partial.abc.joblib", "checkpoint.pt"]
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"whole"


def test_write_json_is_sorted_and_whole(tmp_path):
    write_json(tmp_path / "s.json", {"b": 1, "a": [1, 2]})
    assert (tmp_path / "s.json").read_text().startswith('{\n  "a"')
