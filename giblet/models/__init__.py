"""The multimodal fMRI autoencoder: architecture, losses and lesions."""

from giblet.models.autoencoder import GibletAutoencoder
from giblet.models.config import AutoencoderConfig, ROUTE_BANDS
from giblet.models.lagged_linear import LaggedLinear
from giblet.models.lesion import LESION_MODES, lesion
from giblet.models.size import count_parameters

__all__ = [
    "GibletAutoencoder", "AutoencoderConfig", "LaggedLinear", "lesion", "LESION_MODES", "count_parameters",
    "ROUTE_BANDS",
]
