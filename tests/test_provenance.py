"""A run's key follows the content of its inputs and its settings, not where the files lie."""

from giblet.provenance import code_digest, run_key


def _files(folder, contents):
    folder.mkdir()
    paths = []
    for name, content in contents.items():
        (folder / name).write_bytes(content)
        paths.append(folder / name)
    return paths


def test_run_key_changes_with_a_file_content_or_a_setting(tmp_path):
    original = _files(tmp_path / "a", {"sub-01.npz": b"bold", "codes.npz": b"codes"})
    moved = _files(tmp_path / "b", {"codes.npz": b"codes", "sub-01.npz": b"bold"})
    changed = _files(tmp_path / "c", {"sub-01.npz": b"bold, high-passed", "codes.npz": b"codes"})
    swapped = _files(tmp_path / "d", {"sub-01.npz": b"codes", "codes.npz": b"bold"})
    key = run_key(original, {"split": [0.7, 0.15, 0.15]})
    assert run_key(moved, {"split": [0.7, 0.15, 0.15]}) == key  # another folder, another order
    assert run_key(changed, {"split": [0.7, 0.15, 0.15]}) != key
    assert run_key(swapped, {"split": [0.7, 0.15, 0.15]}) != key
    assert run_key(original, {"split": [0.8, 0.1, 0.1]}) != key


def test_code_digest_is_a_sha256_of_the_package():
    assert len(code_digest()) == 64 and code_digest() == code_digest()
