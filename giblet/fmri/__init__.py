"""fMRI inputs: checks, loading, masks and ROI table, quality checks, cleaning, standardisation and ISC."""

from giblet.fmri.clean import FILTERS, CleanConfig, clean_pieces, fill_nan_samples, standardize
from giblet.fmri.isc import isc_vs_group_mean, loso_isc
from giblet.fmri.load import (
    HEADER_TR,
    MATRIX_FORMATS,
    bold_grid,
    check_fmri_input,
    check_fmri_inputs,
    is_matrix,
    read_bold,
    read_confounds,
    read_matrix,
)
from giblet.fmri.masks import MaskSpec, check_mask_input, grid_ijk, load_mask, mask_grid, mask_spec, roi_means, unmask
from giblet.fmri.prepared import PreparedFmri
from giblet.fmri.quality import Quality, find_bad
from giblet.fmri.stage import PrepareFmriConfig, run_group_isc, run_prepare_fmri

__all__ = [
    "FILTERS",
    "HEADER_TR",
    "MATRIX_FORMATS",
    "CleanConfig",
    "MaskSpec",
    "PrepareFmriConfig",
    "PreparedFmri",
    "Quality",
    "bold_grid",
    "check_fmri_input",
    "check_fmri_inputs",
    "check_mask_input",
    "clean_pieces",
    "fill_nan_samples",
    "find_bad",
    "grid_ijk",
    "is_matrix",
    "isc_vs_group_mean",
    "load_mask",
    "loso_isc",
    "mask_grid",
    "mask_spec",
    "read_bold",
    "read_confounds",
    "read_matrix",
    "roi_means",
    "run_group_isc",
    "run_prepare_fmri",
    "standardize",
    "unmask",
]
