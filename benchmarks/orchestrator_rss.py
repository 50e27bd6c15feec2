"""Benchmark: peak RSS of the flow process while it runs the tiny pipeline, vs a no-op flow's.

    eval "$(scripts/prefect-server start >/dev/null; scripts/prefect-server env)"
    .venv/bin/python benchmarks/orchestrator_rss.py [--keep]

Runs nano3_full from scratch in a fresh <state>/bench/pipeline (5 stages: data_pretrain,
data_sft, data_rl, pretrain, sft, short trainer runs, as tests/flows/test_nano3_full.py) in
its own process, like a worker runs a flow run, and samples that process's memory (VmRSS every
50 ms and VmHWM, the kernel's high-water mark). The jobs themselves (Ray workers, torchrun)
are other processes and not counted: this is the orchestrator's footprint. Baseline: the
same measure for a no-op flow of 5 tasks (Prefect + the interpreter). Last line: peak MB and
the ratio pipeline / no-op. --keep leaves the built pipeline for benchmarks/flow_cache.py.
"""

from __future__ import annotations

import argparse
import shutil

from _flows import FAST, NOOP, PIPELINE, PIPELINE_STATE, STAGES, run
from _reliability_data import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the built pipeline for flow_cache.py")
    args = parser.parse_args()
    shutil.rmtree(PIPELINE_STATE, ignore_errors=True)
    noop = [run(NOOP, PIPELINE_STATE) for _ in range(3)]
    base = max(r.peak_rss_mb for r in noop)
    pipeline = run(PIPELINE, PIPELINE_STATE, {"stages": STAGES, "overrides": FAST})
    print(f"no-op flow (5 tasks): peak RSS {base:.0f} MB (max of 3; {', '.join(f'{r.peak_rss_mb:.0f}' for r in noop)})")
    print(f"tiny pipeline: {pipeline.flow_s:.0f} s, {pipeline.samples} samples, peak RSS {pipeline.peak_rss_mb:.0f} MB")
    print(load())
    if not args.keep:
        shutil.rmtree(PIPELINE_STATE, ignore_errors=True)
    print(f"orchestrator peak RSS {pipeline.peak_rss_mb:.0f} MB = {pipeline.peak_rss_mb / base:.2f}x a no-op flow's "
          f"({base:.0f} MB)")


if __name__ == "__main__":
    main()
