"""Audio path: stimulus sound -> EnCodec codes per TR (exact timing) -> waveforms."""

from giblet.audio.codec import (
    CODEC_FALLBACKS,
    PRETRAINED_STATUS,
    UNTRAINED_STATUS,
    CodecUnavailableError,
    EncodecCodec,
)
from giblet.audio.codes import PAD_CODE, CodeStream, codes_by_tr, frame_trs, stream_from_trs, tr_frame_spans
from giblet.audio.descriptors import audio_descriptors, frame_tr_means, sounding_frames
from giblet.audio.load import load_audio, resample
from giblet.audio.metrics import (
    AUDIO_METRICS,
    log_mel_distance,
    multi_resolution_stft_distance,
    score_audio,
    score_audio_pairs,
    si_sdr,
    stoi,
)
from giblet.audio.stage import STAGE_OUTPUTS, CodecConfig, load_stage_codec, run_decode_audio, run_extract_audio
from giblet.audio.views import code_histograms, pooled_embeddings, quantized_latent

__all__ = [
    "AUDIO_METRICS",
    "CODEC_FALLBACKS",
    "PAD_CODE",
    "PRETRAINED_STATUS",
    "STAGE_OUTPUTS",
    "UNTRAINED_STATUS",
    "CodeStream",
    "CodecConfig",
    "CodecUnavailableError",
    "EncodecCodec",
    "audio_descriptors",
    "code_histograms",
    "codes_by_tr",
    "frame_tr_means",
    "sounding_frames",
    "frame_trs",
    "load_audio",
    "load_stage_codec",
    "log_mel_distance",
    "multi_resolution_stft_distance",
    "pooled_embeddings",
    "quantized_latent",
    "resample",
    "run_decode_audio",
    "run_extract_audio",
    "score_audio",
    "score_audio_pairs",
    "si_sdr",
    "stoi",
    "stream_from_trs",
    "tr_frame_spans",
]
