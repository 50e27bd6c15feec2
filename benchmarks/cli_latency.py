"""CLI latency: `nemotron ... --dry-run` wall and CPU time, as ratios to `python -c pass` and `--help`.

    .venv/bin/python benchmarks/cli_latency.py [--repeat 7]

All are measured side by side in one run (interleaved, median of N), so machine noise
hits them alike. Goals: the local dry-run ≤ 1 s wall; the Slurm dry-run of pretrain (what a
cluster user types before every submit: it builds the Slurm executor and renders the sbatch
script, without importing nemo-run) ≤ 0.5 s and no slower than the local dry-run of the same
stage. The data-prep Slurm dry-run renders nemo-run's Ray container template, so it still
imports nemo-run (shown for comparison). The nemotron commands run against a throwaway env.toml
and state folder (the Slurm profile test_slurm_executor renders: tests/execution/conftest.py's CLUSTER_TOML;
pretrain reads `data_path=` instead of a registered artifact), so the figures do not depend on this machine's profiles. The last lines are the figures.
Output goes to a pipe (no colours, as when redirected); the "coloured" row forces a terminal's
colours (FORCE_COLOR=1: the config panel is highlighted then). CPU is the child's user+sys time
(the stable figure on a shared machine); wall counts only when the load average is below 1.
"""

from __future__ import annotations

import argparse
import os
import resource
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
    f"{SLURM} (coloured)": ["FORCE_COLOR=1", *PRETRAIN, "--run", "cluster", "--dry-run"],
    "nemotron nano3 sft -c tiny --dry-run": [NEMOTRON, "nano3", "sft", "-c", "tiny", "--dry-run"],
    "nemotron nano3 sft -c tiny --run cluster --dry-run": [NEMOTRON, "nano3", "sft", "-c", "tiny", "--run", "cluster",
                                                           "--dry-run"],
    "nemotron nano3 data prep pretrain -c tiny --dry-run": [*PREP, "--dry-run"],
    "nemotron nano3 data prep pretrain -c tiny --run cluster --dry-run (Ray template)": [
        *PREP, "--run", "cluster", "--dry-run"],
}
SLURM_ENV: dict[str, str] = {}  # filled by main(): the throwaway env.toml and state folder


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run; CPU is the child's user+sys (runs are one at a time)."""
    extra = dict(SLURM_ENV) if NEMOTRON in cmd else {}
    while cmd[0].startswith("FORCE_COLOR="):  # a leading NAME=value goes to the environment
        name, _, value = cmd[0].partition("=")
        extra[name], cmd = value, cmd[1:]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, env={**os.environ, "COLUMNS": "200", **extra})
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.decode()[-500:]}")
    return took, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="cli-latency-"))
    (scratch / "env.toml").write_text(CLUSTER_TOML)
    SLURM_ENV.update(NEMOTRON_ENV_FILE=str(scratch / "env.toml"), NEMOTRON_STATE_DIR=str(scratch / "state"))
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    cpu: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for name, cmd in COMMANDS.items():  # warm the page cache once
        timed(cmd)
    for _ in range(args.repeat):
        for name, cmd in COMMANDS.items():
            took, used = timed(cmd)
            times[name].append(took)
            cpu[name].append(used)
    base = statistics.median(times["python -c pass"])
    help_cpu = statistics.median(cpu["nemotron --help"])
    for name in COMMANDS:
        med, used = statistics.median(times[name]), statistics.median(cpu[name])
        print(f"{name:88s} wall {med * 1000:7.1f} ms ({med / base:5.1f}x python)   "
              f"cpu {used * 1000:7.1f} ms ({used / help_cpu:4.2f}x --help)")
    dry, slurm = statistics.median(times[LOCAL]), statistics.median(times[SLURM])
    dry_cpu, slurm_cpu = statistics.median(cpu[LOCAL]), statistics.median(cpu[SLURM])
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (wall figures hold below 1)")
    print(f"local dry-run wall {dry:.3f} s (goal <= 1 s), cpu {dry_cpu:.3f} s")
    print(f"slurm dry-run wall {slurm:.3f} s (goal <= 0.5 s), cpu {slurm_cpu:.3f} s "
          f"({slurm_cpu / help_cpu:.2f}x --help); ratio to the local dry-run: {slurm / dry:.2f}x wall")


if __name__ == "__main__":
    main()
