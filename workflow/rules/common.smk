# Validation, paths and input functions shared by every rule; rule files only declare.
import json

from giblet.inputs import check_inputs, fmri_inputs, mask_paths, raw_inputs
from giblet.config import load_config, validate_config

# The config file every `giblet` call reads; each rule also passes its own config section as a
# param, so that Snakemake reruns exactly the rules whose settings changed.
CONFIG_FILE = workflow.configfiles[-1]
load_config(CONFIG_FILE)  # the file as the CLI reads it (a key written twice is an error)
validate_config(config, source=CONFIG_FILE)  # what Snakemake holds, overrides included; defaults filled in
DATASET = config["dataset"]
DATA = Path(config["data_dir"]) / DATASET
DERIVED = DATA / "derived"
LOGS = DATA / "logs"
BENCH = DATA / "benchmarks"
SUBJECTS = config["fmri"]["subjects"]
N_RUNS = len(config["fmri"]["run_n_trs"])


wildcard_constraints:
    subject="|".join(SUBJECTS),


def section(*keys):
    """Config values as canonical JSON for `params:`, so a rule reruns when they change.

    Keys may be dotted (``"fmri.tr_s"``). Use inside a lambda: paths in the config hold braces.
    """
    values = {}
    for key in keys:
        value = config
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        values[key] = value
    return json.dumps(values, sort_keys=True)


def demo_outputs():
    """Files the demo generator writes (the demo's raw inputs)."""
    from giblet.demo.generate import demo_paths

    return {k: str(v) for k, v in demo_paths(DATA, SUBJECTS, N_RUNS).items()}


# Stimulus-time feature tables the align rule puts on the fMRI clock, by modality.
STIMULUS_TABLES = {
    "audio": ["audio_frames"],
    "video": ["video_lowlevel_frames"],
    "text": ["text_segments", "labels_segments"],
}
ALIGN_STEMS = [stem for m in config["modalities"] for stem in STIMULUS_TABLES.get(m, [])]
if config["stimulus"].get("precomputed"):
    ALIGN_STEMS.append("precomputed")


def get_feature_files():
    """Per-modality feature files the model trains on."""
    features = {"audio": AUDIO_FILES, "video": VIDEO_FILES, "text": TEXT_FILES}
    return [str(DERIVED / "features" / f) for m in config["modalities"] for f in features.get(m, [])]


def get_fmri_inputs(wildcards):
    """The subject's fMRI files (plus the mask files they are read with)."""
    return [str(p) for p in fmri_inputs(config, wildcards.subject)] + mask_paths(config)


RAW_INPUTS = raw_inputs(config)
if "demo" not in config and all(Path(p).exists() for p in RAW_INPUTS):
    # every input opened cheaply (headers, streams, lengths, TR) before the first job; missing files are
    # reported by the check_inputs rule instead, so that the plan still shows without the data
    INPUT_PROBLEMS = check_inputs(config)
    if INPUT_PROBLEMS:
        raise ValueError(f"{CONFIG_FILE}: {len(INPUT_PROBLEMS)} problems with the inputs:\n"
                         + "\n".join(f"- {p}" for p in INPUT_PROBLEMS))


def get_final_output():
    outputs = []
    if "demo" in config:
        outputs += list(demo_outputs().values())
    outputs.append(str(DERIVED / "fmri" / "group_isc.npz"))
    if "audio" in config["modalities"]:  # the code model, scored on its own (not yet used by the autoencoder)
        outputs.append(str(DERIVED / "model" / "code_model_scores.json"))
    outputs.append(str(Path(config["reports_dir"]) / DATASET / "index.html"))
    return outputs
