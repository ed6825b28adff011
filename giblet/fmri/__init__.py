"""fMRI inputs: checks, loading, masks and ROI table, quality checks, cleaning, standardisation and ISC."""

from giblet.fmri.isc import loso_isc
from giblet.fmri.load import check_fmri_inputs
from giblet.fmri.masks import check_mask_input
from giblet.fmri.prepared import PreparedFmri
from giblet.fmri.stage import PrepareFmriConfig, run_group_isc, run_prepare_fmri

__all__ = [
    "PrepareFmriConfig", "PreparedFmri", "run_prepare_fmri", "run_group_isc", "loso_isc", "check_fmri_inputs",
    "check_mask_input",
]
