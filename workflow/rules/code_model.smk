# The code model: p(EnCodec codes of a TR | its audio descriptor), trained on the film's audio alone
# (no fMRI: one subject's prepared file gives only the split), then scored on the test block. Two
# rules, so that scoring settings (bootstrap, permutations) never refit the model the autoencoder holds.

from giblet.outputs import CODE_MODEL_OUTPUTS

CODE_MODEL = DERIVED / "model"


rule fit_code_model:
    input:
        codes=str(DERIVED / "features" / AUDIO_OUTPUTS["codes"]),
        codebooks=str(DERIVED / "features" / AUDIO_OUTPUTS["codebooks"]),
        descriptor=str(DERIVED / "features" / config["code_model"]["descriptor"]),
        fmri=str(DERIVED / "fmri" / f"{SUBJECTS[0]}.npz"),  # the split, shared by all subjects
    output:
        model=str(CODE_MODEL / CODE_MODEL_OUTPUTS["model"]),
    params:
        settings=lambda w: section("device", "code_model", "fmri.preshift_trs"),
        features=str(DERIVED / "features"),
        out=str(CODE_MODEL),
    log:
        str(LOGS / "fit_code_model.log"),
    benchmark:
        str(BENCH / "fit_code_model.tsv")
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "giblet fit-code-model --config {CONFIG_FILE} --threads {threads} --features {params.features} --fmri {input.fmri} "
        "--out {params.out} 2> {log}"


rule score_code_model:
    input:
        model=rules.fit_code_model.output.model,
        codes=str(DERIVED / "features" / AUDIO_OUTPUTS["codes"]),
        descriptor=str(DERIVED / "features" / config["code_model"]["descriptor"]),
        fmri=str(DERIVED / "fmri" / f"{SUBJECTS[0]}.npz"),
    output:
        scores=str(CODE_MODEL / CODE_MODEL_OUTPUTS["scores"]),
    params:
        settings=lambda w: section("seed", "fmri.preshift_trs", "evaluate.n_bootstrap", "evaluate.bootstrap_block_trs",
                                   "evaluate.n_permutations"),
        features=str(DERIVED / "features"),
        out=str(CODE_MODEL),
    log:
        str(LOGS / "score_code_model.log"),
    benchmark:
        str(BENCH / "score_code_model.tsv")
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "giblet score-code-model --config {CONFIG_FILE} --threads {threads} --features {params.features} --fmri {input.fmri} "
        "--model {input.model} --out {params.out} 2> {log}"
