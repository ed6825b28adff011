# Validation, paths and input functions shared by every rule; rule files only declare.
import json

from snakemake.utils import validate

from giblet.config import SCHEMA_PATH

validate(config, schema=str(SCHEMA_PATH))

# The config file every `giblet` call reads; each rule also passes its own config section as a
# param, so that Snakemake reruns exactly the rules whose settings changed.
CONFIG_FILE = workflow.configfiles[-1]
DATASET = config["dataset"]
DATA = Path(config["data_dir"]) / DATASET
LOGS = DATA / "logs"
BENCH = DATA / "benchmarks"
SUBJECTS = config["fmri"]["subjects"]
N_RUNS = len(config["fmri"]["run_n_trs"])


wildcard_constraints:
    subject="|".join(SUBJECTS),


def section(*keys):
    """Config sections as canonical JSON for `params:` (use in a lambda: paths hold braces)."""
    return json.dumps({k: config.get(k) for k in keys}, sort_keys=True)


def demo_outputs():
    """Files the demo generator writes (the demo's raw inputs)."""
    from giblet.demo.generate import demo_paths

    return {k: str(v) for k, v in demo_paths(DATA, SUBJECTS, N_RUNS).items()}


def get_final_output():
    outputs = []
    if "demo" in config:
        outputs += list(demo_outputs().values())
    return outputs
