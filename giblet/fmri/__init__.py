"""fMRI loading, masks, cleaning and inter-subject correlation."""

from giblet.fmri.isc import loso_isc

__all__ = ["loso_isc"]
