# The multimodal autoencoder and its ridge baselines, trained on all subjects at once.
from giblet.outputs import CODE_MODEL_OUTPUTS, TRAIN_OUTPUTS


rule train:
    input:
        features=get_feature_files(),
        aligned=[str(DERIVED / "aligned" / f"{stem}_fir.npz") for stem in ALIGN_STEMS],
        fmri=expand(str(DERIVED / "fmri" / "{subject}.npz"), subject=SUBJECTS),
        code_model=[str(DERIVED / "model" / CODE_MODEL_OUTPUTS["model"])] if "audio" in config["modalities"] else [],
    output:
        # not the resume checkpoint (TRAIN_CHECKPOINT): Snakemake deletes a failed job's outputs
        **{name: str(DERIVED / "model" / file) for name, file in TRAIN_OUTPUTS.items()},
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
