# Stimulus features: per-frame/per-segment tables in stimulus time and per-TR tables.

from giblet.outputs import AUDIO_OUTPUTS, TEXT_OUTPUTS, UNTRAINED_CODEC_DIR, video_outputs

AUDIO_FILES = list(AUDIO_OUTPUTS.values())
VIDEO_FILES = list(video_outputs(config["video"]["image_model"]).values())
TEXT_FILES = list(TEXT_OUTPUTS.values())


rule extract_audio:
    input:
        config["stimulus"].get("movie", []),
    output:
        [str(DERIVED / "features" / f) for f in AUDIO_FILES],
        # the fallback codec's weights, which decode-audio loads
        [directory(str(DERIVED / "features" / UNTRAINED_CODEC_DIR))] if config["codec"]["fallback"] else [],
    params:
        settings=lambda w: section("seed", "codec", "stimulus.start_offset_s", "fmri.tr_s", "fmri.run_n_trs"),
        out=str(DERIVED / "features"),
    log:
        str(LOGS / "extract_audio.log"),
    benchmark:
        str(BENCH / "extract_audio.tsv")
    threads: 2
    resources:
        mem_mb=6000,
    shell:
        "giblet extract-audio --config {CONFIG_FILE} --threads {threads} --out {params.out} 2> {log}"


rule extract_video:
    input:
        config["stimulus"].get("movie", []),
    output:
        [str(DERIVED / "features" / f) for f in VIDEO_FILES],
    params:
        settings=lambda w: section("video", "stimulus.start_offset_s", "fmri.tr_s", "fmri.run_n_trs"),
        out=str(DERIVED / "features"),
    log:
        str(LOGS / "extract_video.log"),
    benchmark:
        str(BENCH / "extract_video.tsv")
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "giblet extract-video --config {CONFIG_FILE} --threads {threads} --out {params.out} 2> {log}"


rule extract_text:
    input:
        config["stimulus"].get("annotations", []),
    output:
        [str(DERIVED / "features" / f) for f in TEXT_FILES],
    params:
        settings=lambda w: section("text", "stimulus.start_offset_s", "fmri.tr_s", "fmri.run_n_trs"),
        out=str(DERIVED / "features"),
    log:
        str(LOGS / "extract_text.log"),
    benchmark:
        str(BENCH / "extract_text.tsv")
    threads: 1
    resources:
        mem_mb=3000,
    shell:
        "giblet extract-text --config {CONFIG_FILE} --threads {threads} --out {params.out} 2> {log}"


rule import_features:
    input:
        [spec["path"] for spec in config["stimulus"].get("precomputed", [])],
    output:
        str(DERIVED / "features" / "precomputed.npz"),
    params:
        settings=lambda w: section("stimulus.precomputed", "fmri.tr_s", "fmri.run_n_trs"),
    log:
        str(LOGS / "import_features.log"),
    benchmark:
        str(BENCH / "import_features.tsv")
    threads: 1
    resources:
        mem_mb=1000,
    shell:
        "giblet import-features --config {CONFIG_FILE} --threads {threads} --out {output} 2> {log}"
