import gzip

import nibabel as nib
import numpy as np
import pytest

from giblet.fmri.integrity import check_complete, readable
from tests.fmri.conftest import GRID

N_BYTES = 352 + int(np.prod(GRID)) * 150 * 4  # header and extension flag, then 150 float32 volumes


@pytest.fixture
def run(write_nifti, rng):
    return write_nifti("run.nii", rng.standard_normal((*GRID, 150)).astype(np.float32))


def test_check_complete_counts_the_bytes_of_a_cut_nii(run):
    run.write_bytes(run.read_bytes()[:100_000])
    with pytest.raises(ValueError, match=rf"run.nii: truncated NIfTI file: it holds 100000 bytes but its header "
                                         rf"declares {N_BYTES} \(shape \(6, 7, 5, 150\)\); re-download or re-copy"):
        check_complete(run, nib.load(run))


def test_check_complete_gzip_trailer_and_crc(run):
    raw = run.read_bytes()
    assert len(raw) == N_BYTES
    gz = run.with_name("run.nii.gz")
    gz.write_bytes(gzip.compress(raw))
    check_complete(gz, nib.load(gz), verify_crc=True)
    gz.write_bytes(gzip.compress(raw)[:-8])  # the trailer is lost: the stream ends early
    with pytest.raises(ValueError, match=r"run.nii.gz: truncated or corrupt gzip/NIfTI file \(EOFError"):
        check_complete(gz, nib.load(gz))
    gz.write_bytes(gzip.compress(raw[:-4000]))  # a complete stream of a cut file
    with pytest.raises(ValueError, match=rf"holds {N_BYTES - 4000} bytes but its header declares {N_BYTES}"):
        check_complete(gz, nib.load(gz))


def test_readable_names_the_file_and_keeps_missing_file_errors(tmp_path):
    with pytest.raises(ValueError, match=r"a.npz: truncated or corrupt .npz file \(EOFError: cut\); re-download"):
        with readable(tmp_path / "a.npz", ".npz"):
            raise EOFError("cut")
    with pytest.raises(FileNotFoundError):
        with readable(tmp_path / "missing.nii.gz"):
            open(tmp_path / "missing.nii.gz", "rb")
