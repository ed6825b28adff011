# Scores on the held-out test block, decoded sound, and the reports.
# Output file names are the stages' own constants (giblet.outputs).
from giblet.outputs import (CV_OUTPUTS, EVALUATE_OUTPUTS, GROUP_SUMMARY_OUTPUTS, REPORT_AUDIO_SUFFIX, WAVEFORMS_DIR,
                            evaluate_outputs)

EVAL = DERIVED / "evaluation"
AUDIO_REFERENCES = EVAL / "audio_references"  # the test block's ceiling and original sound, shared by all subjects
REPORTS = Path(config["reports_dir"]) / DATASET


rule evaluate:
    input:
        features=get_feature_files(),
        aligned=[str(DERIVED / "aligned" / f"{stem}_fir.npz") for stem in ALIGN_STEMS],
        fmri=expand(str(DERIVED / "fmri" / "{subject}.npz"), subject=SUBJECTS),
        model=rules.train.output.model,
        baselines=rules.train.output.baselines,
        group_isc=str(DERIVED / "fmri" / "group_isc.npz"),
    output:
        **{name: str(EVAL / "{subject}" / file) for name, file in evaluate_outputs(config["modalities"]).items()},
    params:
        settings=lambda w: section("seed", "modalities", "evaluate", "fmri.preshift_trs"),
        features=str(DERIVED / "features"),
        out=lambda w: str(EVAL / w.subject),
    log:
        str(LOGS / "evaluate" / "{subject}.log"),
    benchmark:
        str(BENCH / "evaluate" / "{subject}.tsv")
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        "giblet evaluate --config {CONFIG_FILE} --threads {threads} --subject {wildcards.subject} --features {params.features} "
        "--aligned {input.aligned} --fmri {input.fmri} --model {input.model} --baselines {input.baselines} "
        "--group-isc {input.group_isc} --out {params.out} 2> {log}"


rule audio_references:
    input:
        features=[str(DERIVED / "features" / f) for f in AUDIO_FILES],
        fmri=str(DERIVED / "fmri" / f"{SUBJECTS[0]}.npz"),  # the split, shared by all subjects
        movie=config["stimulus"].get("movie", []),
    output:
        directory(str(AUDIO_REFERENCES)),  # the WAVs and their summary (AUDIO_REFERENCE_OUTPUTS)
    params:
        settings=lambda w: section("evaluate.excerpt_s", "stimulus", "fmri.preshift_trs"),
        features=str(DERIVED / "features"),
        out=str(AUDIO_REFERENCES),
    log:
        str(LOGS / "audio_references.log"),
    benchmark:
        str(BENCH / "audio_references.tsv")
    threads: 1
    resources:
        mem_mb=3000,
    shell:
        "giblet audio-references --config {CONFIG_FILE} --threads {threads} --features {params.features} --fmri {input.fmri} "
        "--out {params.out} 2> {log}"


rule decode_audio:
    input:
        features=[str(DERIVED / "features" / f) for f in AUDIO_FILES],
        fmri=expand(str(DERIVED / "fmri" / "{subject}.npz"), subject=SUBJECTS),
        model=rules.train.output.model,
        references=rules.audio_references.output,
    output:
        directory(str(EVAL / "{subject}" / WAVEFORMS_DIR)),  # the WAVs, their scores and summary (DECODE_AUDIO_OUTPUTS)
    params:
        # what decode-audio reads: scores settings such as n_bootstrap do not rerun the waveform decoding
        settings=lambda w: section("seed", "evaluate.lesion_mode", "evaluate.lesion_inputs",
                                   "fmri.preshift_trs"),
        features=str(DERIVED / "features"),
        references=str(AUDIO_REFERENCES),
    log:
        str(LOGS / "decode_audio" / "{subject}.log"),
    benchmark:
        str(BENCH / "decode_audio" / "{subject}.tsv")
    threads: 1
    priority: 1  # the longest jobs after train start first; evaluate and the pages fill the cores they leave
    resources:
        mem_mb=4000,
    shell:
        "giblet decode-audio --config {CONFIG_FILE} --threads {threads} --subject {wildcards.subject} --features {params.features} "
        "--fmri {input.fmri} --model {input.model} --references {params.references} --out {output} 2> {log}"


rule group_summary:
    input:
        summaries=expand(str(EVAL / "{subject}" / EVALUATE_OUTPUTS["summary"]), subject=SUBJECTS),
        lesions=expand(str(EVAL / "{subject}" / EVALUATE_OUTPUTS["lesions_per_tr"]), subject=SUBJECTS),
    output:
        **{name: str(EVAL / file) for name, file in GROUP_SUMMARY_OUTPUTS.items()},
    params:
        settings=lambda w: section("seed", "evaluate"),
        out=str(EVAL),
    log:
        str(LOGS / "group_summary.log"),
    shell:
        "giblet group-summary --config {CONFIG_FILE} --threads {threads} --inputs {input.summaries} --lesions {input.lesions} "
        "--out {params.out} 2> {log}"


def report_waveforms(wildcards):
    if "audio" not in config["modalities"]:
        return []
    return str(EVAL / wildcards.subject / WAVEFORMS_DIR)


rule report:
    input:
        evaluation=rules.evaluate.output,
        waveforms=report_waveforms,
        fmri=str(DERIVED / "fmri" / "{subject}.npz"),
        group_isc=str(DERIVED / "fmri" / "group_isc.npz"),
        ground_truth=[demo_outputs()["ground_truth"]] if "demo" in config else [],
    output:
        page=report(str(REPORTS / "{subject}.html"), category="Subjects", labels={"subject": "{subject}"}),
        # the players' WAVs beside the page (giblet.report.audio)
        **({"audio": directory(str(REPORTS / f"{{subject}}{REPORT_AUDIO_SUFFIX}"))} if "audio" in config["modalities"] else {}),
    params:
        evaluation=lambda w: str(EVAL / w.subject),
        waveforms=lambda w, input: f"--waveforms {input.waveforms}" if input.waveforms else "",
        ground_truth=lambda w, input: f"--ground-truth {input.ground_truth}" if input.ground_truth else "",
    log:
        str(LOGS / "report" / "{subject}.log"),
    threads: 1
    shell:
        "giblet report --config {CONFIG_FILE} --threads {threads} --subject {wildcards.subject} --evaluation {params.evaluation} "
        "{params.waveforms} {params.ground_truth} --fmri {input.fmri} --group-isc {input.group_isc} --out {output.page} 2> {log}"


rule cross_validate:
    input:
        features=get_feature_files(),
        aligned=[str(DERIVED / "aligned" / f"{stem}_fir.npz") for stem in ALIGN_STEMS],
        fmri=expand(str(DERIVED / "fmri" / "{subject}.npz"), subject=SUBJECTS),
        code_model=[str(CODE_MODEL / CODE_MODEL_OUTPUTS["model"])] if "audio" in config["modalities"] else [],
    output:
        [str(DERIVED / "cross_validation" / name) for name in CV_OUTPUTS.values()],
    params:
        settings=lambda w: section("seed", "modalities", "model", "train", "cross_validation", "fmri.preshift_trs"),
        features=str(DERIVED / "features"),
        out=str(DERIVED / "cross_validation"),
        code_model=lambda w, input: f"--code-model {input.code_model}" if input.code_model else "",
    log:
        str(LOGS / "cross_validate.log"),
    benchmark:
        str(BENCH / "cross_validate.tsv")
    threads: workflow.cores  # trains the autoencoder once per fold and seed
    resources:
        mem_mb=6000,
        gpu=1 if config["device"] == "cuda" else 0,
    shell:
        "giblet cross-validate --config {CONFIG_FILE} --threads {threads} --features {params.features} "
        "--aligned {input.aligned} --fmri {input.fmri} {params.code_model} --out {params.out} 2> {log}"


def cross_validation_summary(wildcards):
    if config["cross_validation"]["folds"] < 3:
        return []
    return str(DERIVED / "cross_validation" / CV_OUTPUTS["summary"])


rule group_report:
    input:
        summary=str(EVAL / GROUP_SUMMARY_OUTPUTS["summary"]),
        group_isc=str(DERIVED / "fmri" / "group_isc.npz"),
        pages=expand(str(REPORTS / "{subject}.html"), subject=SUBJECTS),
        cross_validation=cross_validation_summary,
        encoding_voxels=expand(str(EVAL / "{subject}" / EVALUATE_OUTPUTS["encoding_voxels"]), subject=SUBJECTS),
        fmri=str(DERIVED / "fmri" / f"{SUBJECTS[0]}.npz"),  # the group map's background
    output:
        report(str(REPORTS / "index.html"), category="Group"),
    params:
        cross_validation=lambda w, input: f"--cross-validation {input.cross_validation}" if input.cross_validation else "",
    log:
        str(LOGS / "group_report.log"),
    shell:
        "giblet group-report --config {CONFIG_FILE} --threads {threads} --summary {input.summary} --group-isc {input.group_isc} "
        "{params.cross_validation} --encoding-voxels {input.encoding_voxels} --fmri {input.fmri} --out {output} 2> {log}"
