"""How stage tasks cache and retry.

- `StageCache`: the Prefect cache key of a stage task is its content key (see
  nemotron_core/content_key.py), so a rerun with nothing changed is a cache hit and a
  changed override reruns that stage and everything downstream (their pinned inputs change).
  Its locks (`ProcessLockManager`) die with the process holding them, so a flow process
  killed mid-stage does not leave the rerun waiting forever on its lock.
- `resume_reason` / `should_retry`: retry only what a retry can fix, and never config or
  data errors (exit 2), an out-of-memory state or a cancellation. The retry resubmits into
  the same output_dir with `resume: auto` (tasks/stage.py), where the trainer continues
  from its last checkpoint: at most one checkpoint interval of work is lost. Retried:
  * PREEMPTED, TIMEOUT, NODE_FAIL (the allocation ended, not the code);
  * the trainers' "resume me" exit code (contract.RESUME_EXIT_CODE, 75);
  * a FAILED job whose output_dir holds the trainer's PREEMPTED.json: under torchrun the
    agent exits 1 whatever its workers return, so the 75 never reaches the job level;
    the marker (written after the checkpoint, removed before each submission) says it;
  * a job killed by SIGKILL: exit 137 / signal 9, a local job whose processes vanished
    without an exit code, or torchrun reporting a worker "Signal 9 (SIGKILL)".
    Decision: SIGKILL is retried. It is not a preemption (no checkpoint at the kill),
    but it is what a lost node or allocation looks like from here (the kernel, a node
    agent or an operator's `kill -9`), and the last periodic checkpoint bounds the loss.
    Its risk is the host OOM killer, which also sends SIGKILL: such a job fails again
    and stops after STAGE_RETRIES attempts, each resuming from a checkpoint (bounded
    waste). Slurm's explicit OUT_OF_MEMORY state is not retried.
- `runtime_options`: what depends on env.toml and the state folder (result storage,
  cache locks, `force`) is applied when the flow starts, not at import.
"""

from __future__ import annotations

import json
import re
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

from prefect.cache_policies import CachePolicy

from nemotron_core.contract import PREEMPTED_FILE
from nemotron_core.execution import JobError

STAGE_RETRIES = 3
# torchrun's failure report for a worker that died of a signal ("traceback : Signal 9 (SIGKILL)
# received by PID 123", "exitcode  : -9 (pid: 123)").
_TORCHRUN_SIGKILL = re.compile(r"Signal 9 \(SIGKILL\) received by PID|exitcode\s*:\s*-9\b")


@dataclass
class StageCache(CachePolicy):
    stage: Any = None

    def compute_key(self, task_ctx, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs) -> Optional[str]:
        from tasks.stage import StageRequest, prepare_job

        request = inputs["request"]
        if isinstance(request, dict):
            request = StageRequest(**request)
        slots = {k: v for k, v in inputs.items() if k != "request"}
        return prepare_job(self.stage, request, slots).key


class ResumableJobError(JobError):
    """The job failed in a way a rerun with `resume: auto` fixes (the reason is in the message)."""


def preemption_marker(output_dir: Path) -> dict | None:
    """The trainer's PREEMPTED.json ({step, checkpoint, signal, exit_code}), if it wrote one."""
    try:
        return json.loads((Path(output_dir) / PREEMPTED_FILE).read_text())
    except (OSError, ValueError):
        return None


def resume_reason(status, output_dir: Path, log_tail: Iterable[str] = ()) -> str | None:
    """Why running the job again (resume: auto) can succeed, or None: see the module docstring."""
    from nemotron_core.execution import JobState

    if status is None or status.state in (JobState.CANCELLED, JobState.OUT_OF_MEMORY) or status.user_error:
        return None
    if status.resumable:
        return f"the job ended {status.describe()}"
    if status.state is not JobState.FAILED:
        return None
    marker = preemption_marker(output_dir)
    if marker is not None:
        return (f"the trainer stopped on {marker.get('signal', 'a signal')} at step {marker.get('step')} with a "
                f"checkpoint ({PREEMPTED_FILE}; the job-level exit code {status.exit_code} hides its exit 75)")
    if status.signal == signal.SIGKILL or status.exit_code == 128 + signal.SIGKILL:
        return "the job was killed by SIGKILL (a lost node or allocation looks like this)"
    if status.raw == "lost":
        return f"the job's processes vanished without an exit code ({status.reason})"
    if any(_TORCHRUN_SIGKILL.search(line) for line in log_tail):
        return "a worker was killed by SIGKILL (torchrun's failure report)"
    return None


def retryable(exc: BaseException | None) -> bool:
    if isinstance(exc, ResumableJobError):
        return True
    if not isinstance(exc, JobError) or exc.status is None:
        return False
    status = exc.status
    return status.resumable and status.state.value != "CANCELLED"


def should_retry(task, task_run, state) -> bool:
    """Prefect retry_condition_fn: look at the exception the task raised."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception as e:  # noqa: BLE001 - the result itself may be the failure
        exc = e
    return retryable(exc if isinstance(exc, BaseException) else None)


def stage_task_options(stage) -> dict[str, Any]:
    """Options every stage task is declared with (the tag carries its concurrency limit: tasks/stage_limits.py)."""
    from tasks.stage_limits import stage_tag

    return {
        "name": stage.name.replace("_", "-"),
        "tags": {stage_tag(stage.name)},
        "cache_policy": StageCache(stage=stage),
        "persist_result": True,
        "retries": STAGE_RETRIES,
        "retry_delay_seconds": 2,
        "retry_condition_fn": should_retry,
        "task_run_name": f"{stage.name.replace('_', '-')}" + "-{request.config}",
    }


def runtime_options(stage, *, force: bool, env=None) -> dict[str, Any]:
    """Per flow run: result storage from env.toml [cache].results, cache locks, force."""
    from tasks.locks import ProcessLockManager

    cache_section = env.section("cache") if env is not None else {}
    results = cache_section.get("results")
    storage = _storage(results) if results else None
    policy = StageCache(stage=stage).configure(
        lock_manager=ProcessLockManager.for_env(env),  # in the shared registry: see tasks/locks.py
        isolation_level="SERIALIZABLE",
    )
    options: dict[str, Any] = {"cache_policy": policy, "refresh_cache": force}
    if storage is not None:
        options["result_storage"] = storage
    return options


def _storage(uri: str):
    """A Prefect filesystem for a local path or an fsspec URI (s3://...)."""
    if "://" in uri and not uri.startswith("file://"):
        from prefect.filesystems import RemoteFileSystem

        return RemoteFileSystem(basepath=uri)
    from prefect.filesystems import LocalFileSystem

    return LocalFileSystem(basepath=uri.removeprefix("file://"))
