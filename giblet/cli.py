"""The giblet command line: one subcommand per pipeline stage (each Snakemake rule calls one)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from giblet.compute import cpu_threads
from giblet.config import ConfigError, load_config
from giblet.inputs import check_writable, fmri_inputs
from giblet.timing import ScanTiming

__all__ = ["main", "build_parser"]

log = logging.getLogger("giblet")


def _validate_config(args):
    cfg = load_config(args.config)
    print(f"{args.config}: valid ({cfg['dataset']}, {len(cfg['fmri']['subjects'])} subjects)")


def _check_inputs(args):
    from giblet.inputs import check_inputs, raw_inputs

    cfg = load_config(args.config)
    problems = check_inputs(cfg)
    if problems:
        listing = "\n".join(f"- {p}" for p in problems)
        raise ValueError(f"{args.config}: {len(problems)} problems with the inputs:\n{listing}")
    print(f"{args.config}: all {len(raw_inputs(cfg))} input files are present and fit the config; "
          "the output folders are writable")


def _demo_data(args):
    from giblet.demo.generate import generate_demo

    cfg = load_config(args.config)
    if "demo" not in cfg:
        raise ConfigError(f"{args.config}: has no 'demo' section; demo-data only generates the simulated dataset")
    paths = generate_demo(cfg, args.out)
    log.info("wrote %d files under %s", len(paths), args.out)


def _split_config(cfg):
    from giblet.splits import SplitConfig

    split = cfg["split"]
    return SplitConfig(fractions=tuple(split["fractions"]), gap_s=split["gap_s"], order=tuple(split["order"]),
                       min_gap_s=split["min_gap_s"], folds=cfg["cross_validation"]["folds"])


def _prepare_fmri(args):
    from giblet.fmri.stage import PrepareFmriConfig, run_prepare_fmri

    cfg = load_config(args.config)
    fmri = cfg["fmri"]
    if args.subject not in fmri["subjects"]:
        raise ConfigError(f"{args.config}: subject {args.subject!r} is not in fmri.subjects {fmri['subjects']}")
    confounds = fmri.get("confounds")
    run_prepare_fmri(
        args.subject, fmri_inputs(cfg, args.subject), args.out, ScanTiming.from_config(cfg),
        split=_split_config(cfg), config=PrepareFmriConfig.from_dict(fmri),
        confounds=None if confounds is None else confounds.format(subject=args.subject),
        published={roi: (table["path"], table.get("subjects", fmri["subjects"]).index(args.subject))
                   for roi, table in fmri["published_isc"].items()
                   if args.subject in table.get("subjects", fmri["subjects"])},
    )


def _group_isc(args):
    from giblet.fmri.stage import run_group_isc

    run_group_isc(args.inputs, args.out)


def _stimulus_input(cfg, args, key, modality, one_offset=True):
    """The stimulus file ``key`` of the config, checked for this command (and its start offset)."""
    stimulus = cfg["stimulus"]
    if key not in stimulus:
        raise ConfigError(f"{args.config}: {args.command} needs stimulus.{key} (or drop '{modality}' from modalities)")
    if one_offset and isinstance(stimulus["start_offset_s"], list):
        raise ConfigError(f"{args.config}: {args.command} needs one stimulus.start_offset_s, not one per run")
    return stimulus[key]


def _extract_audio(args):
    from giblet.audio.stage import CodecConfig, run_extract_audio

    cfg = load_config(args.config)
    run_extract_audio(_stimulus_input(cfg, args, "movie", "audio"), args.out, ScanTiming.from_config(cfg),
                      CodecConfig.from_dict(cfg["codec"]), seed=cfg["seed"], device=cfg["device"])


def _extract_video(args):
    from giblet.video.stage import VideoConfig, run_extract_video

    cfg = load_config(args.config)
    run_extract_video(_stimulus_input(cfg, args, "movie", "video", one_offset=False), args.out,
                      ScanTiming.from_config(cfg), VideoConfig.from_dict(cfg["video"]), device=cfg["device"])


def _extract_text(args):
    from giblet.text.stage import TextConfig, run_extract_text

    cfg = load_config(args.config)
    run_extract_text(_stimulus_input(cfg, args, "annotations", "text"), args.out, ScanTiming.from_config(cfg),
                     TextConfig.from_dict(cfg["text"]), device=cfg["device"])


def _import_features(args):
    from giblet.precomputed import run_import_features

    cfg = load_config(args.config)
    specs = cfg["stimulus"].get("precomputed")
    if not specs:
        raise ConfigError(f"{args.config}: import-features needs stimulus.precomputed")
    run_import_features(specs, args.out, tr_s=cfg["fmri"]["tr_s"], n_trs=sum(cfg["fmri"]["run_n_trs"]))


def _align(args):
    from giblet.alignment.stage import run_align

    cfg = load_config(args.config)
    fmri, align = cfg["fmri"], cfg["align"]
    run_align(
        args.inputs, args.out, run_n_trs=fmri["run_n_trs"], tr_s=fmri["tr_s"], hrf_model=align["hrf_model"],
        delays_trs=tuple(align["delays_trs"]), preshift_trs=fmri["preshift_trs"],
        slice_time_ref=align["slice_time_ref"],
    )


def _training_inputs(args):
    from giblet.training.stage import TrainingInputs

    return TrainingInputs(args.features, tuple(args.aligned), tuple(args.fmri), args.code_model)


def _train(args):
    from giblet.training.stage import TrainingSetup, run_train

    cfg = load_config(args.config)
    run_train(_training_inputs(args), args.out, TrainingSetup.from_config(cfg), restart=args.restart)


def _cross_validate(args):
    from giblet.evaluation.cross_validation import run_cross_validate
    from giblet.training.stage import TrainingSetup

    cfg = load_config(args.config)
    run_cross_validate(_training_inputs(args), args.out, TrainingSetup.from_config(cfg), _split_config(cfg),
                       cfg["cross_validation"]["seeds"] or [cfg["seed"]])


def _fit_code_model(args):
    from giblet.audio.code_model_stage import CodeModelConfig, run_fit_code_model

    cfg = load_config(args.config)
    run_fit_code_model(features_dir=args.features, prepared_path=args.fmri, out_dir=args.out,
                       config=CodeModelConfig.from_dict(cfg["code_model"]), preshift_trs=cfg["fmri"]["preshift_trs"],
                       device=cfg["device"])


def _score_code_model(args):
    from giblet.audio.code_model_stage import CodeScoreConfig, run_score_code_model

    cfg = load_config(args.config)
    run_score_code_model(features_dir=args.features, prepared_path=args.fmri, model_path=args.model, out_dir=args.out,
                         config=CodeScoreConfig.from_config(cfg))


def _evaluate(args):
    from giblet.evaluation.evaluate import EvaluateConfig, EvaluateInputs, run_evaluate

    cfg = load_config(args.config)
    inputs = EvaluateInputs(features_dir=args.features, aligned_paths=tuple(args.aligned),
                            prepared_paths=tuple(args.fmri), model_path=args.model, baselines_path=args.baselines,
                            group_isc_path=args.group_isc)
    run_evaluate(args.subject, inputs, args.out, EvaluateConfig.from_config(cfg))


def _audio_references(args):
    from giblet.evaluation.sound import run_audio_references

    cfg = load_config(args.config)
    run_audio_references(
        features_dir=args.features, prepared_path=args.fmri, out_dir=args.out,
        preshift_trs=cfg["fmri"]["preshift_trs"], stimulus_path=cfg["stimulus"].get("movie"),
        start_offset_s=cfg["stimulus"]["start_offset_s"], excerpt_s=cfg["evaluate"]["excerpt_s"],
        device=cfg["device"],
    )


def _decode_audio(args):
    from giblet.evaluation.evaluate import EvaluateConfig
    from giblet.evaluation.sound import run_decode_audio_eval

    cfg = load_config(args.config)
    run_decode_audio_eval(args.subject, features_dir=args.features, prepared_paths=args.fmri, model_path=args.model,
                          references_dir=args.references, out_dir=args.out, config=EvaluateConfig.from_config(cfg))


def _group_summary(args):
    from giblet.evaluation.group import run_group_summary

    cfg = load_config(args.config)
    run_group_summary(args.inputs, args.out, lesion_paths=args.lesions or (), n_bootstrap=cfg["evaluate"]["n_bootstrap"],
                      seed=cfg["seed"], block_trs=cfg["evaluate"]["bootstrap_block_trs"])


def _report(args):
    from giblet.report import ReportConfig, ReportInputs, run_report

    cfg = load_config(args.config)
    inputs = ReportInputs(eval_dir=args.evaluation, prepared_path=args.fmri, group_isc_path=args.group_isc,
                          config_path=args.config, wave_dir=args.waveforms, ground_truth_path=args.ground_truth)
    run_report(args.subject, inputs, args.out, ReportConfig.from_config(cfg))


def _group_report(args):
    from giblet.report import run_group_report

    cfg = load_config(args.config)
    run_group_report(dataset=cfg["dataset"], subjects=cfg["fmri"]["subjects"], group_summary_path=args.summary,
                     group_isc_path=args.group_isc, out_html=args.out, cross_validation_path=args.cross_validation,
                     encoding_voxels=args.encoding_voxels, prepared_path=args.fmri)


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add(sub, name, func, help_text):
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--config", required=True, type=Path, help="YAML config file (see config/demo.yaml)")
    parser.add_argument("--threads", type=_positive_int, metavar="N",
                        help="CPU threads for torch and BLAS (Snakemake passes each rule's threads; default: all)")
    parser.set_defaults(func=func)
    return parser


def build_parser():
    parser = argparse.ArgumentParser(prog="giblet", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add(sub, "validate-config", _validate_config, "check a config file against the schema")
    _add(sub, "check-inputs", _check_inputs, "check that every input file the config names exists")
    demo = _add(sub, "demo-data", _demo_data, "generate the simulated demo dataset (film, annotations, subjects)")
    demo.add_argument("--out", required=True, type=Path, help="output folder, e.g. data/demo")
    for name, func, what in (("extract-audio", _extract_audio, "EnCodec codes per TR, continuous views, codebooks"),
                             ("extract-video", _extract_video, "video features, per frame and per TR, and thumbnails"),
                             ("extract-text", _extract_text, "annotation embeddings and label fractions per TR")):
        stage = _add(sub, name, func, what)
        stage.add_argument("--out", required=True, type=Path, help="output folder")
    imp = _add(sub, "import-features", _import_features, "precomputed per-TR stimulus features as a feature table")
    imp.add_argument("--out", required=True, type=Path, help="output .npz")
    align = _add(sub, "align", _align, "HRF-convolve, TR-resample and FIR-delay stimulus feature tables")
    align.add_argument("--inputs", required=True, nargs="+", type=Path, help="FeatureTable .npz files")
    align.add_argument("--out", required=True, type=Path, help="output folder")
    train = _add(sub, "train", _train, "train the autoencoder (early stopping on the validation block) and ridge baselines")
    cv = _add(sub, "cross-validate", _cross_validate,
              "cross-validated encoding: the autoencoder and ridge retrained and scored on every fold (split.folds)")
    for parser_ in (train, cv):
        parser_.add_argument("--features", required=True, type=Path, help="folder of the extract-* outputs")
        parser_.add_argument("--aligned", required=True, nargs="+", type=Path, help="FIR-delayed tables (align outputs)")
        parser_.add_argument("--fmri", required=True, nargs="+", type=Path, help="prepare-fmri outputs, one per subject")
        parser_.add_argument("--code-model", type=Path, help="fit-code-model's code_model.npz (needed with audio)")
        parser_.add_argument("--out", required=True, type=Path, help="output folder")
    train.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    cm = _add(sub, "fit-code-model", _fit_code_model,
              "p(codes of a TR | its audio descriptor), trained on the film's audio alone (not the test block)")
    sm = _add(sub, "score-code-model", _score_code_model,
              "the code model on the test block from the true descriptor: bits per code over the unigram")
    sm.add_argument("--model", required=True, type=Path, help="fit-code-model's code_model.npz")
    for parser_, out in ((cm, "output folder (code_model.npz)"), (sm, "output folder (code_model_scores.json)")):
        parser_.add_argument("--features", required=True, type=Path, help="folder of the extract-audio outputs")
        parser_.add_argument("--fmri", required=True, type=Path, help="one subject's prepare-fmri output (for the split)")
        parser_.add_argument("--out", required=True, type=Path, help=out)
    ev = _add(sub, "evaluate", _evaluate, "encoding, decoding and lesion scores of one subject on the test block")
    ev.add_argument("--subject", required=True)
    for flag, nargs, what in (("--features", None, "folder of the extract-* outputs"),
                              ("--aligned", "+", "FIR-delayed tables (align outputs)"),
                              ("--fmri", "+", "prepare-fmri outputs of every subject"),
                              ("--model", None, "autoencoder.pt"), ("--baselines", None, "baselines.joblib"),
                              ("--group-isc", None, "group_isc.npz"), ("--out", None, "output folder")):
        ev.add_argument(flag, required=True, nargs=nargs, type=Path, help=what)
    ref = _add(sub, "audio-references", _audio_references,
               "the test block's codec resynthesis (the ceiling) and original sound, once for all subjects")
    ref.add_argument("--features", required=True, type=Path, help="folder of the extract-audio outputs")
    ref.add_argument("--fmri", required=True, type=Path, help="one subject's prepare-fmri output (for the split)")
    ref.add_argument("--out", required=True, type=Path, help="output folder")
    dec = _add(sub, "decode-audio", _decode_audio, "decode the test block to WAVs through the frozen codec, with lesions")
    dec.add_argument("--subject", required=True)
    for flag, nargs, what in (("--features", None, "folder of the extract-audio outputs"),
                              ("--fmri", "+", "prepare-fmri outputs of every subject"),
                              ("--model", None, "autoencoder.pt"),
                              ("--references", None, "the audio-references output folder"),
                              ("--out", None, "output folder")):
        dec.add_argument(flag, required=True, nargs=nargs, type=Path, help=what)
    grp = _add(sub, "group-summary", _group_summary, "every headline number across subjects")
    grp.add_argument("--inputs", required=True, nargs="+", type=Path, help="evaluate summary.json files")
    grp.add_argument("--lesions", nargs="+", type=Path, help="evaluate lesions_per_tr.tsv.gz files (pooled lesion tests)")
    grp.add_argument("--out", required=True, type=Path, help="output folder (the group_summary* files)")
    rep = _add(sub, "report", _report, "one subject's HTML report")
    rep.add_argument("--subject", required=True)
    rep.add_argument("--evaluation", required=True, type=Path, help="the subject's evaluate folder")
    rep.add_argument("--waveforms", type=Path, help="the subject's decode-audio folder (when audio is modelled)")
    rep.add_argument("--fmri", required=True, type=Path, help="the subject's prepare-fmri output")
    rep.add_argument("--group-isc", required=True, type=Path, help="group_isc.npz")
    rep.add_argument("--ground-truth", type=Path, help="the demo's ground_truth.json (its known answers are checked)")
    rep.add_argument("--out", required=True, type=Path, help="output .html")
    grep_ = _add(sub, "group-report", _group_report, "the group HTML page linking every subject")
    grep_.add_argument("--summary", required=True, type=Path, help="group-summary output .json")
    grep_.add_argument("--group-isc", required=True, type=Path, help="group_isc.npz")
    grep_.add_argument("--cross-validation", type=Path, help="cross-validate's cv_encoding.json (with cross_validation.folds)")
    grep_.add_argument("--encoding-voxels", nargs="*", default=(), type=Path,
                       help="every subject's encoding_voxels.npz (evaluate): the group map of mean voxel r")
    grep_.add_argument("--fmri", type=Path, help="one subject's prepare-fmri output: the group map's background")
    grep_.add_argument("--out", required=True, type=Path, help="output .html")
    prep = _add(sub, "prepare-fmri", _prepare_fmri,
                "read, check, clean and standardise one subject's fMRI (training-block statistics only)")
    prep.add_argument("--subject", required=True, help="a subject id from fmri.subjects")
    prep.add_argument("--out", required=True, type=Path, help="output .npz")
    isc = _add(sub, "group-isc", _group_isc, "leave-one-subject-out ISC per voxel and ROI (the noise ceiling)")
    isc.add_argument("--inputs", required=True, nargs="+", type=Path, help="prepare-fmri outputs, one per subject")
    isc.add_argument("--out", required=True, type=Path, help="output .npz")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    try:
        if getattr(args, "out", None) is not None:  # before any work, not when the results are ready
            check_writable(args.out if not args.out.suffix else args.out.parent)
        with cpu_threads(args.threads):
            args.func(args)
    except (ConfigError, ValueError, OSError) as err:
        print(f"giblet {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
