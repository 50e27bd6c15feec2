"""Ray jobs on a running Ray cluster, through `ray.job_submission.JobSubmissionClient`.

nemo-run's Ray backends start their own clusters (Slurm/KubeRay/Lepton/DGX Cloud); for a
head that is already running (`ray start --head`, named by the profile's `address`) we
talk to its job-submission API directly. (Ray on Slurm: backends/slurm.py renders
nemo-run's Slurm RayJob sbatch.)

- The submission id is ours, `nemotron-<job dir name>`, chosen before submitting, so
  a restarted process finds the job by it; Ray refuses a second submission with the
  same id, which is one more guard against double submission.
- The entrypoint is `bash <job dir>/launch.sh` (wrapper.py): env exports, secrets
  sourced from the 0600 file, the exit code recorded. The head runs on this machine's
  filesystem. Nothing secret goes into the entrypoint, runtime_env or metadata (Ray
  shows all three in `ray job list` and its dashboard).
- The code root (this checkout) goes on PYTHONPATH twice over: launch.sh puts it first for
  the entrypoint, and the job's runtime_env sets it for every task and actor the job starts,
  whose workers the head spawned with the head's environment, not the entrypoint's (code_root.py).
- State: SUCCEEDED → COMPLETED, FAILED → FAILED (driver_exit_code), STOPPED →
  CANCELLED. One `list_jobs()` call per poll answers for every job of the process.
- Cancel: `stop_job`, then poll until the job is terminal.
- Logs: followed with `tail_job_logs` (new text only), fetched whole once with `get_job_logs`.
"""

from __future__ import annotations

import shlex
import threading
import time
from pathlib import Path
from typing import Any

from nemotron_core.errors import NemotronError
from nemotron_core.execution.options import RayClusterExecutor, job_options
from nemotron_core.execution.refs import JobRef
from nemotron_core.execution.states import JobState, JobStatus
from nemotron_core.launch import Plan
from nemotron_core.execution.backends.wrapper import write_launch_script
from nemotron_core.execution.logs import StreamFollower

_RAY_STATES = {"PENDING": JobState.PENDING, "RUNNING": JobState.RUNNING, "SUCCEEDED": JobState.COMPLETED,
               "FAILED": JobState.FAILED, "STOPPED": JobState.CANCELLED}


class RayError(NemotronError):
    """The Ray head is unreachable or refused a request."""


_CLIENTS: dict[str, object] = {}
_CACHE: dict[str, tuple[float, dict[str, JobStatus]]] = {}
_LOCK = threading.Lock()


def client(address: str) -> Any:
    with _LOCK:
        if address not in _CLIENTS:
            from ray.job_submission import JobSubmissionClient  # lazy: ray.job_submission is a heavy import

            try:
                _CLIENTS[address] = JobSubmissionClient(address)
            except Exception as e:  # ConnectionError, RuntimeError from the version check
                raise RayError(f"cannot reach the Ray head at {address}: {str(e).splitlines()[0]}; "
                               f"start one (scripts/ray start) or fix the profile's address") from None
        return _CLIENTS[address]


def _to_status(details: Any) -> JobStatus:
    raw = str(getattr(details.status, "value", details.status))
    state = _RAY_STATES.get(raw, JobState.UNKNOWN)
    code = getattr(details, "driver_exit_code", None)
    if state is JobState.COMPLETED:
        code = 0
    reason = details.message.splitlines()[0] if details.message else None  # Ray appends the log tail
    return JobStatus(state=state, exit_code=code, reason=reason, raw=raw)


class RayBackend:
    name = "ray"
    queries = 0

    def submit(self, executor: RayClusterExecutor, plan: Plan, ref: JobRef, secrets_path: Path | None) -> JobRef:
        opts = job_options(executor)
        launch = write_launch_script(Path(ref.job_dir), list(plan.command), env=dict(executor.env_vars),
                                     startup=opts.startup, title=plan.recipe, code_root=opts.code_root)
        ref.id = f"nemotron-{ref.tag}"
        ref.cluster = {"address": executor.address}
        ref.save()
        metadata = {"recipe": plan.recipe, "job_dir": ref.job_dir, "flow_run": ref.flow_run_id or "",
                    "content_key": ref.content_key or ""}
        try:
            client(executor.address).submit_job(entrypoint=f"bash {shlex.quote(str(launch))}", submission_id=ref.id,
                                                metadata=metadata, entrypoint_num_cpus=executor.entrypoint_num_cpus,
                                                runtime_env={"env_vars": {"PYTHONPATH": opts.code_root}})
        except RayError:
            raise
        except Exception as e:
            raise RayError(f"Ray refused job {ref.id}: {str(e).splitlines()[0]}") from None
        return ref

    def recover_id(self, ref: JobRef) -> str | None:
        return f"nemotron-{ref.tag}"

    def status(self, ref: JobRef, *, max_age: float = 1.0) -> JobStatus:
        address = ref.cluster["address"]
        with _LOCK:
            hit = _CACHE.get(address)
        if hit is None or time.monotonic() - hit[0] >= max_age or ref.id not in hit[1]:
            RayBackend.queries += 1
            jobs = {d.submission_id: _to_status(d) for d in client(address).list_jobs() if d.submission_id}
            with _LOCK:
                _CACHE[address] = hit = (time.monotonic(), jobs)
        missing = JobStatus(JobState.UNKNOWN, reason=f"the Ray head at {address} has no job {ref.id}")
        return hit[1].get(ref.id or "", missing)

    def cancel(self, ref: JobRef) -> None:
        try:
            client(ref.cluster["address"]).stop_job(ref.id)
        except Exception as e:
            raise RayError(f"stopping Ray job {ref.id} failed: {str(e).splitlines()[0]}") from None

    def gone_from_queue(self, ref: JobRef) -> bool:
        return True

    def logs(self, ref: JobRef) -> str:
        """The whole log (one request). To follow a running job, use `follower`."""
        try:
            return client(ref.cluster["address"]).get_job_logs(ref.id)
        except Exception:
            return ""

    def follower(self, ref: JobRef) -> Any:
        """New log lines as the job writes them: `tail_job_logs` (a websocket the head pushes new text on),
        not `get_job_logs` at every poll, which re-sends the whole log each time (quadratic over a long job)."""
        return StreamFollower(lambda: client(ref.cluster["address"]).tail_job_logs(ref.id), lambda: self.logs(ref),
                              name=f"ray-logs-{ref.id}")

    def log_files(self, ref: JobRef, *, app_only: bool = False) -> list[str]:
        return []
