"""fMRI inputs: checks, loading, masks and ROI table, quality checks, cleaning, standardisation and ISC."""

from giblet._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "group_isc": ["GroupIsc"],
    "isc": ["loso_isc"],
    "load": ["check_fmri_inputs"],
    "masks": ["check_mask_input"],
    "prepared": ["PreparedFmri"],
    "stage": ["PrepareFmriConfig", "run_group_isc", "run_prepare_fmri"],
})
