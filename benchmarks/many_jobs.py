"""One orchestrator process tracking 1,000 concurrent Slurm jobs with one Slurm query per poll.

    NEMOTRON_SLURM_NODE_CPUS=500 scripts/slurm start --nodes 2   # 1,000 job slots on this host
    eval "$(NEMOTRON_SLURM_NODE_CPUS=500 scripts/slurm start --nodes 2)"
    .venv/bin/python benchmarks/many_jobs.py [--jobs 1000] [--sleep 60] [--poll 2]

Submits one job array of `--jobs` tasks (`sleep S`, then each task appends its end time,
date +%s.%N, to a file), then waits for all of them with
nemotron_core.execution.tracking.track_slurm_jobs: every poll is one `squeue --json` for every
unfinished task (plus one `sacct` for tasks squeue already forgot). Prints:

    polls                 polls made, squeue/sacct calls made (the claim: squeue calls == polls)
    concurrency           most tasks seen RUNNING at once
    orchestrator CPU      CPU seconds / wall seconds while waiting: this process alone, and with
                          its squeue/sacct children (measured with os.times())
    last end -> seen      time from the last task's end (its own clock) to the orchestrator
                          seeing every task finished (last line: the figure)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def idle_cpus() -> int:
    out = subprocess.run(["sinfo", "-h", "-o", "%C"], capture_output=True, text=True, check=True).stdout
    return sum(int(line.split("/")[1]) for line in out.split())  # alloc/idle/other/total per line


def cpu_now() -> tuple[float, float]:
    t = os.times()
    return t.user + t.system, t.children_user + t.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--sleep", type=float, default=60.0, help="seconds each task sleeps")
    parser.add_argument("--poll", type=float, default=2.0, help="seconds between polls")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per poll on stderr")
    args = parser.parse_args()
    conf = os.environ.get("SLURM_CONF")
    if not conf or not Path(conf).is_file():
        sys.exit("SLURM_CONF is not set to a slurm.conf: start a cluster first "
                 "(eval \"$(NEMOTRON_SLURM_NODE_CPUS=500 scripts/slurm start --nodes 2)\")")
    free = idle_cpus()
    if free < args.jobs:
        sys.exit(f"the cluster has {free} idle CPUs, fewer than --jobs {args.jobs}: start it with more job slots "
                 f"(NEMOTRON_SLURM_NODE_CPUS=500 scripts/slurm start --nodes 2) or lower --jobs")

    from nemotron_core.execution.backends.slurm import array_task_ids, poller_for
    from nemotron_core.execution.states import JobState
    from nemotron_core.execution.tracking import track_slurm_jobs

    work = Path(tempfile.mkdtemp(prefix="many-jobs-", dir=REPO / ".state"))
    ends = work / "ends.txt"
    spec = f"0-{args.jobs - 1}"
    t_submit = time.time()
    array_id = subprocess.run(
        ["sbatch", "--parsable", f"--array={spec}", "--job-name=bench-many", "--output=/dev/null", "--time=00:30:00",
         "--wrap", f"sleep {args.sleep}; echo $SLURM_ARRAY_TASK_ID $(date +%s.%N) >> {ends}"],
        capture_output=True, text=True, check=True).stdout.strip().split(";")[0]
    ids = array_task_ids(array_id, spec)
    poller = poller_for({"tunnel": "local", "slurm_conf": conf})
    sacct_calls = []
    real_run = poller.shell.run

    def counting_run(argv, **kw):  # count every Slurm client call the poller makes
        if argv[0] == "sacct":
            sacct_calls.append(argv)
            if args.verbose:
                print(f"  t={time.time() - t_submit:7.2f} s  sacct for {len(argv[argv.index('-j') + 1].split(','))} "
                      f"id(s) squeue did not list", file=sys.stderr, flush=True)
        return real_run(argv, **kw)

    poller.shell.run = counting_run
    polls, peak, first_all_running = 0, 0, None

    def on_poll(open_statuses) -> None:
        nonlocal polls, peak, first_all_running
        polls += 1
        running = sum(st.state is JobState.RUNNING for st in open_statuses.values())
        raw: dict[str, int] = {}
        for st in open_statuses.values():
            raw[st.raw or str(st.state)] = raw.get(st.raw or str(st.state), 0) + 1
        peak = max(peak, running)
        if first_all_running is None and running == args.jobs:
            first_all_running = time.time()
        if args.verbose:
            print(f"  t={time.time() - t_submit:7.2f} s  open {len(open_statuses):5d}  {raw}",
                  file=sys.stderr, flush=True)

    q0, (self0, kids0), w0 = poller.queries, cpu_now(), time.monotonic()
    final = track_slurm_jobs(ids, cluster=poller.shell.cluster, poll=args.poll, on_poll=on_poll)
    seen = time.time()
    wall = time.monotonic() - w0
    self1, kids1 = cpu_now()
    squeue_calls = poller.queries - q0

    states = {}
    for st in final.values():
        states[str(st.state)] = states.get(str(st.state), 0) + 1
    stamps = [float(line.split()[1]) for line in ends.read_text().splitlines() if line.strip()]
    last_end = max(stamps)
    print(f"jobs                  {args.jobs} array tasks (array {array_id}), sleep {args.sleep:g} s, "
          f"poll every {args.poll:g} s; final states {states}; {len(stamps)} tasks wrote their end")
    if first_all_running:
        print(f"concurrency           all {args.jobs} RUNNING at once, {first_all_running - t_submit:.1f} s after sbatch")
    else:
        print(f"concurrency           at most {peak} of {args.jobs} seen RUNNING at once")
    print(f"polls                 {polls} polls, {squeue_calls} squeue calls, {len(sacct_calls)} sacct calls "
          f"over {wall:.1f} s")
    print(f"orchestrator CPU      {100 * (self1 - self0) / wall:.2f}% of one core (this process), "
          f"{100 * ((self1 - self0) + (kids1 - kids0)) / wall:.2f}% with its squeue/sacct children")
    print(f"last end -> seen      {seen - last_end:.2f} s")


if __name__ == "__main__":
    main()
