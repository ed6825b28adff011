"""Learned frame representations from a ``transformers`` image model (local files only)."""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["ImageEncoder", "load_image_model"]

log = logging.getLogger(__name__)


class ImageEncoder:
    """An image processor and vision model that turn RGB frames into vectors.

    Vision models (ViT, DINOv2, ConvNeXt...) and the image tower of image-text models
    (CLIP, SigLIP: ``get_image_features``) work. The vector is the ``pooler_output`` when
    there is one, else the mean of ``last_hidden_state`` over tokens (or over space, for
    convolutional models).

    Parameters
    ----------
    processor : transformers image processor
    model : transformers.PreTrainedModel
        In eval mode, on ``device``.
    device : str
    """

    def __init__(self, processor, model, device):
        self.processor, self.model, self.device = processor, model, device

    def __call__(self, frames):
        """Embed a batch of frames.

        Parameters
        ----------
        frames : sequence of ndarray, each shape (height, width, 3), uint8

        Returns
        -------
        ndarray, shape (n_frames, n_dims), float32
        """
        import torch

        inputs = self.processor(images=list(frames), return_tensors="pt").to(self.device)
        with torch.inference_mode():
            out = getattr(self.model, "get_image_features", self.model)(**inputs)
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            hidden = out.last_hidden_state
            pooled = hidden.mean(dim=1) if hidden.ndim == 3 else hidden.flatten(2).mean(dim=2)
        return pooled.reshape(len(frames), -1).float().cpu().numpy().astype(np.float32)


def load_image_model(model, device=None):
    """Load an image model and its processor from local files (a folder or a cached Hub id).

    Parameters
    ----------
    model : str or Path
        E.g. ``"facebook/dinov2-small"`` (already cached) or a folder saved with
        ``save_pretrained`` holding the model and its image processor.
    device : str, optional
        ``"cuda"`` when available, else ``"cpu"``.

    Returns
    -------
    ImageEncoder
    """
    from transformers import AutoImageProcessor, AutoModel

    from giblet.compute import resolve_device

    device = str(resolve_device(device))
    try:
        processor = AutoImageProcessor.from_pretrained(str(model), local_files_only=True)
        network = AutoModel.from_pretrained(str(model), local_files_only=True)
    except (OSError, ValueError) as err:
        raise RuntimeError(
            f"image model {str(model)!r} could not be loaded offline ({err}); set video.image_model "
            "to a local folder saved with save_pretrained (model + image processor), or to null "
            "to skip learned video features"
        ) from err
    log.info("image model %s loaded on %s", model, device)
    return ImageEncoder(processor, network.eval().to(device), device)
