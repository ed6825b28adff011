"""What the evaluation stages write: file names and the array keys inside them, in one place.

The stages write these, ``workflow/rules/evaluate.smk`` declares them and the report reads them, all
through these constants, so none of the three can drift from the others.
"""

from __future__ import annotations

__all__ = ["EVALUATE_OUTPUTS", "evaluate_outputs", "EXAMPLE_THUMBS", "AUDIO_REFERENCE_OUTPUTS", "DECODE_AUDIO_OUTPUTS",
           "AUDIO_REFERENCES", "CV_OUTPUTS", "HEADLINE_METRIC"]

#: The decoding metric of the lesion summaries and the report's lesion heatmap: TR identification (rank accuracy),
#: which every modality has
HEADLINE_METRIC = "rank_accuracy"

#: ``giblet evaluate``: one subject's scores on the test block
EVALUATE_OUTPUTS = {
    "encoding_rois": "encoding_rois.tsv",  # ROI x model: r of the ROI mean, ceiling, r/ceiling, p
    "encoding_voxels": "encoding_voxels.npz",  # per-voxel r, p, q per model + ceiling + voxel grid
    "decoding": "decoding.tsv",  # model x input x modality x metric: score, chance, baseline, null, p
    "lesions": "lesions.tsv",  # lesion x model x input x modality x metric: change and bootstrap CI
    "lesions_per_tr": "lesions_per_tr.tsv.gz",  # the per-TR scores behind lesions.tsv
    "examples": "examples.npz",  # true / decoded / reconstructed thumbnails of some test TRs (EXAMPLE_THUMBS)
    "text_examples": "text_examples.tsv",  # true and retrieved annotation text of every scored TR
    "codebook_encoding": "codebook_encoding.tsv",  # sound feature set (codebook level, log-mel) x ROI: ridge r
    "summary": "summary.json",  # headline numbers and codec status
}


def evaluate_outputs(modalities):
    """The files of :data:`EVALUATE_OUTPUTS` that ``giblet evaluate`` writes for ``modalities``
    (the per-codebook encoding needs audio)."""
    return {name: file for name, file in EVALUATE_OUTPUTS.items()
            if name != "codebook_encoding" or "audio" in modalities}


#: ``examples.npz`` thumbnail arrays (n_examples, channels, height, width) by row label, in display order: the
#: film's, decoded from measured BOLD, reconstructed from the encoder's predicted BOLD; beside them ``trs``, ``times_s``
EXAMPLE_THUMBS = {"true": "true_thumbs", "decoded": "decoded_thumbs", "reconstructed": "reconstructed_thumbs"}
#: ``giblet audio-references``: the test block's sounds every decoded WAV is scored against
AUDIO_REFERENCE_OUTPUTS = {"summary": "references.json"}
#: ``giblet decode-audio``: one subject's decoded WAVs, their scores and TR ranges
DECODE_AUDIO_OUTPUTS = {"summary": "waveforms.json", "scores": "waveform_scores.tsv"}
#: Sounds every decoded WAV is scored against: the codec's resynthesis of the true codes (the ceiling), the film's.
AUDIO_REFERENCES = ("codec_resynthesis", "original")

#: ``giblet cross-validate``: both encoders retrained and scored on every fold
CV_OUTPUTS = {
    "scores": "cv_encoding.tsv",  # subject x fold x seed x ROI: mean voxel r of both models and the ceiling
    "identification": "cv_identification.tsv",  # subject x fold x model x seed x view: rank accuracy, shifted mean
    "summary": "cv_encoding.json",  # both, pooled over folds per subject, then over subjects (seed spread, p)
}
