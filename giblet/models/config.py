"""Hyperparameters of the multimodal fMRI autoencoder and the tensors it exchanges.

Tensor interface (time is TRs; a batch holds ``B`` contiguous chunks of ``T`` TRs, each
chunk inside one run; padded TRs hold zeros and are marked False in ``tr_valid``):

=============== =========================================== ========= ====================
key             shape                                       dtype     meaning
=============== =========================================== ========= ====================
``audio_codes`` (B, T, n_codebooks, frames_per_tr)          integer   EnCodec code indices
``audio_mask``  (B, T, frames_per_tr)                       bool      True at real frames
``audio_descriptor`` (B, T, n_audio_descriptor)             float     log-mel, z-scored on training TRs
``video``       (B, T, n_video_features)                    float     video features
``thumbs``      (B, T, *thumb_shape)                        float     target thumbnails, [0, 1]
``text``        (B, T, n_text_features)                     float     text embedding (+ labels)
``tr_valid``    (B, T)                                      bool      TRs that enter losses
=============== =========================================== ========= ====================

Measured BOLD is passed per subject as (B, T, n_voxels[subject]) float, z-scored with
training-TR statistics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from giblet.config import check_choice

__all__ = ["AutoencoderConfig", "MODALITY_INPUTS", "ROUTE_BANDS", "MODALITY_TARGETS", "AUDIO_MERGES"]

#: Modality -> batch keys its input tower reads.
MODALITY_INPUTS = {"audio": ("audio_codes", "audio_mask", "audio_descriptor"), "video": ("video",), "text": ("text",)}
#: How the encoder routes are fitted (:attr:`AutoencoderConfig.route_mode`).
ROUTE_MODES = ("best_band", "joint")
#: Feature band of an encoder route -> (its modality, the batch key whose columns it reads): sound's log-mel, the
#: low-level video features, the text embedding and the annotation labels (the text input's last columns).
ROUTE_BANDS = {"audio": ("audio", "audio_descriptor"), "video": ("video", "video"), "text": ("text", "text"),
               "text_labels": ("text", "text")}
#: Modality -> batch keys its trunk's decoder head is scored against (sound and pictures have routes of their own).
MODALITY_TARGETS = {"text": ("text",)}
#: How a frame's per-codebook embeddings are merged: summed (the codec's quantized latent) or concatenated.
AUDIO_MERGES = ("sum", "concat")


def _one_of(name, value, allowed):
    check_choice(f"AutoencoderConfig.{name}", value, allowed)


@dataclass(frozen=True)
class AutoencoderConfig:
    """Sizes and options of :class:`~giblet.models.GibletAutoencoder` (config section ``model``).

    Attributes
    ----------
    n_voxels : dict of str to int
        Voxel count of each subject's brain space, e.g. ``{"sub-01": 450}``; sets the
        per-subject readout (encoder) and read-in (decoder). Subject names may not contain ``.``.
    modalities : tuple of str, default=("audio", "video", "text")
        Non-empty subset of :data:`MODALITY_INPUTS`: the input towers and decoder heads built.
    n_codebooks : int, default=8
        Residual codebooks per audio frame (EnCodec 24 kHz at 6 kbps: 8).
    codebook_size : int, default=1024
        Entries per codebook (EnCodec: 1024).
    codebook_dim : int, default=128
        Dimension of a codebook vector and of the codec latent (EnCodec 24 kHz: 128).
    frames_per_tr : int, default=113
        Frame slots per TR, ``ceil(tr_s * frame_rate_hz)``: 113 for a 1.5 s TR at 75 Hz
        (TRs hold 112 and 113 frames in turn; ``audio_mask`` marks which slots are real).
    n_audio_descriptor : int, default=32
        Width of the audio descriptor (32 log-mel bands): an input of the audio tower and the
        encoder's audio route band, decoded from BOLD and read by the code model.
    n_video_features : int, default=10
        Width of the ``video`` input (features per TR).
    n_text_features : int, default=384
        Width of the ``text`` input and text-head output (MiniLM: 384, plus any label fractions).
    route_bands : tuple of str, default=modalities
        Feature bands with an encoder route each (:data:`ROUTE_BANDS`).
    route_mode : {"best_band", "joint"}, default="best_band"
        How the routes are fitted (:func:`giblet.training.routes.fit_encoder_routes`): each voxel from the
        one band that predicts it best out of sample (separable modalities, as on the demo), or every
        voxel from all bands in one ridge, as the ridge baseline (weakly driven voxels that every band
        predicts a little, as Sherlock's PMC).
    route_context_trs : tuple of int, default=()
        Trailing windows (TRs, each >= 2): the encoder routes also read every feature's mean over the
        last ``k`` TRs, at every encoder delay (:class:`~giblet.models.LaggedLinear`'s ``context``):
        long-timescale context for regions that integrate the story over tens of seconds (on Sherlock's
        PMC, ``(8, 24)``).
    thumb_shape : tuple of 3 int, default=(3, 36, 64)
        (channels, height, width) of the thumbnails decoded from BOLD.
    n_thumb_components : int, default=8
        Thumbnail principal components the picture route decodes (beside the low-level features).
    hidden : int, default=64
        Width of the per-TR stimulus embedding, the trunks and the heads.
    n_layers : int, default=2
        Residual MLP blocks in each of the encoder and decoder trunks.
    dropout : float, default=0.1
        Dropout probability inside the trunks (training only).
    audio_merge : {"sum", "concat"}, default="sum"
        How a frame's per-codebook embeddings are merged; ``"sum"`` is the codec's quantized latent.
    train_codebooks : bool, default=False
        Let the codebook embedding tables of the audio input (initialised from the codec) train.
    encoder_delays_trs : tuple of int, default=(1, 2, 3, 4)
        Causal FIR taps: voxels at TR ``t`` see the stimulus at TRs ``t - d``. Use ``(0,)`` when
        the inputs are already HRF-convolved by the alignment stage. All ``>= 0``.
    decoder_delays_trs : tuple of int, default=(1, 2, 3, 4)
        Anti-causal taps: the stimulus at TR ``t`` is decoded from BOLD at TRs ``t + d``. All ``>= 0``.
    readout_rank : int or None, default=None
        Rank of each subject's readout and read-in (``hidden -> rank -> voxels``); ``None`` is full
        rank. Whole-brain data (~270k voxels) need it to keep the model small.
    modality_dropout_p : float, default=0.2
        Probability, per chunk and modality in training, of dropping that modality's input
        (at least one modality is always kept).

    Notes
    -----
    Model size follows the data; the per-subject readouts and read-ins (``hidden + 1``
    weights per voxel each, or ``rank`` with ``readout_rank``) dominate. Trainable
    parameters with the defaults (``hidden=64``), from ``count_parameters(model, True)``
    (frozen: the 8 x 1024 x 128 codebook tables, 1,048,576, and the code model, 270,336;
    the routes for sound and pictures are fitted buffers):

    - demo, 4 subjects x 450 voxels: 393,289 (readouts + read-ins 232,456);
    - Sherlock whole brain, 17 subjects x 69,047 voxels (3 mm MNI mask >= 0.5): 151.6 M;
      with ``readout_rank=16``: 38.9 M;
    - Sherlock, 17 subjects x 271,633 voxels (the full 61 x 73 x 61 grid): 595.9 M;
      with ``readout_rank=16``: 152.6 M.
    """

    n_voxels: dict
    modalities: tuple = ("audio", "video", "text")
    n_codebooks: int = 8
    codebook_size: int = 1024
    codebook_dim: int = 128
    frames_per_tr: int = 113
    n_audio_descriptor: int = 32
    n_video_features: int = 10
    n_text_features: int = 384
    thumb_shape: tuple = (3, 36, 64)
    n_thumb_components: int = 8
    hidden: int = 64
    n_layers: int = 2
    dropout: float = 0.1
    audio_merge: str = "sum"
    train_codebooks: bool = False
    encoder_delays_trs: tuple = (1, 2, 3, 4)
    decoder_delays_trs: tuple = (1, 2, 3, 4)
    readout_rank: int | None = None
    modality_dropout_p: float = 0.2
    route_bands: tuple = ()
    route_mode: str = "best_band"
    route_context_trs: tuple = ()

    def __post_init__(self):
        for name in ("modalities", "thumb_shape", "encoder_delays_trs", "decoder_delays_trs", "route_bands",
                     "route_context_trs"):
            object.__setattr__(self, name, tuple(getattr(self, name)))  # JSON round trips give lists
        object.__setattr__(self, "n_voxels", {str(s): int(n) for s, n in dict(self.n_voxels).items()})
        if not self.n_voxels:
            raise ValueError("AutoencoderConfig.n_voxels is empty; pass {subject: voxel count} for every subject")
        bad = {s: n for s, n in self.n_voxels.items() if n < 1 or "." in s or not s}
        if bad:
            raise ValueError(f"AutoencoderConfig.n_voxels: need non-empty names without '.' and counts >= 1, got {bad}")
        if not self.modalities or len(set(self.modalities)) != len(self.modalities):
            raise ValueError(
                f"AutoencoderConfig.modalities must be a non-empty list without repeats, got {self.modalities}"
            )
        for modality in self.modalities:
            _one_of("modalities", modality, MODALITY_INPUTS)
        _one_of("audio_merge", self.audio_merge, AUDIO_MERGES)
        _one_of("route_mode", self.route_mode, ROUTE_MODES)
        context = self.route_context_trs
        if any(int(k) < 2 for k in context) or len(set(context)) != len(context):
            raise ValueError(f"AutoencoderConfig.route_context_trs must be distinct windows of >= 2 TRs, got "
                             f"{self.route_context_trs}")
        if not self.route_bands:
            object.__setattr__(self, "route_bands", self.modalities)
        bad_bands = [b for b in self.route_bands if b not in ROUTE_BANDS or ROUTE_BANDS[b][0] not in self.modalities]
        if bad_bands:
            raise ValueError(f"AutoencoderConfig.route_bands {bad_bands}: each must be one of {list(ROUTE_BANDS)} of "
                             f"a configured modality {self.modalities}")
        sizes = ("n_codebooks", "codebook_size", "codebook_dim", "frames_per_tr", "n_audio_descriptor", "n_video_features",
                 "n_thumb_components",
                 "n_text_features", "hidden", "n_layers")
        small = {name: getattr(self, name) for name in sizes if getattr(self, name) < 1}
        if small:
            raise ValueError(f"AutoencoderConfig sizes must be >= 1, got {small}")
        if len(self.thumb_shape) != 3 or min(self.thumb_shape) < 1:
            raise ValueError(f"AutoencoderConfig.thumb_shape must be (channels, height, width), got {self.thumb_shape}")
        for name in ("encoder_delays_trs", "decoder_delays_trs"):
            delays = getattr(self, name)
            if not delays or min(delays) < 0 or len(set(delays)) != len(delays):
                raise ValueError(
                    f"AutoencoderConfig.{name} must be distinct TR delays >= 0 (encoder: causal, decoder: "
                    f"anti-causal), got {delays}"
                )
        if self.readout_rank is not None and self.readout_rank < 1:
            raise ValueError(
                f"AutoencoderConfig.readout_rank must be >= 1 or None (full rank), got {self.readout_rank}"
            )
        for name in ("dropout", "modality_dropout_p"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"AutoencoderConfig.{name} must be in [0, 1), got {getattr(self, name)}")

    @property
    def encoder_past_trs(self) -> int:
        """TRs of stimulus a chunk needs before its first predicted TR: the deepest delay and route context."""
        return max(self.encoder_delays_trs) + max(self.route_context_trs, default=1) - 1

    @property
    def subjects(self) -> tuple:
        """Subject names, in ``n_voxels`` order."""
        return tuple(self.n_voxels)

    def to_dict(self) -> dict:
        """JSON-able copy (for checkpoints); ``AutoencoderConfig(**d)`` restores it."""
        return asdict(self)
