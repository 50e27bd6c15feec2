"""Benchmark: 20 concurrent nano3-full flow runs from 2 workers, PostgreSQL vs SQLite, side by side.

    .venv/bin/python benchmarks/prefect_load.py [--runs 20] [--workers 2] [--backends postgres,sqlite]

Starts two Prefect servers of its own under <state>/bench/load/ (scripts/prefect-server: SQLite,
and --db postgres --auth with scripts/postgres), on free ports, and stops them at the end. The
flow is the real nano3-full with its three data stages, every one a cache hit (the stages are
built once into <state>/bench/load/pipeline): each flow run is a flow process started by a
`prefect worker` (process pool), three stage tasks with content-key locks and cached results,
and their state changes sent to the server, without training. For each backend: all runs are
created at once, then two workers start and take them; figures once every run is final:
- completed: flow runs COMPLETED out of --runs;
- API errors: HTTP 5xx/timeouts/connection errors seen by workers and flow processes (their
  logs), and ERROR lines in the server's log;
- "database is locked": occurrences in the server's and the workers' logs;
- task-state transitions: Prefect 3 sends task run states as events, and the server writes
  them behind; p50/p95 of (row inserted - state timestamp) over every task-run state of these
  runs, read from the database, is how far the server's record lags behind the tasks;
- wall: from the workers' start to the last run final.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from _reliability_data import REPO, bench_env, load

from nemotron_core.paths import state_dir

BENCH = state_dir() / "bench" / "load"
PIPELINE = BENCH / "pipeline"
STAGES = ["data_pretrain", "data_sft", "data_rl"]
PREFECT = str(Path(sys.executable).with_name("prefect"))
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
API_ERROR = re.compile(r"HTTPStatusError|Server error '5\d\d|5\d\d (Internal Server Error|Service Unavailable)|"
                       r"ReadTimeout|ConnectTimeout|ConnectError|RemoteProtocolError|PoolTimeout")
LOCKED = "database is locked"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One Prefect server in its own state folder, started by the project's scripts."""

    def __init__(self, backend: str):
        self.backend = backend
        self.state = BENCH / backend
        self.dir = self.state / "services" / "prefect-server"
        self.env = {**os.environ, "NEMOTRON_STATE_DIR": str(self.state), "NEMOTRON_PREFECT_PORT": str(free_port()),
                    "NEMOTRON_POSTGRES_PORT": str(free_port())}
        self.env = {k: v for k, v in self.env.items() if not k.startswith("PREFECT_")}

    def script(self, name: str, *args: str) -> str:
        proc = subprocess.run([str(REPO / "scripts" / name), *args], env=self.env, capture_output=True, text=True,
                              timeout=900)
        if proc.returncode != 0:
            sys.exit(f"scripts/{name} {' '.join(args)} failed: {(proc.stderr or proc.stdout).strip()[-2000:]}")
        return proc.stdout

    def start(self) -> None:
        self.script("prefect-server", "start", *(("--db", "postgres", "--auth") if self.backend == "postgres" else ()))
        exports = dict(re.findall(r"^export (\w+)=(\S+)$", self.script("prefect-server", "env"), re.M))
        self.url = exports["PREFECT_API_URL"]
        options = dict(line.split("=", 1) for line in (self.dir / "options").read_text().splitlines() if "=" in line)
        self.auth = Path(options["auth_file"]).read_text().splitlines()[0] if options.get("auth_file") else ""
        self.log_offset = (self.dir / "server.log").stat().st_size

    def stop(self) -> None:
        self.script("prefect-server", "stop")
        if self.backend == "postgres":
            self.script("postgres", "stop")

    def client_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in bench_env().items() if not k.startswith("PREFECT_")}
        env.update(PREFECT_API_URL=self.url, PREFECT_HOME=str(self.state / "client-home"),
                   PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", **extra)
        if self.auth:
            env["PREFECT_API_AUTH_STRING"] = self.auth
        return env

    def server_log(self) -> str:
        with open(self.dir / "server.log", "rb") as fh:
            fh.seek(self.log_offset)
            return fh.read().decode(errors="replace")

    def state_lags(self, flow_run_ids: list[str]) -> list[float]:
        """Seconds between each task-run state's timestamp and its row's insertion, for these flow runs."""
        if self.backend == "sqlite":
            db = sqlite3.connect(f"file:{self.dir / 'home' / 'prefect.db'}?mode=ro", uri=True)
            marks = ",".join("?" * len(flow_run_ids))
            rows = db.execute(f"SELECT s.timestamp, s.created FROM task_run_state s JOIN task_run t "
                              f"ON t.id = s.task_run_id WHERE t.flow_run_id IN ({marks})", flow_run_ids).fetchall()
            db.close()
            return [(_when(created) - _when(stamp)).total_seconds() for stamp, created in rows]
        ids = ",".join(f"'{i}'" for i in flow_run_ids)  # uuids printed by the server: no quoting needed
        env_file = self.state / "services" / "postgres" / "db.env"
        pg = {**os.environ, **dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)}
        sql = ("SELECT extract(epoch FROM s.created - s.timestamp) FROM task_run_state s JOIN task_run t "
               f"ON t.id = s.task_run_id WHERE t.flow_run_id IN ({ids})")
        port = self.env["NEMOTRON_POSTGRES_PORT"]
        proc = subprocess.run(["psql", "-h", "127.0.0.1", "-p", port, "-tAc", sql], env=pg, capture_output=True,
                              text=True, timeout=120)
        if proc.returncode != 0:
            sys.exit(f"psql failed: {proc.stderr.strip()}")
        return [float(line) for line in proc.stdout.split()]


def _when(value) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def python(env: dict[str, str], code: str, *args: str, timeout: float = 300) -> str:
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        sys.exit(f"client call failed: {proc.stderr[-3000:]}")
    return proc.stdout


def prefect(env: dict[str, str], *args: str) -> None:
    proc = subprocess.run([PREFECT, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        sys.exit(f"prefect {' '.join(args)} failed: {(proc.stdout + proc.stderr)[-3000:]}")


CREATE_RUNS = ("import json, sys\n"
               "from prefect.deployments import run_deployment\n"
               "for _ in range(int(sys.argv[1])):\n"
               "    print(run_deployment('nano3-full/load', parameters=json.loads(sys.argv[2]), timeout=0).id)\n")
STATES = ("import sys\n"
          "from prefect.client.orchestration import get_client\n"
          "from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId\n"
          "with get_client(sync_client=True) as c:\n"
          "    for r in c.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=sys.argv[1:]))):\n"
          "        print(r.id, r.state.type.value)\n")


def build_pipeline(server: Server) -> None:
    if (PIPELINE / "artifacts" / "nano3-rl-data").is_dir():
        return
    print(f"building the data stages once in {PIPELINE} ...", flush=True)
    env = server.client_env(NEMOTRON_STATE_DIR=str(PIPELINE), NEMOTRON_ENV_FILE="")
    python(env, "from flows.nano3_full import nano3_full\nimport sys, json\nnano3_full(stages=json.loads(sys.argv[1]))",
           json.dumps(STAGES), timeout=1800)


def run_load(server: Server, runs: int, workers: int) -> dict:
    env = server.client_env()
    prefect(env, "work-pool", "create", "load", "--type", "process", "--overwrite")
    prefect(env, "--no-prompt", "deploy", "flows/nano3_full.py:nano3_full", "--name", "load", "--pool", "load")
    ids = python(env, CREATE_RUNS, str(runs), json.dumps({"stages": STAGES})).split()
    logs = [server.state / f"worker-{i}.log" for i in range(workers)]
    wenv = server.client_env(NEMOTRON_STATE_DIR=str(PIPELINE), NEMOTRON_ENV_FILE="", PREFECT_WORKER_QUERY_SECONDS="1",
                             PREFECT_WORKER_PREFETCH_SECONDS="1")
    t0 = time.perf_counter()
    procs = []
    for i, log in enumerate(logs):
        with open(log, "wb") as out:
            procs.append(subprocess.Popen([PREFECT, "worker", "start", "--pool", "load", "--name", f"w{i}"], env=wenv,
                                          cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True))
    try:
        deadline = time.monotonic() + 1800
        while True:
            states = dict(line.split() for line in python(env, STATES, *ids).splitlines() if line.strip())
            if len(states) == len(ids) and set(states.values()) <= FINAL:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(2)
        wall = time.perf_counter() - t0
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    lags = wait_recorded(server, ids, len(ids) * len(STAGES))
    worker_text = "".join(log.read_text(errors="replace") for log in logs)
    server_text = server.server_log()
    return {
        "completed": sum(s == "COMPLETED" for s in states.values()), "runs": len(ids),
        "other_states": sorted(s for s in states.values() if s != "COMPLETED"),
        "api_errors": len(API_ERROR.findall(worker_text)),
        "server_errors": sum(" ERROR " in line or "Traceback" in line for line in server_text.splitlines()),
        "locked": worker_text.count(LOCKED) + server_text.count(LOCKED),
        "transitions": len(lags),
        "p50": statistics.median(lags) if lags else float("nan"),
        "p95": quantile(lags, 0.95), "max": max(lags, default=float("nan")), "wall": wall,
    }


def wait_recorded(server: Server, ids: list[str], tasks: int) -> list[float]:
    """The lags, once the server has written every task's states (it records events behind)."""
    lags, deadline = [], time.monotonic() + 120
    while time.monotonic() < deadline:
        new = server.state_lags(ids)
        if len(new) >= 2 * tasks and len(new) == len(lags):  # at least 2 states per task, and no more coming
            return new
        lags = new
        time.sleep(3)
    return lags


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backends", default="postgres,sqlite")
    parser.add_argument("--keep", action="store_true", help="leave the servers running")
    args = parser.parse_args()
    backends = [b for b in args.backends.split(",") if b]
    if not backends or set(backends) - {"postgres", "sqlite"}:
        sys.exit(f"error: --backends {args.backends!r}: use postgres, sqlite or both (comma-separated)")
    servers = [Server(b) for b in backends]
    results = {}
    try:
        for server in servers:
            server.start()
        build_pipeline(servers[-1])
        for server in servers:
            print(f"{server.backend}: {args.runs} flow runs, {args.workers} workers ...", flush=True)
            results[server.backend] = run_load(server, args.runs, args.workers)
    finally:
        if not args.keep:
            for server in servers:
                server.stop()
    print(f"\n{args.runs} concurrent nano3-full runs (stages {', '.join(STAGES)}, all cached), {args.workers} "
          f"workers; {load()}")
    print(f"{'backend':9s} {'completed':>9s} {'API err':>7s} {'srv err':>7s} {'locked':>6s} {'states':>6s} "
          f"{'p50 s':>7s} {'p95 s':>7s} {'max s':>7s} {'wall s':>7s}")
    for backend, r in results.items():
        print(f"{backend:9s} {r['completed']:>4d}/{r['runs']:<4d} {r['api_errors']:>7d} {r['server_errors']:>7d} "
              f"{r['locked']:>6d} {r['transitions']:>6d} {r['p50']:>7.3f} {r['p95']:>7.3f} {r['max']:>7.3f} "
              f"{r['wall']:>7.1f}" + (f"  not completed: {', '.join(r['other_states'])}" if r["other_states"] else ""))


if __name__ == "__main__":
    main()
