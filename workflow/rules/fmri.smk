# fMRI: per-subject reading, quality control, cleaning and standardisation; the group ISC ceiling.


rule prepare_fmri:
    input:
        get_fmri_inputs,
    output:
        str(DERIVED / "fmri" / "{subject}.npz"),
    params:
        settings=lambda w: section("fmri", "split", "cross_validation.folds"),
    log:
        str(LOGS / "prepare_fmri" / "{subject}.log"),
    benchmark:
        str(BENCH / "prepare_fmri" / "{subject}.tsv")
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        "giblet prepare-fmri --config {CONFIG_FILE} --threads {threads} --subject {wildcards.subject} --out {output} 2> {log}"


rule group_isc:
    input:
        expand(str(DERIVED / "fmri" / "{subject}.npz"), subject=SUBJECTS),
    output:
        str(DERIVED / "fmri" / "group_isc.npz"),
    log:
        str(LOGS / "group_isc.log"),
    benchmark:
        str(BENCH / "group_isc.tsv")
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        "giblet group-isc --config {CONFIG_FILE} --threads {threads} --inputs {input} --out {output} 2> {log}"
