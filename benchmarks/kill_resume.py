"""Reliability: SIGKILL the pretrain trainer at 20 random steps; each rerun must resume to the same final loss.

    .venv/bin/python benchmarks/kill_resume.py [--kills 20] [--seed 20]

One uninterrupted reference run, then for each kill a fresh run of the same config SIGKILLed
right after a random step (anywhere: between checkpoints, inside a checkpoint save, while a
metrics row is written), then rerun to the end (resume: auto). A kill counts as resumed when
the final train and valid loss and every logged row equal the reference's bit for bit. The
config is tests/reliability/killing.py's (tiny pretrain, 30 steps, seq 32 x batch 8,
checkpoint every 5 steps, a row per step); CI kills 2 times (tests/reliability/test_kill_resume.py).
Last line: "K/N resumed to the same final loss".
"""

from __future__ import annotations

import argparse
import random
import shutil
import time

from _reliability_data import bench_env, data, load

from nemotron_core.paths import state_dir
from tests.reliability import killing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20)
    args = parser.parse_args()
    pretrain, env = data("pretrain"), bench_env()
    work = state_dir() / "bench" / "reliability" / "kill"
    shutil.rmtree(work, ignore_errors=True)
    start = time.perf_counter()
    ref = killing.reference(pretrain, work / "reference", env)
    print(f"reference: final loss {killing.final(ref)} in {time.perf_counter() - start:.0f} s", flush=True)
    rng = random.Random(args.seed)
    ok = 0
    for i in range(args.kills):
        step = rng.randrange(1, killing.STEPS)
        t = killing.trial(pretrain, work / f"kill-{i:02d}", ref, step, env)
        ok += t.same
        print(f"kill {i + 1:2d}: chosen step {t.kill_at:2d}, killed after step {t.killed_after:2d}, resumed from "
              f"{t.resumed_from:2d}: {'same final loss' if t.same else 'DIFFERENT: ' + t.detail}", flush=True)
        shutil.rmtree(work / f"kill-{i:02d}", ignore_errors=True)
    print(f"{time.perf_counter() - start:.0f} s in all; {load()}")
    shutil.rmtree(work, ignore_errors=True)
    print(f"{ok}/{args.kills} resumed to the same final loss")


if __name__ == "__main__":
    main()
