# The embedded demo: a simulated film, annotations and subjects with known ground truth.
if "demo" in config:

    rule demo_data:
        output:
            **demo_outputs(),
        params:
            settings=lambda w: section("seed", "demo", "fmri.tr_s", "fmri.run_n_trs", "fmri.subjects"),
            out=str(DATA),
        log:
            str(LOGS / "demo_data.log"),
        benchmark:
            str(BENCH / "demo_data.tsv")
        threads: 1
        resources:
            mem_mb=2000,
        shell:
            "giblet demo-data --config {CONFIG_FILE} --out {params.out} 2> {log}"
