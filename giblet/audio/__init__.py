"""Audio path: stimulus sound -> EnCodec codes per TR (exact timing) -> waveforms."""

from giblet._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "codec": ["EncodecCodec", "UNTRAINED_STATUS"],
    "codes": ["CodeStream", "codes_by_tr"],
    "load": ["load_audio"],
    "metrics": ["score_audio"],
    "stage": ["CodecConfig", "run_decode_audio", "run_extract_audio"],
})
