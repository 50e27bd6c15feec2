"""Cancel from Prefect: seconds from the Cancel click until Slurm says the job ended (goal: ≤ 10 s).

    .venv/bin/python benchmarks/cancel_latency.py [--repeat 3]

Runs tests/reliability/test_cancel_from_prefect.py's cancel test `--repeat` times (a real Prefect
server, a process work pool with a real worker, the nano3-full deployment, the local Slurm; the
pretrain job is cancelled once RUNNING, the way the UI's Cancel button does it). The test asserts
the events and their order; this script collects the click-to-job-end seconds each run writes to
$NEMOTRON_CANCEL_LATENCY_OUT and prints them. Last line: "cancel → Slurm job ended: median X s,
max Y s over N runs (goal ≤ 10 s)".
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST = "tests/reliability/test_cancel_from_prefect.py::test_cancel_in_prefect_ends_the_slurm_job_then_the_run_without_orphans"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    state = Path(os.environ.get("NEMOTRON_STATE_DIR", REPO / ".state")) / "bench" / "cancel"
    state.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("r", dir=state, suffix=".txt") as out:
        env = {**os.environ, "NEMOTRON_CANCEL_LATENCY_OUT": out.name}
        for i in range(args.repeat):
            proc = subprocess.run([str(REPO / "scripts/test"), TEST, "-q", "-p", "no:cacheprovider"],
                                  cwd=REPO, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"run {i + 1}: the cancel test failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
        seconds = [float(line) for line in Path(out.name).read_text().split()]
    for i, took in enumerate(seconds, 1):
        print(f"run {i}: {took:.2f} s")
    print(f"cancel → Slurm job ended: median {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s "
          f"over {len(seconds)} runs (goal ≤ 10 s)")


if __name__ == "__main__":
    main()
