"""Submitting a job and holding on to it: `submit`, `find_job`, `Job`.

A Prefect task reads, top to bottom:

    executor = create_executor(profile, spec)                       # executors.py
    job = submit(executor, plan, job_dir=job_dir, content_key=key,  # here
                 flow_run_id=str(flow_run.id))
    status = job.wait(on_log=logger.info, check=True)               # raises JobError unless COMPLETED

Decisions:
- One handle for every backend (local process group, Slurm, Ray). `status()` reads
  the backend's real state (states.py); `wait()` polls with backoff (0.5 s doubling-ish
  to 10 s, reset on every state change), streams new log lines to a callback about once
  a second, and returns the final `JobStatus`; `cancel()` ends the job for real and
  returns only once the backend confirms it is over.
- Re-attach: `submit` with a `content_key` first looks for a job already submitted for
  that key (under an fcntl lock, so two orchestrators on one machine submit once) and
  returns it (`job.reattached` is True) when it is pending, running or completed; a
  failed/cancelled one is not reused (a retry should run again). `find_job` is the same
  lookup on its own.
- Secrets: written to `<job dir>/secrets.env` (0600) from the environment; see
  secrets_file.py. The JobRef and everything else written hold none.
- Slurm polling is batched per process (backends/slurm.py: SlurmPoller); `wait_all`
  waits on many jobs from one thread.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable

from nemotron_core.errors import NemotronError
from nemotron_core.execution.backends import (Backend, RemoteFiles, Requeueable, Retaggable, StreamedLogs, backend,
                                               backend_kind)
from nemotron_core.execution.executors import job_options, with_plan_env
from nemotron_core.execution.logs import LogFollower
from nemotron_core.execution.options import Executor
from nemotron_core.execution.refs import JobRef, key_lock, refs_for_key
from nemotron_core.execution.secrets_file import collect_secrets, write_secrets_file
from nemotron_core.execution.states import JobError, JobState, JobStatus
from nemotron_core.launch import Plan

REUSABLE = (JobState.PENDING, JobState.RUNNING, JobState.COMPLETED)
class Job:
    """A submitted job: status, wait, cancel, logs. Cheap to create from a JobRef."""

    def __init__(self, ref: JobRef, *, reattached: bool = False):
        self.ref = ref
        self.reattached = reattached
        self._backend: Backend = backend(ref.backend)

    @classmethod
    def from_dir(cls, job_dir: str | Path) -> "Job":
        return cls(JobRef.load(job_dir))

    @property
    def id(self) -> str | None:
        return self.ref.id

    @property
    def job_dir(self) -> Path:
        return Path(self.ref.job_dir)

    def __repr__(self) -> str:
        return f"Job({self.ref.backend}:{self.ref.id} {self.ref.name} {self.ref.job_dir})"

    # state -------------------------------------------------------------------------------

    def _ensure_id(self) -> bool:
        if self.ref.id is None:
            recovered = self._backend.recover_id(self.ref)
            if recovered is None:
                return False
            self.ref.id = recovered
            self.ref.save()
        return True

    def status(self, *, max_age: float = 1.0) -> JobStatus:
        """The backend's current state (Slurm answers are shared for `max_age` seconds)."""
        if not self._ensure_id():
            return JobStatus(JobState.UNKNOWN, reason="submission did not reach the backend")
        return self._backend.status(self.ref, max_age=max_age)

    def wait(self, *, on_log: Callable[[str], None] | None = None, timeout: float | None = None,
             poll: float = 0.5, max_poll: float = 10.0, check: bool = False) -> JobStatus:
        """Block until the job ends; stream new log lines to `on_log`; return the final status.

        `timeout` raises JobError (the job keeps running); `check` raises JobError unless COMPLETED.
        """
        follower = self._follower() if on_log else None
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            interval, next_poll, last, errors = poll, 0.0, None, 0
            while True:
                now = time.monotonic()
                if now >= next_poll:
                    try:
                        status = self.status(max_age=min(interval, 1.0))
                        errors = 0
                    except NemotronError:  # slurmctld restarting, SSH hiccup, Ray head busy: retry a few times
                        errors += 1
                        if errors >= 5:
                            raise
                        time.sleep(min(2.0 ** errors, max_poll))
                        continue
                    if status != last:
                        interval, last = poll, status
                    else:
                        interval = min(interval * 1.6, max_poll)
                    next_poll = now + interval
                    if status.done:
                        break
                if follower and on_log:
                    for line in follower.read_new():
                        on_log(line)
                if deadline is not None and now >= deadline:
                    state = last.state if last else "unknown"
                    raise JobError(f"{self.describe()} still {state} after {timeout:.0f} s; "
                                   f"it keeps running (cancel it with Job.cancel())", last)
                time.sleep(max(0.05, min(next_poll - time.monotonic(), 1.0)))
            if follower and on_log:
                time.sleep(0.2)  # the last lines may land just after Slurm/Ray report the end
                for line in follower.flush():
                    on_log(line)
        finally:
            if follower:
                follower.close()  # a streaming follower stops its reader (a timeout leaves the job running)
        if check and not status.ok:
            raise JobError(f"{self.describe()} ended {status.describe()}; logs: {self.log_hint()}", status)
        return status

    def cancel(self, *, timeout: float = 60.0) -> JobStatus:
        """End the job (scancel / Ray stop_job / SIGTERM→SIGKILL the process group) and confirm it ended."""
        if not self._ensure_id():
            return JobStatus(JobState.UNKNOWN, reason="submission did not reach the backend")
        status = self.status(max_age=0)
        if status.done:
            return status
        self._backend.cancel(self.ref)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status(max_age=0)
            if status.done and self._backend.gone_from_queue(self.ref):
                return status
            time.sleep(0.25)
        raise JobError(f"{self.describe()} was cancelled but is still {status.state} after {timeout:.0f} s", status)

    def adopt(self, flow_run_id: str | None) -> None:
        """A rerun re-attached to this job: it now belongs to `flow_run_id`, so cancelling or
        sweeping that flow run reaches it (and the dead run it was submitted by no longer does)."""
        if not flow_run_id or flow_run_id == self.ref.flow_run_id:
            return
        self.ref.flow_run_id = flow_run_id
        self.ref.save()
        if not isinstance(self._backend, Retaggable) or not self._ensure_id():  # local/Ray: the ref is all
            return
        try:
            self._backend.retag(self.ref)  # Slurm: the job's comment
        except NemotronError:
            if not self.status(max_age=0).done:  # an ended job cannot be updated, and needs no cancelling
                raise

    def requeue(self, *, start_now: bool = True) -> None:
        """Put a Slurm job back in the queue (what preemption with PreemptMode=REQUEUE does)."""
        if not isinstance(self._backend, Requeueable):
            raise NemotronError(f"requeue is a Slurm operation; {self.describe()} runs on {self.ref.backend}")
        self._ensure_id()
        self._backend.requeue(self.ref, start_now=start_now)

    # logs --------------------------------------------------------------------------------

    def log_files(self) -> list[str]:
        return self._backend.log_files(self.ref) if self._ensure_id() else []

    def logs(self) -> str:
        """Everything the job printed so far."""
        if isinstance(self._backend, StreamedLogs):
            return self._backend.logs(self.ref) if self._ensure_id() else ""
        follower = self._follower(app_only=False)
        return "".join(line + "\n" for line in follower.flush())

    def log_hint(self) -> str:
        files = self.log_files()
        streamed = isinstance(self._backend, StreamedLogs)
        return ", ".join(files) if files else (f"`ray job logs {self.ref.id}`" if streamed
                                               else str(self.job_dir))

    def describe(self) -> str:
        return f"{self.ref.backend} job {self.ref.id} ({self.ref.name})"

    def _follower(self, *, app_only: bool = True) -> Any:
        if isinstance(self._backend, StreamedLogs):  # Ray: new text only (the whole log per poll is quadratic)
            return self._backend.follower(self.ref)

        def files() -> list[str]:
            return self._backend.log_files(self.ref, app_only=app_only) if self._ensure_id() else []

        if not isinstance(self._backend, RemoteFiles):
            return LogFollower(files)
        remote = self._backend  # Slurm over SSH reads remote files
        return LogFollower(files, lambda path, offset: remote.read(self.ref, path, offset))


# --------------------------------------------------------------------------- submit / find


def find_job(content_key: str, *, include_failed: bool = False) -> Job | None:
    """The newest job submitted for `content_key` that is pending, running or completed.

    With `include_failed`, the newest job in any state the backend still knows.
    """
    for ref in refs_for_key(content_key):
        job = Job(ref, reattached=True)
        try:
            status = job.status(max_age=0)
        except NemotronError:
            continue  # its backend is gone (cluster torn down, head stopped)
        if status.state in REUSABLE or (include_failed and status.state is not JobState.UNKNOWN):
            return job
    return None


def submit(executor: Executor, plan: Plan, *, job_dir: str | Path, content_key: str | None = None,
           flow_run_id: str | None = None,
           secrets: dict[str, str] | None = None, reuse: bool = True) -> Job:
    """Run `plan` through `executor`; return its `Job` once the backend has it.

    With a `content_key` and `reuse`, an earlier submission for the same key that is
    pending, running or completed is returned instead (`job.reattached`), so a
    restarted orchestrator never submits twice. `secrets` defaults to the secret
    variables of this environment plus the profile's `secrets` names.
    """
    kind = backend_kind(executor)
    job_dir = Path(job_dir).resolve()
    executor = with_plan_env(executor, plan)
    with key_lock(content_key):
        if content_key and reuse:
            existing = find_job(content_key)
            if existing is not None:
                return existing
        job_dir.mkdir(parents=True, exist_ok=True)
        if secrets is None:
            secrets = collect_secrets(extra_names=job_options(executor).secret_names)
        secrets_path = write_secrets_file(job_dir, secrets)
        ref = JobRef(backend=kind, job_dir=str(job_dir), name=plan.recipe, content_key=content_key,
                     flow_run_id=flow_run_id)
        try:
            backend(kind).submit(executor, plan, ref, secrets_path)
        except BaseException:  # no job will read it: the secrets do not stay behind in the job dir
            if secrets_path is not None:
                secrets_path.unlink(missing_ok=True)
            raise
    return Job(ref)


def wait_all(jobs: Iterable[Job], *, on_log: Callable[[Job, str], None] | None = None, poll: float = 1.0,
             timeout: float | None = None) -> dict[str, JobStatus]:
    """Wait for several jobs from one thread: one backend query per poll answers for all of them."""
    jobs = list(jobs)
    followers = {id(j): j._follower() for j in jobs} if on_log else {}
    deadline = None if timeout is None else time.monotonic() + timeout
    final: dict[str, JobStatus] = {}
    try:
        return _wait_all(jobs, followers, final, on_log, poll, deadline, timeout)
    finally:
        for follower in followers.values():
            follower.close()


def _wait_all(jobs: list[Job], followers: dict[int, Any], final: dict[str, JobStatus],
              on_log: Callable[[Job, str], None] | None, poll: float, deadline: float | None,
              timeout: float | None) -> dict[str, JobStatus]:
    while len(final) < len(jobs):
        for job in jobs:
            if job.ref.job_dir in final:
                continue
            status = job.status(max_age=poll * 0.9)
            if on_log:
                follower = followers[id(job)]
                for line in (follower.flush() if status.done else follower.read_new()):  # the end: its last line too
                    on_log(job, line)
            if status.done:
                final[job.ref.job_dir] = status
        if deadline is not None and time.monotonic() >= deadline:
            raise JobError(f"{len(jobs) - len(final)} job(s) still running after {timeout:.0f} s")
        if len(final) < len(jobs):
            time.sleep(poll)
    return final
