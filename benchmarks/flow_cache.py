"""Benchmark: a fully cached nano3-full rerun vs a no-op flow with the same tasks, side by side.

    eval "$(scripts/prefect-server start >/dev/null; scripts/prefect-server env)"
    .venv/bin/python benchmarks/flow_cache.py [--repeat 5]

The pipeline (5 stages: data_pretrain, data_sft, data_rl, pretrain, sft with short trainer
runs, as tests/flows/test_nano3_full.py) is built once under <state>/bench/pipeline (minutes;
benchmarks/orchestrator_rss.py builds the same folder). Then, alternately, each in a fresh
process against the same Prefect server:
- cached: nano3_full with the same parameters: every stage is a cache hit (no job runs);
- no-op: a flow of 5 tasks submitted and chained as nano3_full does, each returning at once.
Figures: the flow call's wall time (inside the process) and the whole process's. The last
line is the ratio of the medians of the flow call, cached / no-op (goal <= 1.5).
"""

from __future__ import annotations

import argparse
import statistics

from _flows import FAST, NOOP, PIPELINE, PIPELINE_STATE, STAGES, run
from _reliability_data import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    params = {"stages": STAGES, "overrides": FAST}
    jobs = PIPELINE_STATE / "jobs"
    if not (PIPELINE_STATE / "artifacts").is_dir():
        print(f"building the pipeline once in {PIPELINE_STATE} ...", flush=True)
        first = run(PIPELINE, PIPELINE_STATE, params)
        print(f"built in {first.flow_s:.0f} s", flush=True)
    before = sorted(jobs.glob("*/*"))
    run(PIPELINE, PIPELINE_STATE, params)  # warm: imports from the page cache, the server's first queries
    run(NOOP, PIPELINE_STATE)
    cached, noop = [], []
    for _ in range(args.repeat):
        cached.append(run(PIPELINE, PIPELINE_STATE, params))
        noop.append(run(NOOP, PIPELINE_STATE))
    assert sorted(jobs.glob("*/*")) == before, "a cached rerun submitted a job"
    for name, runs in (("cached nano3-full", cached), ("no-op flow, 5 tasks", noop)):
        print(f"{name:22s} flow call median {statistics.median(r.flow_s for r in runs):6.2f} s "
              f"(min {min(r.flow_s for r in runs):.2f}); process median "
              f"{statistics.median(r.process_s for r in runs):6.2f} s", flush=True)
    print(f"{load()}; no job was submitted by the cached reruns")
    ratio = statistics.median(r.flow_s for r in cached) / statistics.median(r.flow_s for r in noop)
    print(f"cached rerun / no-op flow: {ratio:.2f}x (goal <= 1.5)")


if __name__ == "__main__":
    main()
