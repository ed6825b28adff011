"""Truncated and corrupt input files: found early, and named in the error with the fix.

A copy cut short (an interrupted download or ``cp``) still opens: a NIfTI header sits in its
first bytes, so ``nibabel.load`` succeeds and the reader fails much later with a bare
``EOFError``; a damaged byte inside a gzip stream may even be read as wrong values, since
nibabel never checks the CRC. :func:`check_complete` finds a cut from the header and the gzip
trailer alone, and damage by one decompression; :func:`readable` turns any low-level read
error into a ValueError naming the file.
"""

from __future__ import annotations

import gzip
import struct
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

__all__ = ["check_complete", "readable"]

_FIX = "re-download or re-copy the file"
_READ_ERRORS = (EOFError, OSError, ValueError, zlib.error, zipfile.BadZipFile, struct.error, ImageFileError,
                HeaderDataError)
_GZIP_CHUNK_BYTES = 1 << 24


@contextmanager
def readable(path, kind="gzip/NIfTI"):
    """Re-raise a reader's error on a damaged file as ``ValueError("<path>: truncated or corrupt <kind> ...")``.

    Wrap only the library calls that read ``path``: a ValueError raised inside is rewritten too.
    A missing file still raises FileNotFoundError.
    """
    try:
        yield
    except FileNotFoundError:
        raise
    except _READ_ERRORS as err:
        raise ValueError(f"{path}: truncated or corrupt {kind} file ({type(err).__name__}: {err}); {_FIX}") from err


def check_complete(path, img, verify_crc=False):
    """Raise ValueError when a ``.nii``/``.nii.gz`` file is shorter than its header declares, or damaged.

    Reads no voxel data unless needed. A ``.nii.gz`` file is complete when its gzip trailer
    (last 4 bytes: the uncompressed size mod 2**32) equals header offset + data size; when it
    does not (a truncated file, or a valid multi-member gzip), or with ``verify_crc``, the
    stream is decompressed once, without keeping it, which also checks its CRC. An uncompressed
    ``.nii`` has no checksum: only its size is checked.

    Parameters
    ----------
    path : path
    img : nibabel image
        ``nibabel.load(path)``.
    verify_crc : bool, default=False
        Decompress the whole stream to find damage inside a complete file (nibabel does not check
        the CRC: such damage would be read as wrong values). Costs one decompression.
    """
    path = Path(path)
    name = path.name.lower()
    if not name.endswith((".nii", ".nii.gz")):
        return
    n_expected = int(img.dataobj.offset) + int(np.prod(img.shape)) * img.header.get_data_dtype().itemsize
    if name.endswith(".gz"):
        with readable(path):
            with open(path, "rb") as f:
                f.seek(-4, 2)
                if struct.unpack("<I", f.read(4))[0] == n_expected % 2**32 and not verify_crc:
                    return
            n_bytes = 0
            with gzip.open(path, "rb") as f:
                while chunk := f.read(_GZIP_CHUNK_BYTES):
                    n_bytes += len(chunk)
    else:
        n_bytes = path.stat().st_size
    if n_bytes < n_expected:
        raise ValueError(
            f"{path}: truncated NIfTI file: it holds {n_bytes} bytes but its header declares {n_expected} "
            f"(shape {img.shape}); {_FIX}"
        )
