"""An untrained EnCodec adapted to one stimulus (the offline fallback when the pretrained weights cannot load):
its encoder's output standardised, its residual codebooks fitted by k-means."""

from __future__ import annotations

import logging

import numpy as np
import torch
from sklearn.cluster import KMeans
from tqdm.auto import tqdm

__all__ = ["adapt_untrained"]

logger = logging.getLogger(__name__)

_SD_FLOOR = 0.1  # no latent channel is scaled up more than 10x the median channel
_MERGE_SD = 1e-2  # frames this close (per channel, in latent SDs) are one point for k-means


def adapt_untrained(codec, latents, *, max_frames=20_000, seed=0):
    """Adapt an untrained ``codec`` (:class:`~giblet.audio.codec.EncodecCodec`) to a stimulus: standardise its
    latents, fit its codebooks.

    A randomly initialised encoder's output is dominated by a constant bias
    (norm ~0.3 against ~0.005 frame-to-frame), which leaves RVQ distances at
    float32 rounding and codes flipping on near-ties. So first the encoder's
    last convolution is rescaled so that the latents have zero mean and unit
    variance per channel on this stimulus (an exact affine map of the old
    latents); a channel's SD is floored at ``_SD_FLOOR`` times the median
    channel's, so a near-constant channel's float32 noise is not blown up.
    Then level ``i`` of the RVQ is k-means (``codebook_size`` clusters, seeded)
    on what levels ``< i`` leave; only the ``n_codebooks`` levels used at
    ``bandwidth_kbps`` are fitted. Frames within ``_MERGE_SD`` of each other
    are one weighted point for k-means: digital silence (thousands of frames
    that differ by float32 noise) takes one code instead of hundreds of
    clusters split on noise.

    Parameters
    ----------
    latents : ndarray, shape (n_frames, codebook_dim), float32
        This stimulus's encoder latents (:meth:`~giblet.audio.codec.EncodecCodec.latents`) before adaptation.
    max_frames : int, default=20000
        Frames drawn at random (seeded) for the statistics and k-means.
    seed : int, default=0

    Returns
    -------
    ndarray, shape (n_frames, codebook_dim), float32
        ``latents`` as the adapted encoder gives them (pass these to :meth:`~giblet.audio.codec.EncodecCodec.quantize`).
    """
    last = codec.model.encoder.layers[-1]
    if len(latents) < codec.codebook_size or last.norm_type != "weight_norm":
        raise ValueError(
            f"fit_untrained needs a weight-norm encoder and at least codebook_size={codec.codebook_size} frames, "
            f"got {last.norm_type} and {len(latents)} frames ({len(latents) / codec.frame_rate_hz:.1f} s); "
            "give a longer stimulus"
        )
    rng = np.random.default_rng(seed)
    sample = np.asarray(latents[np.sort(rng.choice(len(latents), min(max_frames, len(latents)), replace=False))])
    mean, std = sample.mean(axis=0, dtype=np.float64), sample.std(axis=0, dtype=np.float64)
    if not np.median(std) > 0:
        raise ValueError(
            f"{codec.model_id}: the encoder latents do not vary over the stimulus (digital silence?); "
            "give a stimulus with sound"
        )
    std = np.maximum(std, _SD_FLOOR * np.median(std))
    mean_t, std_t = (torch.from_numpy(x).to(last.conv.bias) for x in (mean, std))
    with torch.no_grad():  # conv output (W x + b) -> (W x + b - mean) / std, W = g v / |v|
        last.conv.parametrizations.weight.original0.div_(std_t[:, None, None])
        last.conv.bias.sub_(mean_t).div_(std_t)
    residual = ((sample - mean) / std).astype(np.float32)
    for level in tqdm(range(codec.n_codebooks), desc="RVQ k-means", unit="codebook"):
        _, first, inverse, counts = np.unique(np.round(residual / _MERGE_SD), axis=0, return_index=True,
                                              return_inverse=True, return_counts=True)
        # random (not k-means++) init: 25x faster at 1024 clusters, inertia within ~1 %
        kmeans = KMeans(min(codec.codebook_size, len(first)), init="random", n_init=1, max_iter=30,
                        random_state=seed + level)
        kmeans.fit(residual[first], sample_weight=counts)
        labels = kmeans.labels_[inverse.ravel()]
        centroids = kmeans.cluster_centers_.astype(np.float32)
        residual = residual - centroids[labels]
        # fewer distinct points than codes: the spare codes repeat centroids (never chosen over the first)
        codebook = np.resize(centroids, (codec.codebook_size, centroids.shape[1]))
        codec.model.quantizer.layers[level].codebook.embed.copy_(torch.from_numpy(codebook))
        logger.info("codebook %d: %d codes used, residual rms %.3g", level,
                    len(np.unique(labels)), float(np.sqrt((residual**2).mean())))
    return ((latents - mean) / std).astype(np.float32)
