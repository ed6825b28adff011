"""The multimodal fMRI autoencoder: architecture, losses and lesions."""

from giblet.models.autoencoder import GibletAutoencoder
from giblet.models.config import AUDIO_MERGES, MODALITY_INPUTS, MODALITY_TARGETS, ROUTE_BANDS, AutoencoderConfig
from giblet.models.dropout import modality_keep_mask
from giblet.models.heads import HEADS, TextHead
from giblet.models.lesion import LESION_MODES, lesion, roi_union
from giblet.models.losses import (
    FMRI_LOSSES,
    RECONSTRUCTION_LOSSES,
    fmri_losses,
    reconstruction_losses,
    text_cosine,
    voxel_mse,
    voxel_neg_pearson,
)
from giblet.models.size import count_parameters, parameter_counts
from giblet.models.temporal import DelayMixer, shift_trs
from giblet.models.towers import TOWERS, AudioTower, CodebookEmbedding, FeatureTower
from giblet.models.lagged_linear import LaggedLinear

__all__ = [
    "AutoencoderConfig",
    "GibletAutoencoder",
    "MODALITY_INPUTS",
    "ROUTE_BANDS",
    "MODALITY_TARGETS",
    "AUDIO_MERGES",
    "CodebookEmbedding",
    "AudioTower",
    "FeatureTower",
    "TOWERS",
    "TextHead",
    "HEADS",
    "LaggedLinear",
    "DelayMixer",
    "shift_trs",
    "modality_keep_mask",
    "voxel_mse",
    "voxel_neg_pearson",
    "text_cosine",
    "FMRI_LOSSES",
    "RECONSTRUCTION_LOSSES",
    "fmri_losses",
    "reconstruction_losses",
    "lesion",
    "roi_union",
    "LESION_MODES",
    "count_parameters",
    "parameter_counts",
]
