"""What a result depends on, as one key: content hashes of its input files, its settings and giblet's code.

Training state saved under a key is reused only by a run with the same key, so a checkpoint never
outlives its inputs: new data, another split, other settings or another version of the code all give
another key and start afresh.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

__all__ = ["file_digest", "code_digest", "run_key"]

_PACKAGE = Path(__file__).resolve().parent


def file_digest(path) -> str:
    """SHA-256 of a file's content (hex), read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@cache
def code_digest() -> str:
    """SHA-256 over giblet's own source files (every ``.py`` and schema), in path order."""
    digest = hashlib.sha256()
    for path in sorted(p for pattern in ("*.py", "*.yaml") for p in _PACKAGE.rglob(pattern)):
        digest.update(str(path.relative_to(_PACKAGE)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def run_key(input_files, settings) -> str:
    """One key for a run: the content of ``input_files``, the JSON-able ``settings`` and giblet's code.

    Parameters
    ----------
    input_files : iterable of path
        Files the run reads (their base names and contents count, not their folder or order).
    settings : dict
        Every option the run depends on (configs, seed, ...), JSON-serialisable.

    Returns
    -------
    str
        SHA-256 hex digest.
    """
    contents = sorted((Path(p).name, file_digest(p)) for p in input_files)
    payload = json.dumps({"inputs": contents, "settings": settings, "code": code_digest()}, sort_keys=True,
                         default=str)
    return hashlib.sha256(payload.encode()).hexdigest()
