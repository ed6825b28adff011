# Stimulus features on the fMRI clock: HRF-convolved (<stem>_hrf), TR means (<stem>_tr), FIR-delayed (<stem>_fir).


rule align:
    input:
        [str(DERIVED / "features" / f"{stem}.npz") for stem in ALIGN_STEMS],
    output:
        [str(DERIVED / "aligned" / f"{stem}_{suffix}.npz") for stem in ALIGN_STEMS for suffix in ("hrf", "tr", "fir")],
    params:
        settings=lambda w: section("align", "fmri.tr_s", "fmri.run_n_trs", "fmri.preshift_trs"),
        out=str(DERIVED / "aligned"),
    log:
        str(LOGS / "align.log"),
    benchmark:
        str(BENCH / "align.tsv")
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        "giblet align --config {CONFIG_FILE} --threads {threads} --inputs {input} --out {params.out} 2> {log}"
