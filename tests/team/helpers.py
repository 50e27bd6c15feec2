"""A tiny flow, deployed to a team server and run by real `prefect worker` processes.

The flow records which worker ran it (WORKER_TAG, inherited from the worker's environment)
and its flow run id in a shared file, so tests can count who ran what.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.fixtures.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))

HELLO = '''
import os
import time

from prefect import flow, task
from prefect.runtime import flow_run


@task
def double(x: int) -> int:
    return 2 * x


@flow(name="team-hello")
def hello(x: int = 1, sleep: float = 0.0, record: str = "") -> int:
    if record:
        with open(record + ".events", "a") as fh:
            fh.write(f"start {flow_run.id}\\n")
    time.sleep(sleep)
    if record:
        with open(record, "a") as fh:
            fh.write(f"{flow_run.id} {os.environ.get('WORKER_TAG', '-')}\\n")
        with open(record + ".events", "a") as fh:
            fh.write(f"end {flow_run.id}\\n")
    return double(x)
'''


def team_env(server_env: dict[str, str], home: Path, **extra: str) -> dict[str, str]:
    """A client environment for the team server: its URL and auth string, its own PREFECT_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_API_URL=server_env["PREFECT_API_URL"], PREFECT_HOME=str(home),
               PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", **extra)
    if "PREFECT_API_AUTH_STRING" in server_env:
        env["PREFECT_API_AUTH_STRING"] = server_env["PREFECT_API_AUTH_STRING"]
    return env


def prefect(env: dict[str, str], *args: str, cwd: Path | None = None, timeout: float = 180,
            check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([PREFECT, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if check:
        assert proc.returncode == 0, f"prefect {' '.join(args)}: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return proc


def deploy_hello(env: dict[str, str], folder: Path, pool: str, *, tags: tuple[str, ...] = (),
                 concurrency: int | None = None) -> str:
    """A process work pool `pool` and the hello flow deployed to it; returns "team-hello/<pool>".

    `concurrency` is the deployment's concurrency limit (`prefect deploy --concurrency-limit N`).
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hello.py").write_text(HELLO)
    prefect(env, "work-pool", "create", pool, "--type", "process", "--overwrite")
    args = ["--no-prompt", "deploy", "hello.py:hello", "--name", pool, "--pool", pool]
    if concurrency is not None:
        args += ["--concurrency-limit", str(concurrency)]
    for tag in tags:
        args += ["--tag", tag]
    prefect(env, *args, cwd=folder, timeout=300)
    return f"team-hello/{pool}"


def run_deployment(env: dict[str, str], name: str, **params) -> str:
    """Create a flow run of the deployment (not waiting); returns its id."""
    code = ("import json, sys\n"
            "from prefect.deployments import run_deployment\n"
            "r = run_deployment(sys.argv[1], parameters=json.loads(sys.argv[2]), timeout=0)\n"
            "print(r.id)\n")
    import json

    proc = subprocess.run([sys.executable, "-c", code, name, json.dumps(params)], env=env, capture_output=True,
                          text=True, timeout=180, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return str(uuid.UUID(proc.stdout.strip().splitlines()[-1]))


def flow_run_states(env: dict[str, str], ids: list[str]) -> dict[str, str]:
    """{flow run id: state type} read from the server."""
    code = ("import sys\n"
            "from prefect.client.orchestration import get_client\n"
            "with get_client(sync_client=True) as c:\n"
            "    for i in sys.argv[1:]:\n"
            "        print(i, c.read_flow_run(i).state.type.value)\n")
    proc = subprocess.run([sys.executable, "-c", code, *ids], env=env, capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(line.split() for line in proc.stdout.splitlines() if line.strip())


def wait_final(env: dict[str, str], ids: list[str], timeout: float = 600) -> dict[str, str]:
    final = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}

    def done():
        states = flow_run_states(env, ids)
        return states if all(s in final for s in states.values()) else None

    return wait_for(done, timeout=timeout, what=f"{len(ids)} flow runs finished", step=1.0)


def start_worker(env: dict[str, str], pool: str, tag: str, log: Path, *extra: str) -> subprocess.Popen:
    """`prefect worker start --pool POOL` (polling every second), WORKER_TAG=tag for its flow runs."""
    log.parent.mkdir(parents=True, exist_ok=True)
    wenv = {**env, "WORKER_TAG": tag, "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "1"}
    with open(log, "wb") as out:
        return subprocess.Popen([PREFECT, "worker", "start", "--pool", pool, "--name", f"{pool}-{tag}", *extra],
                                env=wenv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def stop_worker(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{time.time_ns() % 10**8}"
