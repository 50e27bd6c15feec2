"""CLI latency: `nemotron ... --dry-run` wall time as a ratio to `python -c pass`.

    .venv/bin/python benchmarks/cli_latency.py [--repeat 7]

All are measured side by side in one run (interleaved, median of N), so machine noise
hits them alike. Goals: the local dry-run ≤ 1 s wall; the Slurm dry-run of pretrain (what a
cluster user types before every submit: it builds the Slurm executor and renders the sbatch
script, without importing nemo-run) ≤ 0.5 s and no slower than the local dry-run of the same
stage. The data-prep Slurm dry-run renders nemo-run's Ray container template, so it still
imports nemo-run (shown for comparison). The nemotron commands run against a throwaway env.toml
and state folder (the Slurm profile test_slurm_executor renders: tests/execution/conftest.py's CLUSTER_TOML;
pretrain reads `data_path=` instead of a registered artifact), so the figures do not depend on this machine's profiles. The last lines are the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the checkout's tests/ helpers
from tests.execution.conftest import CLUSTER_TOML  # noqa: E402

BIN = Path(sys.executable).parent
NEMOTRON = str(BIN / "nemotron")
PRETRAIN = [NEMOTRON, "nano3", "pretrain", "-c", "tiny", "data_path=/lustre/data"]
PREP = [NEMOTRON, "nano3", "data", "prep", "pretrain", "-c", "tiny"]
LOCAL = "nemotron nano3 pretrain -c tiny data_path=... --dry-run"
SLURM = "nemotron nano3 pretrain -c tiny data_path=... --run cluster --dry-run"
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "nemotron --help": [NEMOTRON, "--help"],
    LOCAL: [*PRETRAIN, "--dry-run"],
    SLURM: [*PRETRAIN, "--run", "cluster", "--dry-run"],
    "nemotron nano3 data prep pretrain -c tiny --dry-run": [*PREP, "--dry-run"],
    "nemotron nano3 data prep pretrain -c tiny --run cluster --dry-run (Ray template)": [
        *PREP, "--run", "cluster", "--dry-run"],
}
SLURM_ENV: dict[str, str] = {}  # filled by main(): the throwaway env.toml and state folder


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    extra = SLURM_ENV if cmd[0] == NEMOTRON else {}
    out = subprocess.run(cmd, capture_output=True, env={**os.environ, "COLUMNS": "200", **extra})
    took = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.decode()[-500:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="cli-latency-"))
    (scratch / "env.toml").write_text(CLUSTER_TOML)
    SLURM_ENV.update(NEMOTRON_ENV_FILE=str(scratch / "env.toml"), NEMOTRON_STATE_DIR=str(scratch / "state"))
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for name, cmd in COMMANDS.items():  # warm the page cache once
        wall(cmd)
    for _ in range(args.repeat):
        for name, cmd in COMMANDS.items():
            times[name].append(wall(cmd))
    base = statistics.median(times["python -c pass"])
    for name, samples in times.items():
        med = statistics.median(samples)
        print(f"{name:82s} median {med * 1000:7.1f} ms   ratio {med / base:6.1f}x")
    dry = statistics.median(times[LOCAL])
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"local dry-run wall {dry:.3f} s (goal <= 1 s); ratio to python -c pass: {dry / base:.1f}x")
    slurm = statistics.median(times[SLURM])
    print(f"slurm dry-run wall {slurm:.3f} s (goal <= 0.5 s); ratio to the local dry-run: {slurm / dry:.2f}x")

if __name__ == "__main__":
    main()
