"""Detached local jobs: a process group we start, and can find, poll and cancel from any process.

Why not nemo-run's local scheduler: it has no exit-code API, `detach` is ignored for
local runs, and cancelling a local job from another process did not work (nemo-run 0.11).
So nemo-run's `LocalExecutor` only configures the job (ntasks_per_node → torchrun
`--nproc-per-node`, env_vars), and this backend runs it: `bash <job dir>/launch.sh` as
the leader of a new session (its pid = the process group id), output to
`<job dir>/job.log`, exit code to `<job dir>/exit_code` (wrapper.py).

Identity: the ref stores the pid and the process's start time (/proc/<pid>/stat field
22), so a reused pid is never mistaken for the job. State: exit_code file → COMPLETED /
FAILED (128+N = signal N); a `cancelled` marker → CANCELLED; a live process → RUNNING;
a dead wrapper without an exit code (SIGKILLed) → FAILED with a reason.
Cancel: marker, SIGTERM to the group, SIGKILL after a grace period, then confirm that
no process of the group is left.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from nemotron_core.errors import NemotronError
from nemotron_core.execution.options import Executor, job_options
from nemotron_core.execution.refs import JobRef
from nemotron_core.execution.secrets_file import scrubbed_environ
from nemotron_core.execution.states import JobState, JobStatus
from nemotron_core.launch import Plan
from nemotron_core.execution.backends.wrapper import (CANCEL_FILE, PID_FILE, read_exit_code,
                                                      write_launch_script)
from nemotron_core.paths import state_env

_CHILDREN: dict[int, subprocess.Popen] = {}  # jobs this process started (reaped on status)


def _pid(ref: JobRef) -> int:
    """The job's process group id (its wrapper's pid): set once submit() returned."""
    if ref.id is None:
        raise NemotronError(f"{ref.job_dir}: the local job has no process id yet")
    return int(ref.id)


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # zombie / dead
        return None
    return fields[19]


def _group_alive(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def local_command(executor: Executor, plan: Plan) -> list[str]:
    """plan.command, with torchrun's --nproc-per-node taken from the LocalExecutor."""
    command = list(plan.command)
    nproc = getattr(executor, "ntasks_per_node", None)
    if plan.launcher == "torchrun" and nproc and "--nproc-per-node" in command:
        command[command.index("--nproc-per-node") + 1] = str(nproc)
    return command


class LocalBackend:
    name = "local"

    def submit(self, executor: Executor, plan: Plan, ref: JobRef, secrets_path: Path | None) -> JobRef:
        job_dir = Path(ref.job_dir)
        opts = job_options(executor)
        env = dict(getattr(executor, "env_vars", {}) or {})
        launch = write_launch_script(job_dir, local_command(executor, plan), env=env, startup=opts.startup,
                                     title=plan.recipe, code_root=opts.code_root)
        ref.cluster = {"host": socket.gethostname()}
        ref.save()  # id None until the process exists; recover_id reads the wrapper's pid file
        child_env = scrubbed_environ(names=opts.secret_names)  # they reach the job through secrets.env
        for k, v in state_env().items():
            child_env.setdefault(k, v)
        Path(child_env["TMPDIR"]).mkdir(parents=True, exist_ok=True)
        with open(job_dir / "job.log", "ab") as log:
            proc = subprocess.Popen(["bash", str(launch)], cwd=job_dir, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, env=child_env, start_new_session=True)
        _CHILDREN[proc.pid] = proc
        ref.id = str(proc.pid)
        ref.cluster["start"] = _start_time(proc.pid)
        ref.save()
        return ref

    def recover_id(self, ref: JobRef) -> str | None:
        try:
            pid = int((Path(ref.job_dir) / PID_FILE).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        ref.cluster["start"] = _start_time(pid)
        return str(pid)

    def _alive(self, ref: JobRef) -> bool:
        pid = _pid(ref)
        child = _CHILDREN.get(pid)
        if child is not None and child.poll() is not None:
            _CHILDREN.pop(pid, None)
            return False
        start = _start_time(pid)
        return start is not None and (ref.cluster.get("start") in (None, start))

    def status(self, ref: JobRef, *, max_age: float = 0.0) -> JobStatus:
        job_dir = Path(ref.job_dir)
        cancelled = (job_dir / CANCEL_FILE).exists()
        code = read_exit_code(job_dir)
        if code is not None:
            sig = code - 128 if code > 128 else None
            if cancelled:
                return JobStatus(JobState.CANCELLED, exit_code=code, signal=sig, raw="cancelled")
            if code == 0:
                return JobStatus(JobState.COMPLETED, exit_code=0, raw="exited")
            return JobStatus(JobState.FAILED, exit_code=code, signal=sig, raw="exited")
        if self._alive(ref):
            return JobStatus(JobState.RUNNING, raw="running")
        if cancelled:
            return JobStatus(JobState.CANCELLED, raw="cancelled")
        if read_exit_code(job_dir) is not None:  # finished between the two reads
            return self.status(ref)
        return JobStatus(JobState.FAILED, reason="the job's wrapper died without recording an exit code", raw="lost")

    def cancel(self, ref: JobRef, *, grace: float = 10.0) -> None:
        pgid = _pid(ref)
        if not self._alive(ref):
            return
        (Path(ref.job_dir) / CANCEL_FILE).touch()
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            self._alive(ref)  # reaps our own child
            if not _group_alive(pgid):
                return
            time.sleep(0.1)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def gone_from_queue(self, ref: JobRef) -> bool:
        self._alive(ref)
        return not _group_alive(_pid(ref))

    def log_files(self, ref: JobRef, *, app_only: bool = False) -> list[str]:
        return [str(Path(ref.job_dir) / "job.log")]
