# The code model: p(EnCodec codes of a TR | its audio descriptor), trained on the film's audio alone
# (no fMRI: one subject's prepared file gives only the split), scored on the test block.

CODE_MODEL = DERIVED / "model"


rule fit_code_model:
    input:
        codes=str(DERIVED / "features" / "codes.npz"),
        codebooks=str(DERIVED / "features" / "codebooks.npz"),
        descriptor=str(DERIVED / "features" / config["code_model"]["descriptor"]),
        fmri=str(DERIVED / "fmri" / f"{SUBJECTS[0]}.npz"),  # the split, shared by all subjects
    output:
        model=str(CODE_MODEL / "code_model.npz"),
        scores=str(CODE_MODEL / "code_model_scores.json"),
    params:
        settings=lambda w: section("seed", "device", "code_model", "fmri.preshift_trs", "evaluate.n_bootstrap",
                                   "evaluate.bootstrap_block_trs", "evaluate.n_permutations"),
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
        "giblet fit-code-model --config {CONFIG_FILE} --features {params.features} --fmri {input.fmri} "
        "--out {params.out} 2> {log}"
