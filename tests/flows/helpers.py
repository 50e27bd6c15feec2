"""Running the nano3-full flow from tests: in a subprocess against a real Prefect server,
as a deployment's worker would run it, each test module with its own state folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.fixtures.state import remove_state_folder
from tests.fixtures.waiting import wait_for  # noqa: F401  (re-exported for the flow tests)

REPO = Path(__file__).resolve().parents[2]
_FLOW_CODE = ("import json, sys\n"
              "from flows.nano3_full import nano3_full\n"
              "result = nano3_full(**json.loads(sys.argv[1]))\n"
              "print('RESULT=' + json.dumps(result), flush=True)\n")


@contextmanager
def flow_state(prefect_server: str, name: str, **extra_env: str) -> Iterator[tuple[Path, dict[str, str]]]:
    """(state folder, environment) for flow subprocesses; the folder is removed afterwards
    (kept with NEMOTRON_KEEP_FLOW_STATE=1, to read the job logs of a failed test)."""
    # A short path: Ray's socket paths live under it (unix socket length limit).
    state = REPO / ".state" / f"{name}{os.getpid()}"
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "NEMOTRON_STATE_DIR": str(state),
           "PREFECT_HOME": str(state / "prefect"), "NEMOTRON_ENV_FILE": "", **extra_env}
    env.pop("RAY_ADDRESS", None)
    try:
        yield state, env
    finally:
        if os.environ.get("NEMOTRON_KEEP_FLOW_STATE") != "1":
            remove_state_folder(state)


def start_flow(env: dict[str, str], log: Path, **params) -> subprocess.Popen:
    """The flow in a subprocess, its output to `log` (read it with `flow_result`)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-c", _FLOW_CODE, json.dumps(params)], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def flow_result(proc: subprocess.Popen, log: Path, timeout: float = 1500) -> dict:
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text(errors="replace")
    assert proc.returncode == 0, text[-6000:]
    line = next(line for line in text.splitlines() if line.startswith("RESULT="))
    return json.loads(line[len("RESULT="):])


def run_flow(env: dict[str, str], **params) -> dict:
    state = Path(env["NEMOTRON_STATE_DIR"])
    log = state / "flow-logs" / f"{time.time_ns()}.log"
    return flow_result(start_flow(env, log, **params), log)


def job_dirs(state: Path) -> set[Path]:
    root = state / "jobs"
    return {p for p in root.glob("[!.]*/*") if p.is_dir()} if root.is_dir() else set()


def registry(state: Path):
    from nemotron_core.artifacts import open_registry

    return open_registry({"root": str(state / "artifacts")})


def output_dir(job_dir: Path) -> Path:
    from omegaconf import OmegaConf

    return Path(OmegaConf.load(job_dir / "train.yaml").output_dir)


def complete_checkpoints(out: Path) -> list[int]:
    """Steps of the trainer's complete checkpoints in `out` (step_N/COMPLETE written last)."""
    return sorted(int(p.parent.name.split("_")[1]) for p in (out / "checkpoints").glob("step_*/COMPLETE"))


def _processes() -> list[tuple[int, int, int, list[str]]]:
    """(pid, ppid, pgrp, argv) of every process."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            argv = [w.decode(errors="replace") for w in (proc / "cmdline").read_bytes().split(b"\0") if w]
        except (OSError, IndexError):
            continue
        out.append((int(proc.name), int(fields[1]), int(fields[2]), argv))
    return out


def trainer_worker(job_dir: Path) -> int | None:
    """The pid of the trainer worker that torchrun started for the local job in `job_dir`.

    torchrun runs in the job's process group; it starts each worker in a session of its own.
    """
    try:
        pgid = int((job_dir / "pid").read_text())
    except (OSError, ValueError):
        return None
    procs = _processes()
    agents = {pid for pid, _, pgrp, argv in procs if pgrp == pgid and any("torchrun" in w for w in argv)}
    workers = [pid for pid, ppid, _, argv in procs if ppid in agents and any(w.endswith("train.py") for w in argv)]
    return workers[0] if workers else None


def kill_flow(proc: subprocess.Popen) -> None:
    """What a lost orchestrator machine does to the flow: SIGKILL, no hooks, no cleanup."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
