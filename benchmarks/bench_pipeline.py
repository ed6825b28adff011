"""End-to-end wall time and peak memory per rule, from Snakemake's benchmark files.

Usage: python benchmarks/bench_pipeline.py [data/demo/benchmarks]

Run after `snakemake --cores N` (Snakemake writes one TSV per job under data/<dataset>/benchmarks/).
Prints one row per rule (jobs, summed and longest wall time, peak RSS) and the total against the
target of 600 s of rule time for the demo at ``--cores 2`` (ratio < 1 meets it; the elapsed-time target,
5 minutes, is Snakemake's own "Elapsed time" line). Summed wall time is an upper bound on the elapsed
time: jobs of different rules may overlap.
"""

import sys
from pathlib import Path

import pandas as pd

TARGET_S = 600  # rule time summed over the demo's jobs at --cores 2


def collect(folder):
    rows = []
    for path in sorted(Path(folder).rglob("*.tsv")):
        rule = path.parent.name if path.parent != Path(folder) else path.stem
        table = pd.read_csv(path, sep="\t")
        rows.append({"rule": rule, "job": path.stem, "wall_s": table["s"].iloc[-1],
                     "max_rss_mb": table["max_rss"].iloc[-1]})
    if not rows:
        raise SystemExit(f"{folder}: no benchmark files; run snakemake first")
    return pd.DataFrame(rows)


def main(folder="data/demo/benchmarks"):
    jobs = collect(folder)
    per_rule = jobs.groupby("rule").agg(jobs=("job", "count"), wall_s_sum=("wall_s", "sum"),
                                        wall_s_max=("wall_s", "max"), peak_rss_mb=("max_rss_mb", "max"))
    print(per_rule.sort_values("wall_s_sum", ascending=False).round(1).to_string())
    total = jobs["wall_s"].sum()
    print(f"\nsummed wall time {total:.0f} s; peak RSS {jobs['max_rss_mb'].max():.0f} MB")
    print(f"ratio to the {TARGET_S:.0f} s demo target: {total / TARGET_S:.2f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
