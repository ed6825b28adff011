# The multimodal autoencoder and its ridge baselines, trained on all subjects at once.


rule train:
    input:
        features=get_feature_files(),
        aligned=[str(DERIVED / "aligned" / f"{stem}_fir.npz") for stem in ALIGN_STEMS],
        fmri=expand(str(DERIVED / "fmri" / "{subject}.npz"), subject=SUBJECTS),
        code_model=[str(DERIVED / "model" / "code_model.npz")] if "audio" in config["modalities"] else [],
    output:
        model=str(DERIVED / "model" / "autoencoder.pt"),
        baselines=str(DERIVED / "model" / "baselines.joblib"),
        history=str(DERIVED / "model" / "history.tsv"),
        summary=str(DERIVED / "model" / "summary.json"),
    params:
        settings=lambda w: section("seed", "modalities", "model", "train", "fmri.preshift_trs"),
        features=str(DERIVED / "features"),
        out=str(DERIVED / "model"),
        code_model=lambda w, input: f"--code-model {input.code_model}" if input.code_model else "",
    log:
        str(LOGS / "train.log"),
    benchmark:
        str(BENCH / "train.tsv")
    threads: workflow.cores  # runs alone in the DAG: every core Snakemake was given
    resources:
        mem_mb=6000,
        gpu=1 if config["device"] == "cuda" else 0,
    shell:
        "giblet train --config {CONFIG_FILE} --threads {threads} --features {params.features} --aligned {input.aligned} "
        "--fmri {input.fmri} {params.code_model} --out {params.out} 2> {log}"
