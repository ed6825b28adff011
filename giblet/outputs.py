"""What every stage writes: file names and the array keys inside them, in one place.

The stages write these, the workflow's rules declare them and the report reads them, all through these
constants, so none of the three can drift from the others. The module imports nothing, so the Snakefile
reads it at once.
"""

from __future__ import annotations

__all__ = ["AUDIO_OUTPUTS", "UNTRAINED_CODEC_DIR", "VIDEO_OUTPUTS", "video_outputs", "TEXT_OUTPUTS",
           "CODE_MODEL_OUTPUTS", "TRAIN_OUTPUTS", "TRAIN_CHECKPOINT", "EVALUATE_OUTPUTS", "evaluate_outputs",
           "EXAMPLE_THUMBS", "AUDIO_REFERENCE_OUTPUTS", "DECODE_AUDIO_OUTPUTS", "AUDIO_REFERENCES",
           "GROUP_SUMMARY_OUTPUTS", "WAVEFORMS_DIR", "REPORT_AUDIO_SUFFIX", "CV_OUTPUTS", "HEADLINE_METRIC"]

#: ``giblet extract-audio``
AUDIO_OUTPUTS = {
    "codes": "codes.npz",  # CodeStream + tr_frame_spans (n_trs, 2) + tr_s
    "frames": "audio_frames.npz",  # FeatureTable: quantized latent per 75 Hz frame
    "pooled": "audio_pooled.npz",  # FeatureTable: per-TR mean code vectors
    "histograms": "audio_histograms.npz",  # FeatureTable (labels): per-TR code usage
    "logmel_frames": "audio_logmel_frames.npz",  # FeatureTable: 32-band log-mel (dB) of the original sound per frame
    "logmel_tr": "audio_logmel_tr.npz",  # FeatureTable: per-TR mean of those frames
    "envelope_tr": "audio_envelope_tr.npz",  # FeatureTable: per-TR broad-band levels and level SD (dB)
    "codebooks": "codebooks.npz",  # vectors (n_codebooks, codebook_size, dim) + meta (codec stamp)
    "codec": "codec.json",  # status, model id, bandwidth, frame rate, n_codebooks...
}
#: ``save_pretrained`` folder of the fallback codec, beside the audio outputs whenever ``codec.fallback`` is set
#: (empty when the configured weights loaded: the later stages load those)
UNTRAINED_CODEC_DIR = "codec_untrained"

#: ``giblet extract-video`` (the ``embedding_*`` ones only with ``video.image_model``)
VIDEO_OUTPUTS = {
    "lowlevel_frames": "video_lowlevel_frames.npz",
    "lowlevel_tr": "video_lowlevel_tr.npz",
    "thumbnails_tr": "video_thumbnails_tr.npz",
    "embedding_samples": "video_embedding_samples.npz",
    "embedding_tr": "video_embedding_tr.npz",
}


def video_outputs(image_model):
    """The files of :data:`VIDEO_OUTPUTS` that ``giblet extract-video`` writes with ``image_model`` (or None)."""
    return {k: f for k, f in VIDEO_OUTPUTS.items() if image_model is not None or not k.startswith("embedding_")}


#: ``giblet extract-text`` (the label tables only with ``text.label_columns``)
TEXT_OUTPUTS = {
    "text_segments": "text_segments.npz",
    "text_tr": "text_tr.npz",
    "labels_segments": "labels_segments.npz",
    "labels_tr": "labels_tr.npz",
    "report": "text_report.json",
}

#: ``giblet fit-code-model`` and ``giblet score-code-model``
CODE_MODEL_OUTPUTS = {
    "model": "code_model.npz",  # weights, descriptor standardisation, unigram prior, chosen penalties
    "scores": "code_model_scores.json",  # test-block cross-entropies and bits per code gained, with CIs
}

#: ``giblet train``
TRAIN_OUTPUTS = {
    "model": "autoencoder.pt",  # config + each half's best validation weights
    "baselines": "baselines.joblib",  # per-subject ridge encoders and decoders
    "history": "history.tsv",  # losses per epoch
    "summary": "summary.json",  # parameter counts, epochs, the routes' voxels and validation scores
}
#: Training state a rerun with the same inputs resumes from; never a declared output (Snakemake deletes a failed
#: job's outputs, and this file must outlive a failed run)
TRAIN_CHECKPOINT = "checkpoint.pt"

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

#: ``giblet group-summary``: every subject's headline numbers side by side, their group tests, the pooled lesions
GROUP_SUMMARY_OUTPUTS = {
    "summary": "group_summary.json",  # per number: mean, sd, range, per-subject values; group tests; pooled lesions
    "numbers": "group_summary.tsv",  # the same numbers, one row each
    "tests": "group_summary_tests.tsv",  # per number: a test across subjects
    "lesions": "group_summary_lesions.tsv",  # every lesion's change, TRs pooled over subjects
    "lesion_contrasts": "group_summary_lesion_contrasts.tsv",  # each ROI's lesion against the others'
}
#: ``giblet decode-audio`` and ``giblet audio-references`` write WAVs beside their summaries: the rules declare the
#: folders (``WAVEFORMS_DIR`` inside a subject's evaluation folder)
WAVEFORMS_DIR = "waveforms"
#: ``giblet report`` copies the players' WAVs into ``<page stem><REPORT_AUDIO_SUFFIX>/`` beside the page
REPORT_AUDIO_SUFFIX = "_audio"

#: ``giblet cross-validate``: both encoders retrained and scored on every fold
CV_OUTPUTS = {
    "scores": "cv_encoding.tsv",  # subject x fold x seed x ROI: mean voxel r of both models and the ceiling
    "identification": "cv_identification.tsv",  # subject x fold x model x seed x view: rank accuracy, shifted mean
    "summary": "cv_encoding.json",  # both, pooled over folds per subject, then over subjects (seed spread, p)
}
