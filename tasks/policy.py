"""How stage tasks cache and retry.

- `StageCache`: the Prefect cache key of a stage task is its content key (see
  nemotron_core/content_key.py), so a rerun with nothing changed is a cache hit and a
  changed override reruns that stage and everything downstream (their pinned inputs change).
  Its locks (`ProcessLockManager`) die with the process holding them, so a flow process
  killed mid-stage does not leave the rerun waiting forever on its lock.
- `should_retry`: Prefect's retry condition over pipeline/retry.py's rules (what a rerun with
  `resume: auto` can fix: preemption, timeouts, node failures, SIGKILL; never config errors,
  OOM or a cancellation). STAGE_RETRIES attempts, each resuming from the last checkpoint.
- `runtime_options`: what depends on env.toml and the state folder (result storage,
  cache locks, `force`) is applied when the flow starts, not at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from prefect.cache_policies import CachePolicy

from pipeline.retry import STAGE_RETRIES, retryable
from pipeline.run import StageRequest, prepare_job
from tasks.locks import ProcessLockManager
from tasks.stage_limits import stage_tag


@dataclass
class StageCache(CachePolicy):
    stage: Any = None

    def compute_key(self, task_ctx, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs) -> Optional[str]:
        request = inputs["request"]
        if isinstance(request, dict):
            request = StageRequest(**request)
        slots = {k: v for k, v in inputs.items() if k != "request"}
        return prepare_job(self.stage, request, slots).key


def should_retry(task, task_run, state) -> bool:
    """Prefect retry_condition_fn: look at the exception the task raised."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception as e:  # noqa: BLE001 - the result itself may be the failure
        exc = e
    return retryable(exc if isinstance(exc, BaseException) else None)


def stage_task_options(stage) -> dict[str, Any]:
    """Options every stage task is declared with (the tag carries its concurrency limit: tasks/stage_limits.py)."""
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
        from prefect.filesystems import RemoteFileSystem  # lazy: prefect.filesystems is a heavy import

        return RemoteFileSystem(basepath=uri)
    from prefect.filesystems import LocalFileSystem  # lazy: prefect.filesystems is a heavy import

    return LocalFileSystem(basepath=uri.removeprefix("file://"))
