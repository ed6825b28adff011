"""Audio path: stimulus sound -> EnCodec codes per TR (exact timing) -> waveforms."""

from giblet.audio.codec import EncodecCodec, UNTRAINED_STATUS
from giblet.audio.codes import CodeStream, codes_by_tr
from giblet.audio.load import load_audio
from giblet.audio.metrics import score_audio
from giblet.audio.stage import CodecConfig, run_decode_audio, run_extract_audio

__all__ = [
    "EncodecCodec", "CodecConfig", "CodeStream", "codes_by_tr", "load_audio", "score_audio",
    "run_extract_audio", "run_decode_audio", "UNTRAINED_STATUS",
]
