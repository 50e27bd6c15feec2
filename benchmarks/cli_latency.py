"""CLI latency: `nemotron ... --dry-run` wall time as a ratio to `python -c pass`.

    .venv/bin/python benchmarks/cli_latency.py [--repeat 7]

Both are measured side by side in one run (interleaved, median of N), so machine noise
hits both alike. Goal: dry-run ≤ 1 s wall. The last line is the figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "nemotron --help": [str(BIN / "nemotron"), "--help"],
    "nemotron nano3 data prep pretrain -c tiny --dry-run": [str(BIN / "nemotron"), "nano3", "data", "prep",
                                                            "pretrain", "-c", "tiny", "--dry-run"],
}


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, env={**os.environ, "COLUMNS": "200"})
    took = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.decode()[-500:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for name, cmd in COMMANDS.items():  # warm the page cache once
        wall(cmd)
    for _ in range(args.repeat):
        for name, cmd in COMMANDS.items():
            times[name].append(wall(cmd))
    base = statistics.median(times["python -c pass"])
    for name, samples in times.items():
        med = statistics.median(samples)
        print(f"{name:55s} median {med * 1000:7.1f} ms   ratio {med / base:6.1f}x")
    dry = statistics.median(times["nemotron nano3 data prep pretrain -c tiny --dry-run"])
    print(f"dry-run wall {dry:.3f} s (goal <= 1 s); ratio to python -c pass: {dry / base:.1f}x")


if __name__ == "__main__":
    main()
