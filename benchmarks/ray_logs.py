"""Benchmark: following a Ray job's large log, the whole log at every poll vs the stream of new text.

    .venv/bin/python benchmarks/ray_logs.py [--lines 200000] [--seconds 20] [--poll 1.0]

A Ray job prints --lines lines (~70 bytes each) evenly over --seconds. It runs twice on the same
head, followed each time from this process the way Job.wait follows a job (read_new() every
--poll s, flush() at the end):
- whole: TextFollower over `get_job_logs` (what the Ray backend did): every poll re-sends the
  whole log so far, O(size²) over a long job;
- stream: StreamFollower over `tail_job_logs` (what it does now): new text only.
Figures: bytes the follower received, this process's CPU seconds while following, lines handed
out (must be exactly --lines + the job's own first/last lines, each once), and how long after the
job ended the last line arrived. The Ray head: $RAY_ADDRESS when set, else one started by
scripts/ray under <state>/bench/ray-logs on free ports (stopped at the end).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import time

from _reliability_data import REPO, load

from nemotron_core.execution.logs import StreamFollower, TextFollower
from nemotron_core.paths import state_dir

JOB = ("import sys, time\n"
       "n, seconds = int(sys.argv[1]), float(sys.argv[2])\n"
       "print('begin', flush=True)\n"
       "batch = max(1, n // max(1, int(seconds * 20)))\n"
       "for i in range(0, n, batch):\n"
       "    sys.stdout.write(''.join(f'line {j:08d} ' + 'x' * 50 + '\\n' for j in range(i, min(n, i + batch))))\n"
       "    sys.stdout.flush()\n"
       "    time.sleep(seconds * batch / n)\n"
       "print('end', flush=True)\n")


def _free_block(start: int, span: int) -> int:
    def free(port: int) -> bool:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True

    base = start
    while not all(free(p) for p in range(base, base + span)):
        base += span
    return base


def ray_head() -> tuple[str, dict[str, str] | None]:
    """(address, env to stop it with, or None when it was already running)."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"], None
    env = {**os.environ, "NEMOTRON_STATE_DIR": str(state_dir() / "bench" / "ray-logs"),
           "NEMOTRON_RAY_PORT": str(_free_block(36379, 121))}
    env["NEMOTRON_RAY_DASHBOARD_PORT"] = str(_free_block(38265, 1))
    for args in (("start",), ("env",)):
        proc = subprocess.run([str(REPO / "scripts" / "ray"), *args], env=env, capture_output=True, text=True,
                              timeout=300)
        if proc.returncode != 0:
            sys.exit(f"scripts/ray {args[0]} failed: {(proc.stderr or proc.stdout).strip()[-2000:]}")
    address = re.search(r"RAY_ADDRESS=(\S+)", proc.stdout).group(1).strip("'\"")
    return address, env


def follow(client, follower_of, args) -> dict:
    job_id = client.submit_job(entrypoint=f"python -c {_quote(JOB)} {args.lines} {args.seconds}")
    received = [0]
    follower = follower_of(client, job_id, received)
    lines = 0
    cpu0, ended = time.process_time(), None
    while True:
        done = client.get_job_status(job_id).is_terminal()
        if done:
            ended = time.monotonic()
            break
        lines += len(follower.read_new())
        time.sleep(args.poll)
    lines += len(follower.flush())
    follower.close()
    lag = time.monotonic() - ended
    return {"bytes": received[0], "cpu": time.process_time() - cpu0, "lines": lines, "lag": lag,
            "status": str(client.get_job_status(job_id))}


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def whole(client, job_id, received):
    def fetch() -> str:
        text = client.get_job_logs(job_id)
        received[0] += len(text)
        return text

    return TextFollower(fetch)


def stream(client, job_id, received):
    async def tail():
        async for chunk in client.tail_job_logs(job_id):
            received[0] += len(chunk)
            yield chunk

    def fetch() -> str:
        text = client.get_job_logs(job_id)
        received[0] += len(text)
        return text

    return StreamFollower(tail, fetch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--poll", type=float, default=1.0)
    args = parser.parse_args()
    if args.lines < 1 or args.seconds <= 0 or args.poll <= 0:
        sys.exit("error: --lines, --seconds and --poll must be positive")
    from ray.job_submission import JobSubmissionClient

    address, started = ray_head()
    try:
        client = JobSubmissionClient(address)
        results = {name: follow(client, fn, args) for name, fn in (("whole", whole), ("stream", stream))}
    finally:
        if started is not None:
            subprocess.run([str(REPO / "scripts" / "ray"), "stop"], env=started, capture_output=True, timeout=120)
    size = args.lines * 65
    print(f"\n{args.lines:,} lines (~{size / 1e6:.1f} MB) over {args.seconds:.0f} s, read every {args.poll} s; {load()}")
    print(f"{'follower':8s} {'received MB':>11s} {'x log':>6s} {'CPU s':>6s} {'lines':>9s} {'lag s':>6s}  job")
    for name, r in results.items():
        print(f"{name:8s} {r['bytes'] / 1e6:>11.1f} {r['bytes'] / size:>6.1f} {r['cpu']:>6.2f} {r['lines']:>9,d} "
              f"{r['lag']:>6.2f}  {r['status']}")
    w, s = results["whole"], results["stream"]
    print(f"stream / whole: {s['bytes'] / max(1, w['bytes']):.3f}x the bytes, "
          f"{s['cpu'] / max(1e-9, w['cpu']):.2f}x the CPU")


if __name__ == "__main__":
    main()
