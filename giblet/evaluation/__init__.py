"""Evaluation: encoding and decoding scores next to their references, lesions, and decoded waveforms.

Entry points (one per workflow rule): :func:`run_evaluate`, :func:`run_audio_references`,
:func:`run_decode_audio_eval`, :func:`run_group_summary` and :func:`run_cross_validate`. The pieces
they are built from live in their modules (``metrics``, ``nulls``, ``encoding``, ``decoding``,
``targets``, ``lesions``, ``group``).
"""

from giblet.evaluation.cross_validation import run_cross_validate
from giblet.evaluation.evaluate import EvaluateConfig, EvaluateInputs, run_evaluate
from giblet.evaluation.group import run_group_summary
from giblet.evaluation.sound import run_audio_references, run_decode_audio_eval
from giblet.outputs import EVALUATE_OUTPUTS, HEADLINE_METRIC

__all__ = [
    "EVALUATE_OUTPUTS",
    "HEADLINE_METRIC",
    "EvaluateConfig",
    "EvaluateInputs",
    "run_audio_references",
    "run_cross_validate",
    "run_decode_audio_eval",
    "run_evaluate",
    "run_group_summary",
]
