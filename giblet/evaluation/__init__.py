"""Evaluation: encoding and decoding scores next to their references, lesions, and decoded waveforms.

Entry points (one per workflow rule): :func:`run_evaluate`, :func:`run_audio_references`,
:func:`run_decode_audio_eval`, :func:`run_group_summary` and :func:`run_cross_validate`. The pieces
they are built from live in their modules (``metrics``, ``nulls``, ``encoding``, ``decoding``,
``targets``, ``lesions``, ``group``).
"""

from giblet._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "cross_validation": ["run_cross_validate"],
    "evaluate": ["EvaluateConfig", "EvaluateInputs", "run_evaluate"],
    "group": ["run_group_summary"],
    "sound": ["run_audio_references", "run_decode_audio_eval"],
})
