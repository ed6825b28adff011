"""EnCodec as a frozen, chunked audio tokenizer: waveform <-> CodeStream.

The 24 kHz EnCodec encoder and decoder are causal (causal convolutions and a
unidirectional LSTM), so a chunk only needs *left* context: each chunk is run with
``context_s`` of preceding audio (or frames) and that warm-up is dropped. Memory is
bounded by ``chunk_s + context_s`` whatever the length of the film.

Join accuracy (``benchmarks/bench_codec.py --joins``: full-size default architecture,
untrained fallback adapted to the audio, 60 s of the real clips in ../shared/data/clips,
20 s chunks). Without context, latents just after a join are off by up to 100 % of
their range and 2.2 % of code slots differ from a single pass (0.8 % in codebook 0).
With >= 0.5 s of context the latents agree to float32 precision (max relative
difference 1e-5) and codebook 0 agrees (<= 0.02 %); 1.2-1.4 % of slots in the fine
codebooks still differ, fewer than the 1.7 % that a 1e-6 relative perturbation of the
single-pass latents flips (RVQ near-ties), i.e. chunking adds nothing measurable. The
default 3 s context leaves margin for a trained LSTM's memory (not measurable offline)
at 5 % extra compute with 60 s chunks. Decoder joins are cross-faded over the last
``crossfade_s`` of the context (overlap-add).
"""

from __future__ import annotations

import logging
import math
import socket
import types
import urllib.parse
from pathlib import Path

import huggingface_hub
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import EncodecConfig, EncodecModel
from transformers.models.encodec.modeling_encodec import EncodecConvTranspose1d

from giblet.audio.codes import CodeStream
from giblet.audio.load import resample
from giblet.audio.untrained import adapt_untrained
from giblet.compute import resolve_device

__all__ = [
    "EncodecCodec",
    "CodecUnavailableError",
    "CODEC_FALLBACKS",
    "PRETRAINED_STATUS",
    "UNTRAINED_STATUS",
]

logger = logging.getLogger(__name__)

PRETRAINED_STATUS = "pretrained"
UNTRAINED_STATUS = "untrained — waveforms are not perceptually meaningful"
CODEC_FALLBACKS = ("untrained",)  # values of config codec.fallback besides null


class CodecUnavailableError(RuntimeError):
    """The codec's weights cannot be loaded (offline, missing directory...)."""


def _hub_reachable(model_id, timeout_s=5.0):
    """Whether ``model_id`` may need the hub and its host answers: offline, the hub client's
    retries take ~25 s before failing, so weights are then looked up in the local cache only."""
    if Path(model_id).is_dir() or huggingface_hub.constants.HF_HUB_OFFLINE:
        return False
    url = urllib.parse.urlsplit(huggingface_hub.constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def _spans(n_frames, chunk_frames, context_frames):
    """Yield ``(context_start, start, stop)`` frame indices covering ``[0, n_frames)``."""
    for start in range(0, n_frames, chunk_frames):
        yield max(0, start - context_frames), start, min(start + chunk_frames, n_frames)


def _polyphase_forward(self, hidden_states):
    """Causal transposed convolution as ``kernel // stride`` taps of a plain convolution, then interleaving.

    Output sample ``n * stride + r`` is ``sum_j W[:, :, r + j * stride]^T x[n - j]``; the causal trim keeps
    ``n < n_in``. Equal to ``EncodecConvTranspose1d.forward`` up to float32 rounding, and about 3x faster
    on a CPU (PyTorch's CPU transposed convolution is slow at the decoder's lengths).
    """
    stride = self.conv.stride[0]
    n_taps = self.conv.kernel_size[0] // stride
    weight = self.conv.weight  # (in, out, kernel), weight norm applied
    n_in, n_out = weight.shape[:2]
    taps = weight.reshape(n_in, n_out, n_taps, stride).permute(1, 3, 0, 2).reshape(n_out * stride, n_in, n_taps)
    phases = F.conv1d(F.pad(hidden_states, (n_taps - 1, 0)), taps.flip(-1))  # (batch, out * stride, n)
    batch, _, length = phases.shape
    out = phases.reshape(batch, n_out, stride, length).transpose(2, 3).reshape(batch, n_out, length * stride)
    return out + self.conv.bias[:, None]


def _use_polyphase(model):
    """Give the decoder's causal, weight-normed transposed convolutions :func:`_polyphase_forward`."""
    for layer in model.decoder.modules():
        if (isinstance(layer, EncodecConvTranspose1d) and layer.causal and layer.trim_right_ratio == 1.0
                and layer.norm_type == "weight_norm" and layer.conv.kernel_size[0] % layer.conv.stride[0] == 0):
            layer.forward = types.MethodType(_polyphase_forward, layer)


class EncodecCodec:
    """Frozen EnCodec: audio to :class:`CodeStream` and back, in bounded memory.

    Parameters
    ----------
    model : transformers.EncodecModel
        A model without internal chunking or normalisation (the 24 kHz family).
    model_id : str
        Hub id or local directory the weights came from (recorded in outputs).
    bandwidth_kbps : float, default=6.0
        Target bandwidth, one of ``model.config.target_bandwidths``; 6 kbps gives
        8 codebooks at 75 Hz (transformers' own default, 1.5 kbps, gives 2).
    status : str, default=PRETRAINED_STATUS
        ``PRETRAINED_STATUS`` or ``UNTRAINED_STATUS``; stamped on every output.
    device : str, default="auto"
        ``"auto"`` uses CUDA when available.
    chunk_s : float, default=60.0
        Audio kept per chunk, in seconds.
    context_s : float, default=3.0
        Left context run before each chunk and discarded, in seconds.
    crossfade_s : float, default=0.5
        Decoder overlap-add length at joins, in seconds (at most ``context_s``).
    """

    def __init__(self, model, *, model_id, bandwidth_kbps=6.0, status=PRETRAINED_STATUS, device="auto",
                 chunk_s=60.0, context_s=3.0, crossfade_s=0.5):
        config = model.config
        if bandwidth_kbps not in config.target_bandwidths:
            raise ValueError(
                f"codec.bandwidth_kbps must be one of {list(config.target_bandwidths)} for {model_id}, "
                f"got {bandwidth_kbps!r}"
            )
        if config.chunk_length_s is not None or config.normalize:
            raise ValueError(
                f"{model_id}: EnCodec models with internal chunking or normalisation (48 kHz) are not supported; "
                "set codec.model to a 24 kHz EnCodec"
            )
        if not 0 <= crossfade_s <= context_s < chunk_s:
            raise ValueError(
                f"need 0 <= crossfade_s <= context_s < chunk_s, got {crossfade_s}, {context_s}, {chunk_s}"
            )
        self.model_id = model_id
        self.bandwidth_kbps = bandwidth_kbps
        self.status = status
        self.device = resolve_device(device)
        self.model = model.eval().requires_grad_(False).to(self.device)
        _use_polyphase(self.model)
        self.chunk_frames = round(chunk_s * self.frame_rate_hz)
        self.context_frames = round(context_s * self.frame_rate_hz)
        self.crossfade_frames = round(crossfade_s * self.frame_rate_hz)

    @classmethod
    def from_pretrained(cls, model_id="facebook/encodec_24khz", **kwargs):
        """Load pretrained weights from a hub id or local directory.

        Raises
        ------
        CodecUnavailableError
            The weights cannot be loaded; the message names ``codec.model`` and ``codec.fallback``.
        """
        try:
            model = EncodecModel.from_pretrained(model_id, local_files_only=not _hub_reachable(model_id))
        except (OSError, ValueError) as err:
            raise CodecUnavailableError(
                f"cannot load EnCodec weights {model_id!r} ({type(err).__name__}: {str(err).splitlines()[0]}); "
                "set codec.model to a local directory holding a copy (config.json + model.safetensors from "
                "facebook/encodec_24khz), or set codec.fallback: untrained for a demo with untrained weights"
            ) from err
        return cls(model, model_id=str(model_id), status=PRETRAINED_STATUS, **kwargs)

    @classmethod
    def untrained(cls, config=None, *, seed=0, **kwargs):
        """Same architecture, seeded random weights, all-zero codebooks (see :meth:`fit_untrained`).

        Parameters
        ----------
        config : EncodecConfig, optional
            Defaults to ``EncodecConfig()`` (the 24 kHz architecture).
        seed : int, default=0
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = EncodecModel(config or EncodecConfig())
        model_id = f"untrained-encodec-{model.config.sampling_rate // 1000}khz-seed{seed}"
        return cls(model, model_id=model_id, status=UNTRAINED_STATUS, **kwargs)

    @property
    def sample_rate_hz(self) -> int:
        return self.model.config.sampling_rate

    @property
    def hop_length(self) -> int:
        """Waveform samples per codec frame."""
        return self.model.config.hop_length

    @property
    def frame_rate_hz(self) -> float:
        """Exact frame rate, in hertz (``sample_rate_hz / hop_length``, 75.0 for 24 kHz)."""
        return self.sample_rate_hz / self.hop_length

    @property
    def n_codebooks(self) -> int:
        """Residual codebooks used at ``bandwidth_kbps`` (8 at 6 kbps)."""
        return self.model.quantizer.get_num_quantizers_for_bandwidth(self.bandwidth_kbps)

    @property
    def codebook_size(self) -> int:
        return self.model.config.codebook_size

    def codebook_vectors(self):
        """The codec's own code vectors; their per-frame sum is the quantized latent.

        Returns
        -------
        ndarray, shape (n_codebooks, codebook_size, codebook_dim), float32
        """
        layers = self.model.quantizer.layers[: self.n_codebooks]
        return torch.stack([layer.codebook.embed for layer in layers]).float().cpu().numpy()

    def _to_model_rate(self, waveform, sample_rate_hz):
        waveform = np.asarray(waveform, dtype=np.float32)
        if waveform.ndim != 1 or waveform.size == 0:
            raise ValueError(f"waveform must be a non-empty mono array (n_samples,), got shape {waveform.shape}")
        return resample(waveform, sample_rate_hz, self.sample_rate_hz)

    def _latent_chunks(self, waveform, desc):
        """Yield encoder latents ``(dim, frames)`` chunk by chunk, context dropped."""
        n_frames = math.ceil(len(waveform) / self.hop_length)
        spans = list(_spans(n_frames, self.chunk_frames, self.context_frames))
        with torch.inference_mode():
            for context_start, start, stop in tqdm(spans, desc=desc, unit="chunk", disable=len(spans) < 2):
                chunk = waveform[context_start * self.hop_length : stop * self.hop_length]
                latents = self.model.encoder(torch.from_numpy(chunk).to(self.device)[None, None])
                yield latents[0, :, start - context_start :]

    def latents(self, waveform, sample_rate_hz):
        """Continuous encoder output (before quantization).

        Parameters
        ----------
        waveform : ndarray, shape (n_samples,), float
        sample_rate_hz : float
            Resampled (soxr) to the codec rate when different.

        Returns
        -------
        ndarray, shape (n_frames, codebook_dim), float32
            ``n_frames = ceil(n_samples_at_codec_rate / hop_length)``.
        """
        waveform = self._to_model_rate(waveform, sample_rate_hz)
        return torch.cat(list(self._latent_chunks(waveform, "EnCodec latents")), dim=1).T.float().cpu().numpy()

    def fit_untrained(self, latents, *, max_frames=20_000, seed=0):
        """Adapt an untrained codec to this stimulus (:func:`giblet.audio.untrained.adapt_untrained`): returns
        ``latents`` as the adapted encoder gives them (pass these to :meth:`quantize`)."""
        if self.status == PRETRAINED_STATUS:
            raise ValueError(f"{self.model_id}: refusing to overwrite the weights of a pretrained codec")
        return adapt_untrained(self, latents, max_frames=max_frames, seed=seed)

    def _quantize(self, latents):
        """RVQ codes of device latents (codebook_dim, n) -> ndarray (n_codebooks, n)."""
        with torch.inference_mode():
            return self.model.quantizer.encode(latents[None], self.bandwidth_kbps)[:, 0].cpu().numpy()

    def quantize(self, latents):
        """Residual vector quantization of latents with the codec's codebooks, chunk by chunk.

        Parameters
        ----------
        latents : ndarray, shape (n_frames, codebook_dim), float32

        Returns
        -------
        CodeStream
        """
        latents = torch.from_numpy(np.asarray(latents, dtype=np.float32).T)
        return self._stream(np.concatenate([
            self._quantize(latents[:, start : start + self.chunk_frames].to(self.device))
            for start in range(0, latents.shape[1], self.chunk_frames)
        ], axis=1))

    def encode(self, waveform, sample_rate_hz):
        """Encode a mono waveform in overlapping chunks.

        Parameters
        ----------
        waveform : ndarray, shape (n_samples,), float
            Sample 0 is frame 0's start (the first fMRI frame, after :func:`load_audio`).
        sample_rate_hz : float
            Resampled (soxr) to the codec rate when different.

        Returns
        -------
        CodeStream
            int16 codes, shape (n_codebooks, ceil(n_samples_at_codec_rate / hop_length)).
        """
        waveform = self._to_model_rate(waveform, sample_rate_hz)
        chunks = [self._quantize(latents) for latents in self._latent_chunks(waveform, "EnCodec encode")]
        return self._stream(np.concatenate(chunks, axis=1))

    def _stream(self, codes):
        if self.status != PRETRAINED_STATUS and not self.codebook_vectors().any():
            raise RuntimeError(
                f"{self.model_id}: codebooks are all zero (untrained codec); call fit_untrained first"
            )
        return CodeStream(codes, self.frame_rate_hz, self.model_id, self.bandwidth_kbps, self.status)

    def decode(self, stream):
        """Decode codes to a waveform of exactly ``n_frames * hop_length`` samples.

        Chunks are decoded with ``context_s`` of preceding frames and joined by
        linear overlap-add over ``crossfade_s``.

        Parameters
        ----------
        stream : CodeStream
            Codes of this codec (same number of codebooks or fewer).

        Returns
        -------
        ndarray, shape (stream.n_frames * hop_length,), float32
            At ``sample_rate_hz``; sample 0 is heard at ``stream.times_s[0]``.
        """
        if stream.n_codebooks > len(self.model.quantizer.layers) or stream.codes.max(initial=0) >= self.codebook_size:
            raise ValueError(
                f"codes ({stream.n_codebooks} codebooks, max index {stream.codes.max(initial=0)}) do not fit codec "
                f"{self.model_id} ({len(self.model.quantizer.layers)} codebooks of {self.codebook_size}); "
                "decode with the codec that made them"
            )
        hop = self.hop_length
        out = np.zeros(stream.n_frames * hop, dtype=np.float32)
        fade = np.linspace(0.0, 1.0, self.crossfade_frames * hop, endpoint=False, dtype=np.float32)
        spans = list(_spans(stream.n_frames, self.chunk_frames, self.context_frames))
        codes = torch.from_numpy(stream.codes.astype(np.int64)).to(self.device)
        with torch.inference_mode():
            for context_start, start, stop in tqdm(spans, desc="EnCodec decode", unit="chunk", disable=len(spans) < 2):
                audio = self.model.decode(codes[None, None, :, context_start:stop], [None]).audio_values
                audio = audio[0, 0, : (stop - context_start) * hop].float().cpu().numpy()
                blend = self.crossfade_frames * hop if start else 0
                head = audio[(start - context_start) * hop - blend :]
                out[start * hop - blend : start * hop] *= 1 - fade[:blend]
                out[start * hop - blend : start * hop] += fade[:blend] * head[:blend]
                out[start * hop : stop * hop] = head[blend:]
        return out

    def describe(self) -> dict:
        """JSON-able description (status, model id, bandwidth, frame rate, codebooks)."""
        return {
            "codec_status": self.status,
            "codec_id": self.model_id,
            "bandwidth_kbps": self.bandwidth_kbps,
            "sample_rate_hz": self.sample_rate_hz,
            "hop_length": self.hop_length,
            "frame_rate_hz": self.frame_rate_hz,
            "n_codebooks": self.n_codebooks,
            "codebook_size": self.codebook_size,
            "chunk_s": self.chunk_frames / self.frame_rate_hz,
            "context_s": self.context_frames / self.frame_rate_hz,
            "crossfade_s": self.crossfade_frames / self.frame_rate_hz,
        }
