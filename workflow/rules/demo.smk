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
            "giblet demo-data --config {CONFIG_FILE} --threads {threads} --out {params.out} 2> {log}"

else:

    rule check_inputs:
        """Stands for the raw inputs of a real dataset: the plan shows without them, a run names what is missing."""
        output:
            RAW_INPUTS,
        log:
            str(LOGS / "check_inputs.log"),
        shell:
            "giblet check-inputs --config {CONFIG_FILE} --threads {threads} 2> {log} || true; cat {log} >&2; exit 1"
