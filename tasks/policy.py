"""How stage tasks cache and retry.

- `StageCache`: the Prefect cache key of a stage task is its content key (see
  nemotron_core/content_key.py), so a rerun with nothing changed is a cache hit and a
  changed override reruns that stage and everything downstream (their pinned inputs change).
- `should_retry`: retry only what a retry can fix — preemption, time limit, node failure
  and the trainers' "resume me" exit code — and never config or data errors. The retry
  resubmits into the same output_dir, where the trainer resumes from its last checkpoint.
- `runtime_options`: what depends on env.toml and the state folder (result storage,
  cache locks, `force`) is applied when the flow starts, not at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from prefect.cache_policies import CachePolicy

from nemotron_core.contract import RESUME_EXIT_CODE

RETRYABLE_STATES = ("PREEMPTED", "TIMEOUT", "NODE_FAIL")
STAGE_RETRIES = 3


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


def retryable(exc: BaseException | None) -> bool:
    from nemotron_core.execution import JobError

    if not isinstance(exc, JobError) or exc.status is None:
        return False
    status = exc.status
    return status.state.value in RETRYABLE_STATES or status.exit_code == RESUME_EXIT_CODE


def should_retry(task, task_run, state) -> bool:
    """Prefect retry_condition_fn: look at the exception the task raised."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception as e:  # noqa: BLE001 - the result itself may be the failure
        exc = e
    return retryable(exc if isinstance(exc, BaseException) else None)


def stage_task_options(stage) -> dict[str, Any]:
    """Options every stage task is declared with."""
    return {
        "name": stage.name.replace("_", "-"),
        "cache_policy": StageCache(stage=stage),
        "persist_result": True,
        "retries": STAGE_RETRIES,
        "retry_delay_seconds": 2,
        "retry_condition_fn": should_retry,
        "task_run_name": f"{stage.name.replace('_', '-')}" + "-{request.config}",
    }


def runtime_options(stage, *, force: bool, env=None) -> dict[str, Any]:
    """Per flow run: result storage from env.toml [cache].results, cache locks, force."""
    from prefect.locking.filesystem import FileSystemLockManager

    from nemotron_core.paths import state_dir

    cache_section = env.section("cache") if env is not None else {}
    results = cache_section.get("results")
    storage = _storage(results) if results else None
    policy = StageCache(stage=stage).configure(
        lock_manager=FileSystemLockManager(lock_files_directory=Path(state_dir()) / "prefect" / "locks"),
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
