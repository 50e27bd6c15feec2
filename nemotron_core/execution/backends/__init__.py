"""Job backends: local process groups, Slurm, Ray, Docker (and the cloud ones). Each reads its own real state.

What a backend is (`Backend`), the optional abilities some have (`Retaggable`, `Requeueable`,
`RemoteFiles`, `StreamedLogs`: checked with isinstance, never by probing names), and the registry
that maps a JobRef's `backend` string and an executor's class to one. Adding a backend is one
module with a class that satisfies `Backend`, plus one line in each table below.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable

from nemotron_core.errors import NemotronError
from nemotron_core.execution.refs import JobRef
from nemotron_core.execution.states import JobStatus
from nemotron_core.launch import Plan

# JobRef.backend -> "module:Class" (imported on first use: Ray's client or Docker's are not loaded for Slurm).
BACKENDS: dict[str, str] = {
    "local": "nemotron_core.execution.backends.local:LocalBackend",
    "slurm": "nemotron_core.execution.backends.slurm:SlurmBackend",
    "ray": "nemotron_core.execution.backends.ray:RayBackend",
    "docker": "nemotron_core.execution.backends.docker:DockerBackend",
    "dgxcloud": "nemotron_core.execution.backends.cloud:DGXCloudBackend",
    "lepton": "nemotron_core.execution.backends.cloud:LeptonBackend",
    "skypilot": "nemotron_core.execution.backends.skypilot:SkyPilotBackend",
}

# The executor's class name (nemo-run's, or ours) -> the backend that runs it.
EXECUTOR_BACKENDS: dict[str, str] = {
    "LocalExecutor": "local",
    "SlurmJobExecutor": "slurm",
    "RayClusterExecutor": "ray",
    "DockerExecutor": "docker",
    "DGXCloudExecutor": "dgxcloud",
    "LeptonExecutor": "lepton",
    "SkypilotExecutor": "skypilot",
}


class Backend(Protocol):
    """What every backend does for a job, given its JobRef (the ref is the whole handle: a later
    process rebuilds the backend from `ref.backend` and reaches the same job)."""

    def submit(self, executor: Any, plan: Plan, ref: JobRef, secrets_path: Path | None) -> JobRef: ...

    def recover_id(self, ref: JobRef) -> str | None: ...

    def status(self, ref: JobRef, *, max_age: float = ...) -> JobStatus: ...

    def cancel(self, ref: JobRef) -> None: ...

    def gone_from_queue(self, ref: JobRef) -> bool: ...

    def log_files(self, ref: JobRef, *, app_only: bool = ...) -> list[str]: ...


@runtime_checkable
class Retaggable(Protocol):
    """The job carries its flow run id on the cluster (Slurm's --comment): rewritten on adoption."""

    def retag(self, ref: JobRef) -> None: ...


@runtime_checkable
class Requeueable(Protocol):
    """The job can be put back in the queue (Slurm)."""

    def requeue(self, ref: JobRef, *, start_now: bool = True) -> None: ...


@runtime_checkable
class RemoteFiles(Protocol):
    """Log files live on another machine and are read through the backend (Slurm over SSH)."""

    def read(self, ref: JobRef, path: str, offset: int) -> bytes: ...


@runtime_checkable
class StreamedLogs(Protocol):
    """Logs come from the backend's API, not files (Ray's job API)."""

    def logs(self, ref: JobRef) -> str: ...

    def follower(self, ref: JobRef) -> Any: ...


_LOADED: dict[str, Backend] = {}


def backend(kind: str) -> Backend:
    """The backend object for a JobRef's `backend` string (one per process)."""
    if kind not in _LOADED:
        target = BACKENDS.get(kind)
        if target is None:
            raise NemotronError(f"unknown job backend {kind!r}; expected one of {', '.join(BACKENDS)}")
        module, _, name = target.partition(":")
        _LOADED[kind] = cast(Backend, getattr(importlib.import_module(module), name)())
    return _LOADED[kind]


def backend_kind(executor: object) -> str:
    """Which backend runs `executor` (by its class: nemo-run's executors carry no kind of their own)."""
    name = type(executor).__name__
    kind = EXECUTOR_BACKENDS.get(name)
    if kind is None:
        raise NemotronError(f"executor {name} is not supported by submit(); use create_executor() with a "
                            f"{', '.join(BACKENDS)} profile")
    return kind
