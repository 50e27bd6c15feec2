"""Artifact cache key: `registry.cache_key_part(ref)` time for a 10 GB vs a 10 MB artifact.

    .venv/bin/python benchmarks/artifact_key.py [--big-gb 10] [--small-mb 10] [--repeat 200] [--root URI]

Builds two artifacts of the same shape (one data file + config.json) under the state
folder - the 10 GB file is sparse - publishes each with move=True (a rename into the
local store, then one hashing read), times cache_key_part on each (interleaved, median
of N) and removes everything afterwards. The cache key comes from the version record
(manifest digest), so it must not depend on the size. Goal: ratio ≤ 1.2. The last
line is the figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nemotron_core.artifacts import open_registry  # noqa: E402
from nemotron_core.paths import state_dir  # noqa: E402


def make_source(folder: Path, size: int, sparse: bool) -> Path:
    folder.mkdir(parents=True)
    with open(folder / "model.bin", "wb") as f:
        if sparse:
            f.truncate(size)
        else:
            f.write(os.urandom(size))
    (folder / "config.json").write_text('{"hidden": 128}')
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-gb", type=float, default=10.0)
    parser.add_argument("--small-mb", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--root", default=None, help="artifact root (default: a fresh folder under the state dir)")
    args = parser.parse_args()

    work = state_dir() / "bench" / f"artifact_key-{uuid.uuid4().hex[:8]}"
    try:
        reg = open_registry({"root": args.root or str(work / "store")})
        big = int(args.big_gb * 2**30)
        small = int(args.small_mb * 2**20)
        refs = {}
        for label, size, sparse in (("big", big, True), ("small", small, False)):
            src = make_source(work / f"src-{label}", size, sparse)
            t0 = time.perf_counter()
            v = reg.publish(f"bench-{label}", src, move=True, metadata={"size": size})
            took = time.perf_counter() - t0
            refs[label] = v.ref
            print(f"published {v.ref:14s} {v.size / 2**20:10.1f} MiB in {took:6.2f} s (move + one hashing read)")
        times: dict[str, list[float]] = {"big": [], "small": []}
        for label in times:  # warm up
            reg.cache_key_part(refs[label])
        for _ in range(args.repeat):
            for label in ("big", "small"):
                t0 = time.perf_counter()
                reg.cache_key_part(refs[label])
                times[label].append(time.perf_counter() - t0)
        med = {label: statistics.median(samples) for label, samples in times.items()}
        for label in ("big", "small"):
            print(f"cache_key_part {refs[label]:14s} median {med[label] * 1e6:8.1f} us over {args.repeat} runs")
        print(f"ratio {args.big_gb:g} GB / {args.small_mb:g} MB cache-key time: {med['big'] / med['small']:.3f} "
              f"(goal <= 1.2)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
