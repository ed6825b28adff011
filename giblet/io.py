"""Atomic file writing: outputs appear whole or not at all."""

from __future__ import annotations

import contextlib
import glob
import gzip
import json
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["atomic_path", "write_bytes", "write_json", "save_npz", "save_nifti"]

_UMASK = os.umask(0)
os.umask(_UMASK)


def _partial_prefix(path):
    return f".{path.name}.partial."


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary file (``.<name>.partial.<random><suffixes>``) keeps ``path``'s suffixes so
    that writers which infer the format from the name (NIfTI, MP4, WAV) behave as for the
    final name. Partial files of ``path`` left by a killed run are removed first: one writer
    owns each output.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f"{glob.escape(_partial_prefix(path))}*"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_partial_prefix(path), suffix="".join(path.suffixes))
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json(path, obj) -> Path:
    """Write ``obj`` as indented, key-sorted JSON, atomically."""
    return write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def save_npz(path, *, compress=True, **arrays) -> Path:
    """Save arrays to a ``.npz`` atomically; ``compress=False`` writes it uncompressed (fast, for large float data)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            (np.savez_compressed if compress else np.savez)(f, **arrays)
    return Path(path)


def save_nifti(img, path) -> Path:
    """Save a nibabel image atomically; ``.nii.gz`` is gzipped with mtime 0 (byte-reproducible)."""
    data = img.to_bytes()
    if str(path).endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    return write_bytes(path, data)
