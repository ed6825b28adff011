"""The multimodal fMRI autoencoder: stimulus -> subject's voxels (the middle layer) -> stimulus.

Encoder: per-modality towers -> per-TR stimulus embedding (sum over kept modalities) ->
causal FIR mixing over the last TRs -> shared trunk -> per-subject linear readout to voxels,
plus, per subject and feature band, an additive **encoder route**: a :class:`LaggedLinear` map
from the band's per-TR features at the last TRs (sound's log-mel, the low-level video features,
the text embedding, the annotation labels) to the voxels it predicts out of sample better than
any other band does (so that text and video cannot take the place of sound in auditory voxels;
the trunk only complements the routes).
Decoder: per-subject linear read-in from voxels -> anti-causal FIR mixing over the next TRs
(to undo the haemodynamic lag) -> shared trunk -> the text head, added to the subject's text
**window decoder** (a :class:`LaggedLinear` from the voxels that encode the text embedding at the
next TRs; the head starts at zero, so the trunk only complements it). Pictures are decoded on a route
of their own: per subject, a :class:`LaggedLinear` reads the voxels that encode the low-level
video features and thumbnail principal components at the next TRs and predicts them; the
thumbnail is rebuilt from its components (:meth:`~GibletAutoencoder.thumbnails`).
Sound is decoded on a route of its own: per subject, a :class:`LaggedLinear` reads the voxels
that encode the sound's spectral descriptor (the 32-band log-mel) at the next TRs and predicts
that descriptor; the code model (``audio_head``, trained on the film's audio alone) turns it into
per-codebook code probabilities (:meth:`~GibletAutoencoder.code_log_probs`, tempered toward the
code prior for a decoded descriptor), which the frozen codec decoder plays after seeded sampling.
Both are fitted in closed form outside gradient training (their weights are buffers or frozen).

Three paths share these parts: :meth:`GibletAutoencoder.encode` (an encoding model),
:meth:`~GibletAutoencoder.decode` (decoding measured or predicted BOLD) and
:meth:`~GibletAutoencoder.autoencode` (stimulus -> predicted voxels -> optional lesion ->
decoder). Every part before the readout and after the read-in is per TR, except the FIR
mixers, so causality is exact: with encoder delays 1..4, voxels at TR ``t`` depend on the
stimulus at TRs ``t-4..t-1`` only; with decoder delays 1..4, the stimulus decoded at TR ``t``
depends on BOLD at TRs ``t+1..t+4`` only.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from giblet.audio.code_model import CodeModelHead
from giblet.models.config import MODALITY_INPUTS, ROUTE_BANDS
from giblet.models.dropout import modality_keep_mask
from giblet.models.heads import HEADS
from giblet.models.temporal import DelayMixer
from giblet.models.lagged_linear import LaggedLinear
from giblet.models.towers import TOWERS, CodebookEmbedding

__all__ = ["GibletAutoencoder"]


def _voxel_linear(n_in, n_out, rank, zero=False):
    """Linear map, full rank or factored through ``rank`` dimensions; ``zero``: its last layer starts at 0."""
    layers = [nn.Linear(n_in, n_out)] if rank is None else [nn.Linear(n_in, rank, bias=False), nn.Linear(rank, n_out)]
    if zero:
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)
    return layers[0] if len(layers) == 1 else nn.Sequential(*layers)


class _Trunk(nn.Module):
    """Per-TR residual MLP blocks (no mixing across TRs)."""

    def __init__(self, hidden, n_layers, dropout):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout),
                          nn.Linear(hidden, hidden))
            for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(hidden)

    def forward(self, x):
        for block in self.blocks:
            x = x + block(x)
        return self.norm(x)


class GibletAutoencoder(nn.Module):
    """Stimulus -> brain -> stimulus, with each subject's voxel space as the middle layer.

    The encoder (stimulus -> voxels: :attr:`ENCODER_PARTS`) and the decoder (voxels -> stimulus: every
    other part) share no parameter, so each can keep the weights of its own best validation epoch.

    Parameters
    ----------
    config : AutoencoderConfig
    codebook_vectors : array-like, shape (n_codebooks, codebook_size, codebook_dim), float, optional
        The codec's codebooks (``EncodecCodec.codebook_vectors()``), copied into the audio
        embedding tables (saved in the state dict). Random when omitted.

    Notes
    -----
    Inputs and targets follow the tensor interface of :mod:`giblet.models.config`. The
    stimulus dict may hold any non-empty subset of the configured modalities (all keys of
    a modality, or none); extra keys are ignored. In training mode, modality dropout
    (``config.modality_dropout_p``) draws from the global torch generator, so seed it for
    reproducible runs.
    """

    #: Submodules of the encoder (stimulus -> predicted voxels); the rest decode voxels to the stimulus.
    ENCODER_PARTS = ("towers", "fuse_norm", "encoder_delays", "encoder_trunk", "readouts", "encoder_routes")

    def __init__(self, config, codebook_vectors=None):
        super().__init__()
        self.config = config
        embedding = None
        if "audio" in config.modalities:
            embedding = CodebookEmbedding(config.n_codebooks, config.codebook_size, config.codebook_dim,
                                          codebook_vectors, trainable=config.train_codebooks)
        hidden, rank = config.hidden, config.readout_rank
        self.towers = nn.ModuleDict({m: TOWERS[m](config, embedding) for m in config.modalities})
        self.fuse_norm = nn.LayerNorm(hidden)
        self.encoder_delays = DelayMixer(hidden, config.encoder_delays_trs)
        self.encoder_trunk = _Trunk(hidden, config.n_layers, config.dropout)
        # readouts start at 0: before training the encoder is its closed-form routes alone
        self.readouts = nn.ModuleDict({s: _voxel_linear(hidden, n, rank, zero=True)
                                       for s, n in config.n_voxels.items()})
        self.readins = nn.ModuleDict({s: _voxel_linear(n, hidden, rank) for s, n in config.n_voxels.items()})
        self.decoder_delays = DelayMixer(hidden, [-d for d in config.decoder_delays_trs])
        self.decoder_trunk = _Trunk(hidden, config.n_layers, config.dropout)
        self.heads = nn.ModuleDict({m: HEADS[m](config) for m in config.modalities if m in HEADS})
        encoder_lags = [-d for d in config.encoder_delays_trs]
        self.encoder_routes = nn.ModuleDict({
            band: nn.ModuleDict({s: LaggedLinear(self._input_width(ROUTE_BANDS[band][1]), n, encoder_lags,
                                                 config.route_context_trs)
                                 for s, n in config.n_voxels.items()})
            for band in config.route_bands})
        if "video" in config.modalities:
            n_picture, n_pixels = config.n_video_features + config.n_thumb_components, math.prod(config.thumb_shape)
            self.picture_decoders = nn.ModuleDict({s: LaggedLinear(n, n_picture, config.decoder_delays_trs)
                                                   for s, n in config.n_voxels.items()})
            self.register_buffer("thumb_mean", torch.zeros(n_pixels))
            self.register_buffer("thumb_basis", torch.zeros(config.n_thumb_components, n_pixels))
        if "text" in config.modalities:
            self.text_decoders = nn.ModuleDict({s: LaggedLinear(n, config.n_text_features, config.decoder_delays_trs)
                                                for s, n in config.n_voxels.items()})
        if "audio" in config.modalities:
            n_descriptor = config.n_audio_descriptor
            self.audio_decoders = nn.ModuleDict({s: LaggedLinear(n, n_descriptor, config.decoder_delays_trs)
                                                 for s, n in config.n_voxels.items()})
            self.code_model = CodeModelHead(config.n_codebooks, config.codebook_size, n_descriptor)
            self.register_buffer("audio_confidence", torch.ones(()))

    @property
    def audio_head(self):
        """The code model (:class:`~giblet.audio.code_model.CodeModelHead`): audio descriptor -> code log-probabilities."""
        if "audio" not in self.config.modalities:
            raise ValueError(f"this model has no audio head; modalities are {self.config.modalities}")
        return self.code_model

    def set_thumbnail_basis(self, mean, basis):
        """Install the thumbnails' training mean (n_pixels,) and principal components (n_thumb_components, n_pixels)."""
        mean, basis = (torch.as_tensor(x, dtype=torch.float32) for x in (mean, basis))
        if mean.shape != self.thumb_mean.shape or basis.shape != self.thumb_basis.shape:
            raise ValueError(f"thumbnail mean {tuple(mean.shape)} and basis {tuple(basis.shape)} must have shapes "
                             f"{tuple(self.thumb_mean.shape)} and {tuple(self.thumb_basis.shape)}")
        with torch.no_grad():
            self.thumb_mean.copy_(mean)
            self.thumb_basis.copy_(basis)

    def thumbnails(self, descriptor):
        """Thumbnails (..., *thumb_shape) in [0, 1] rebuilt from a picture descriptor (..., n_video + n_thumb_components)."""
        components = descriptor[..., self.config.n_video_features :]
        pixels = (self.thumb_mean + components @ self.thumb_basis).clamp(0.0, 1.0)
        return pixels.reshape(*descriptor.shape[:-1], *self.config.thumb_shape)

    def code_log_probs(self, descriptor):
        """Code log-probabilities (..., n_codebooks, codebook_size) of a decoded audio descriptor (..., n_features).

        The code model tempered toward its prior by ``audio_confidence`` (fitted with the window
        decoders on the validation block: a descriptor decoded from BOLD is noisier than the true
        descriptor the code model was trained on).
        """
        return self.audio_head(descriptor, self.audio_confidence)

    # --- encoder ---------------------------------------------------------------------------
    def embed_stimulus(self, stim, keep=None):
        """Shared encoder: per-TR stimulus embedding after FIR mixing and the trunk.

        Parameters
        ----------
        stim : dict of str to Tensor
            Inputs (see :data:`~giblet.models.config.MODALITY_INPUTS`), each (B, T, ...).
        keep : Tensor, shape (B, len(config.modalities)), bool, optional
            Which modality inputs each chunk uses (config order). Drawn by modality dropout
            in training mode when omitted; all present modalities otherwise.

        Returns
        -------
        Tensor, shape (B, T, hidden), float
        """
        present, (batch, _) = self._check_stimulus(stim)
        modalities = self.config.modalities
        if keep is None:
            keep = torch.zeros(batch, len(modalities), dtype=torch.bool, device=self._device)
            index = [modalities.index(m) for m in present]
            p = self.config.modality_dropout_p
            drop = self.training and p > 0
            keep[:, index] = modality_keep_mask(batch, len(present), p, device=self._device) if drop else True
        elif tuple(keep.shape) != (batch, len(modalities)) or keep.dtype != torch.bool:
            raise ValueError(f"keep must be a bool tensor of shape (B, n_modalities) = {(batch, len(modalities))}, "
                             f"got {keep.dtype} {tuple(keep.shape)}")
        fused = sum(
            self.towers[m](*(stim[k] for k in MODALITY_INPUTS[m])) * keep[:, modalities.index(m), None, None]
            for m in present
        )
        return self.encoder_trunk(self.encoder_delays(self.fuse_norm(fused)))

    def readout(self, embedding, subject):
        """Subject's voxels from the shared encoder embedding: (B, T, hidden) -> (B, T, n_voxels)."""
        return self.readouts[self._check_subject(subject)](embedding)

    def _input_width(self, key):
        config = self.config
        return {"audio_descriptor": config.n_audio_descriptor, "video": config.n_video_features,
                "text": config.n_text_features}[key]

    def stimulus_routes(self, stim, subject, keep=None):
        """The encoder routes' share of the subject's voxels (B, T, n_voxels): each feature band's ridge map
        to the voxels it predicts out of sample (0 where none).

        They act outside modality dropout (they are fitted, not trained); an explicit ``keep``
        that leaves a modality out silences its route too.
        """
        subject, total = self._check_subject(subject), 0.0
        for band, routes in self.encoder_routes.items():
            modality, key = ROUTE_BANDS[band]
            if key not in stim or not len(routes[subject].outputs):
                continue
            route = routes[subject](stim[key])
            if keep is not None:
                route = route * keep[:, self.config.modalities.index(modality), None, None]
            total = total + route
        return total

    def encode(self, stim, subject, keep=None):
        """Predicted BOLD of ``subject`` for a stimulus (the encoding model).

        Parameters
        ----------
        stim : dict of str to Tensor
            See :meth:`embed_stimulus`.
        subject : str
        keep : Tensor, shape (B, n_modalities), bool, optional
            See :meth:`embed_stimulus`.

        Returns
        -------
        Tensor, shape (B, T, n_voxels[subject]), float
            In the units of the z-scored BOLD it is trained to match: the trunk's readout plus
            the stimulus routes.
        """
        return self.readout(self.embed_stimulus(stim, keep), subject) + self.stimulus_routes(stim, subject, keep)

    # --- decoder ---------------------------------------------------------------------------
    def readin(self, voxels, subject):
        """Per-TR decoder input from a subject's voxels: (B, T, n_voxels) -> (B, T, hidden)."""
        subject = self._check_subject(subject)
        n_voxels = self.config.n_voxels[subject]
        if voxels.ndim != 3 or voxels.shape[-1] != n_voxels or not voxels.is_floating_point():
            raise ValueError(f"voxels for {subject!r} must be float (B, T, {n_voxels}), "
                             f"got {voxels.dtype} {tuple(voxels.shape)}")
        return self.readins[subject](voxels)

    def predict_stimulus(self, readin):
        """Shared decoder: stimulus predictions from read-in voxels.

        Parameters
        ----------
        readin : Tensor, shape (B, T, hidden), float
            From :meth:`readin`.

        Returns
        -------
        dict of str to Tensor
            ``"text"``: embedding (B, T, n_text_features), when text is a modality.
        """
        h = self.decoder_trunk(self.decoder_delays(readin))
        return {m: head(h) for m, head in self.heads.items()}

    def decode(self, voxels, subject):
        """Stimulus predictions from a subject's BOLD (measured, predicted or lesioned).

        Parameters
        ----------
        voxels : Tensor, shape (B, T, n_voxels[subject]), float
            TR ``t`` holds the BOLD recorded at TR ``t``; TRs beyond the chunk read as zero.
        subject : str

        Returns
        -------
        dict of str to Tensor
            See :meth:`predict_stimulus` (``"text"``: the trunk's head plus the subject's text window
            decoder), plus ``"audio"``: the audio descriptor (B, T,
            n_audio_descriptor) from the subject's window decoder (code log-probabilities via
            :meth:`code_log_probs`), and ``"video"``: the picture descriptor (B, T, n_video_features
            + n_thumb_components; thumbnails via :meth:`thumbnails`).
        """
        predictions = self.predict_stimulus(self.readin(voxels, subject))
        if "text" in self.config.modalities:  # the trunk's head starts at zero: it complements the window decoder
            predictions["text"] = predictions["text"] + self.text_decoders[subject](voxels)
        if "audio" in self.config.modalities:
            predictions["audio"] = self.audio_decoders[subject](voxels)
        if "video" in self.config.modalities:
            predictions["video"] = self.picture_decoders[subject](voxels)
        return predictions

    def autoencode(self, stim, subject, lesion=None, keep=None):
        """Stimulus -> predicted voxels -> optional lesion -> decoder.

        Parameters
        ----------
        stim : dict of str to Tensor
        subject : str
        lesion : callable, optional
            ``lesion(voxels) -> voxels`` applied to the middle layer, e.g.
            ``functools.partial(giblet.models.lesion, roi=mask, mode="mean", mean=mu)``.
        keep : Tensor, shape (B, n_modalities), bool, optional
            See :meth:`embed_stimulus`.

        Returns
        -------
        voxels : Tensor, shape (B, T, n_voxels[subject]), float
            The middle layer before the lesion (to match to measured BOLD).
        predictions : dict of str to Tensor
            Decoded from the (lesioned) middle layer; see :meth:`predict_stimulus`.
        """
        voxels = self.encode(stim, subject, keep)
        return voxels, self.decode(voxels if lesion is None else lesion(voxels), subject)

    # --- checks ----------------------------------------------------------------------------
    @property
    def _device(self):
        return next(self.parameters()).device

    def _check_subject(self, subject):
        if subject not in self.config.n_voxels:
            raise ValueError(f"unknown subject {subject!r}; the model has {list(self.config.subjects)} "
                             "(set AutoencoderConfig.n_voxels)")
        return subject

    def _check_stimulus(self, stim):
        """Present modalities and (B, T); errors name the key, the problem and the fix."""
        cfg = self.config
        present = [m for m in cfg.modalities if any(k in stim for k in MODALITY_INPUTS[m])]
        if not present:
            wanted = [k for m in cfg.modalities for k in MODALITY_INPUTS[m]]
            raise ValueError(f"stimulus has none of the model's inputs {wanted}; got keys {sorted(stim)}")
        trailing = {"audio_codes": (cfg.n_codebooks, cfg.frames_per_tr), "audio_mask": (cfg.frames_per_tr,),
                    "audio_descriptor": (cfg.n_audio_descriptor,), "video": (cfg.n_video_features,),
                    "text": (cfg.n_text_features,)}
        lead = None
        for key in (k for m in present for k in MODALITY_INPUTS[m]):
            if key not in stim:
                raise ValueError(f"stimulus has some inputs of its modality but not {key!r}; pass all of "
                                 f"{[MODALITY_INPUTS[m] for m in present]}")
            x = stim[key]
            lead = tuple(x.shape[:2]) if lead is None else lead
            if x.ndim != 2 + len(trailing[key]) or tuple(x.shape) != lead + trailing[key]:
                raise ValueError(f"stimulus[{key!r}] has shape {tuple(x.shape)}, expected (B, T) + {trailing[key]} "
                                 f"with (B, T) = {lead} as the other inputs; check AutoencoderConfig against the data")
        for key in ("audio_descriptor", "video", "text"):
            if key in stim and not stim[key].is_floating_point():
                raise ValueError(f"stimulus[{key!r}] must be float features, got {stim[key].dtype}")
        if "audio" in present:
            self._check_codes(stim["audio_codes"], stim["audio_mask"])
        return present, lead

    def _check_codes(self, codes, mask):
        if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
            raise ValueError(f"audio_codes must be integer code indices (categories), got {codes.dtype}; "
                             "pass the codes themselves, never averaged or interpolated values")
        if mask.dtype != torch.bool:
            raise ValueError(f"audio_mask must be bool (True at real frames), got {mask.dtype}")
        valid = torch.where(mask.unsqueeze(-2), codes, 0)
        if valid.numel() and (valid.min() < 0 or valid.max() >= self.config.codebook_size):
            raise ValueError(f"audio_codes at valid frames must lie in [0, {self.config.codebook_size}), got "
                             f"[{int(valid.min())}, {int(valid.max())}]; check audio_mask and codebook_size")
