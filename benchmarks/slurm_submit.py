"""Slurm submit → RUNNING latency: our execution layer vs a bare `sbatch`, side by side.

    eval "$(scripts/slurm start)"                 # or any SLURM_CONF
    .venv/bin/python benchmarks/slurm_submit.py [--repeat 7]

Each round submits one job both ways (interleaved, alternating which goes first, so machine
noise and slurmctld's scheduling rhythm hit both alike), each on an empty queue after a
settle gap (a job submitted right after another one ends is scheduled by that end's pass
and looks faster), polls at 20 Hz until Slurm says RUNNING, then cancels it:

    bare    sbatch --parsable --wrap 'sleep 60'             polled with `squeue -h -j ID -o %T`
    ours    submit(executor, plan, job_dir=...)              polled with job.status(max_age=0)
            (renders nemo-run's sbatch, packages the script, writes secrets.env and jobref.json,
            sbatch --parsable --requeue; the executor is created once, outside the timing:
            importing nemo-run costs ~2.5 s once per process)

Also reported: the time submit() itself takes (until it returns the Job). The last line is
the figure: the median ratio ours / bare.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RECIPE = REPO / "tests/fixtures/recipes/job/job.py"
PROFILE = """[slurm]
executor = "slurm"
container_image = ""
partition = "debug"
time = "00:05:00"
ntasks_per_node = 1
"""


def settle(gap: float) -> None:
    """Wait for an empty queue, then `gap` seconds."""
    while subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.strip():
        time.sleep(0.1)
    time.sleep(gap)


def bare_round(poll: float) -> float:
    t0 = time.perf_counter()
    job_id = subprocess.run(["sbatch", "--parsable", "--job-name=bench-bare", "--output=/dev/null",
                             "--wrap", "sleep 60"], capture_output=True, text=True, check=True).stdout.strip()
    while subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True,
                         text=True).stdout.strip() != "RUNNING":
        time.sleep(poll)
    took = time.perf_counter() - t0
    subprocess.run(["scancel", job_id], check=True)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--poll", type=float, default=0.05)
    parser.add_argument("--gap", type=float, default=2.0, help="seconds of empty queue before each submission")
    args = parser.parse_args()
    conf = os.environ.get("SLURM_CONF")
    if not conf or not Path(conf).is_file():
        sys.exit("SLURM_CONF is not set to a slurm.conf: start a cluster first (eval \"$(scripts/slurm start)\")")

    state = Path(tempfile.mkdtemp(prefix="slurm-bench-", dir=REPO / ".state"))
    os.environ["NEMOTRON_STATE_DIR"] = str(state)
    from nemotron_core.config import (build_job_config, extract_train_config, generate_job_dir, parse_config,
                                      save_configs)
    from nemotron_core.execution import JobState, create_executor, submit
    from nemotron_core.launch import plan_job
    from nemotron_core.profiles import parse_env_text
    from nemotron_core.runspec import parse

    spec = parse(RECIPE)
    profile = parse_env_text(PROFILE).profile("slurm")
    t0 = time.perf_counter()
    executor = create_executor(profile, spec, attached=False)
    print(f"create_executor (once; nemo-run loads at the first submit, to package the code): {time.perf_counter() - t0:.2f} s")

    def ours_round() -> tuple[float, float]:
        train = parse_config(spec.config_dir, None, ["sleep=60"], default=spec.config.default)
        job_cfg = build_job_config(train, spec=spec, mode="batch", profile=profile)
        job_dir = generate_job_dir(spec.name)
        plan = plan_job(spec, profile, job_dir / "train.yaml")
        save_configs(job_cfg, extract_train_config(job_cfg), job_dir)
        t0 = time.perf_counter()
        job = submit(executor, plan, job_dir=job_dir)
        submitted = time.perf_counter() - t0
        while job.status(max_age=0).state is not JobState.RUNNING:
            time.sleep(args.poll)
        took = time.perf_counter() - t0
        job.cancel()
        return took, submitted

    bare_round(args.poll), ours_round()  # warm up both paths
    bare, ours, submit_only = [], [], []

    def run_ours() -> None:
        took, submitted = ours_round()
        ours.append(took)
        submit_only.append(submitted)

    for i in range(args.repeat):
        first, second = (lambda: bare.append(bare_round(args.poll)), run_ours)[:: 1 if i % 2 == 0 else -1]
        settle(args.gap)
        first()
        settle(args.gap)
        second()
    b, o, s = statistics.median(bare), statistics.median(ours), statistics.median(submit_only)
    for label, med, xs in (("bare sbatch ", b, bare), ("our submit()", o, ours)):
        print(f"{label} submit→RUNNING median {med * 1000:7.1f} ms  (min {min(xs) * 1000:.1f}, max {max(xs) * 1000:.1f})")
    print(f"our submit() call alone      median {s * 1000:7.1f} ms")
    print(f"submit→RUNNING ratio ours/bare: {o / b:.2f}x over {args.repeat} rounds")
    shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
