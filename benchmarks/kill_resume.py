"""Reliability: SIGKILL the pretrain trainer at random steps, under DDP and FSDP side by side; each rerun
must resume to the same final loss.

    .venv/bin/python benchmarks/kill_resume.py [--kills 20] [--seed 20] [--modes ddp,fsdp] [--ranks 2]

Per mode (`parallelism.data`, `--ranks` torchrun processes; 1 = one process, as the job runs the
tiny config) one uninterrupted reference run, then for each kill a fresh run of the same config
SIGKILLed (torchrun and every rank at once, as a lost node) right after a random step (anywhere:
between checkpoints, inside a checkpoint save, while a metrics row is written), then rerun to the
end (resume: auto). The modes take turns, each kill at the same step in both. A kill counts as
resumed when the final train and valid loss and every logged row equal the reference's bit for
bit. The config is tests/reliability/killing.py's (tiny pretrain, 30 steps, seq 32 x global batch
8, checkpoint every 5 steps, a row per step); CI kills 2 times, one process
(tests/reliability/test_kill_resume.py). Last lines: "K/N resumed to the same final loss" per mode,
and the median trial time (kill + rerun) of each mode over the first's.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import time

from _reliability_data import bench_env, data, load

from nemotron_core.paths import state_dir
from tests.reliability import killing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--modes", default="ddp,fsdp", help="parallelism.data values, comma-separated")
    parser.add_argument("--ranks", type=int, default=2, choices=(1, 2, 4, 8))
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    if not modes or any(m not in ("ddp", "fsdp") for m in modes):
        parser.error(f"--modes {args.modes!r}: a comma-separated list of ddp, fsdp")
    pretrain, env = data("pretrain"), bench_env()
    work = state_dir() / "bench" / "reliability" / "kill"
    shutil.rmtree(work, ignore_errors=True)
    start = time.perf_counter()
    refs = {}
    print(f"{args.ranks} rank(s); {load()}", flush=True)
    for mode in modes:
        t0 = time.perf_counter()
        refs[mode] = killing.reference(pretrain, work / f"reference-{mode}", env, mode, args.ranks)
        print(f"{mode} reference: final loss {killing.final(refs[mode])} in {time.perf_counter() - t0:.0f} s",
              flush=True)
    rng = random.Random(args.seed)
    ok = {m: 0 for m in modes}
    seconds: dict[str, list[float]] = {m: [] for m in modes}
    for i in range(args.kills):
        step = rng.randrange(1, killing.STEPS)
        for mode in modes:
            t0 = time.perf_counter()
            out = work / f"kill-{mode}-{i:02d}"
            t = killing.trial(pretrain, out, refs[mode], step, env, parallelism=mode, ranks=args.ranks)
            seconds[mode].append(time.perf_counter() - t0)
            ok[mode] += t.same
            print(f"{mode} kill {i + 1:2d}: chosen step {t.kill_at:2d}, killed after step {t.killed_after:2d}, "
                  f"resumed from {t.resumed_from:2d}: {'same final loss' if t.same else 'DIFFERENT: ' + t.detail} "
                  f"({seconds[mode][-1]:.0f} s)", flush=True)
            shutil.rmtree(out, ignore_errors=True)
    print(f"{time.perf_counter() - start:.0f} s in all; {load()}")
    shutil.rmtree(work, ignore_errors=True)
    base = statistics.median(seconds[modes[0]]) if args.kills else 0.0
    for mode in modes:
        med = statistics.median(seconds[mode]) if args.kills else 0.0
        ratio = f", {med / base:.2f}x {modes[0]}" if base and mode != modes[0] else ""
        print(f"{mode}: {ok[mode]}/{args.kills} resumed to the same final loss; median trial {med:.0f} s{ratio}")


if __name__ == "__main__":
    main()
