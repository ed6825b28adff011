"""Small NIfTI writers for the fMRI tests (every file is made in tmp_path)."""

import nibabel as nib
import numpy as np
import pytest

AFFINE = np.array([[3.0, 0, 0, -9], [0, 3.0, 0, -12], [0, 0, 3.0, -6], [0, 0, 0, 1]])
GRID = (6, 7, 5)


@pytest.fixture
def write_nifti(tmp_path):
    """``write(name, data, affine=AFFINE, tr_s=2.0) -> path`` of a NIfTI file in tmp_path (TR set on 4-D data)."""

    def write(name, data, affine=AFFINE, tr_s=2.0):
        img = nib.Nifti1Image(np.asarray(data), affine)
        if img.ndim == 4:
            img.header.set_zooms((*img.header.get_zooms()[:3], tr_s))
            img.header.set_xyzt_units("mm", "sec")
        path = tmp_path / name
        nib.save(img, path)
        return path

    return write
