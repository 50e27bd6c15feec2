"""What a job needs beyond nemo-run's executor fields, and where its job dir lives.

A leaf: it imports nothing from `nemotron_core.execution`, so executors, packaging, the
backends and the Slurm modules can all read job options and paths without importing each other.

    opts = job_options(executor)          # JobOptions riding on `executor.nemotron` (or defaults)
    paths = job_paths(executor, job_dir)  # the job dir here, on the cluster, inside the job
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Protocol, TypeVar

from nemotron_core.paths import PACKAGE_ROOT

if TYPE_CHECKING:
    from nemotron_core.profiles import Profile
    from nemotron_core.runspec import Runspec


class Executor(Protocol):
    """Where a job runs: nemo-run's Local/Slurm/Docker executors (an untyped package, so these are
    read as Any by the type checker) or our RayClusterExecutor. All carry the job's plain env."""

    env_vars: dict[str, str]


# nemo-run's executors: untyped dataclasses (Any to the type checker) whose fields the backends
# read (SlurmExecutor: tunnel, container_image, packager, setup_lines...; DockerExecutor: num_gpus,
# volumes, ulimits...); named so signatures say which executor they take.
SlurmExecutor = Any  # our slurm_executor.SlurmJobExecutor (same field names as nemo-run's)
DockerExecutor = Any


class ExecutorFactory(Protocol):
    """Builds the executor of one profile kind (executors.FACTORIES: docker, dgxcloud, lepton, skypilot).

    create_executor has already checked the plain env (`env`: no secret, values are data) and
    gathered `base`, the JobOptions fields every kind shares (profile, launch, secret_names, startup);
    the factory reads its own profile keys, refuses bad ones in one line, and attaches JobOptions."""

    def __call__(self, profile: Profile, spec: Runspec, *, env: dict[str, str], base: dict[str, Any],
                 nodes: int | None, gpus_per_node: int | None, mounts: Iterable[str],
                 job_config: Any) -> Executor: ...


@dataclass(frozen=True)
class JobOptions:
    """What a job needs beyond nemo-run's executor fields."""

    profile: str = "local"
    launch: str = "direct"  # runspec run.launch: torchrun | ray | direct
    python: str = sys.executable  # the interpreter inside the job
    secret_names: tuple[str, ...] = ()
    remote_job_dir: str | None = None  # job dirs on the cluster (SSH tunnel); None = this host's
    code_root: str = str(PACKAGE_ROOT)  # what the packager ships; paths under it are remapped
    startup: tuple[str, ...] = ()  # profile startup_commands (local/Ray wrapper; Slurm: setup_lines)
    slurm_conf: str | None = None  # SLURM_CONF for the Slurm clients on this host (LocalTunnel)
    ray_port: int | None = None  # Slurm, Ray on several nodes without containers: the head's GCS port
    docker_host: str | None = None  # docker: the daemon (DOCKER_HOST), kept in the JobRef for re-attach
    ssh: dict[str, Any] | None = None  # SSH tunnel: how to reach the login node again (ssh.ssh_cluster)


@dataclass
class RayClusterExecutor:
    """A running Ray cluster reached through its job-submission (dashboard) address."""

    address: str
    env_vars: dict[str, str] = field(default_factory=dict)
    entrypoint_num_cpus: float | None = None
    nemotron: JobOptions = field(default_factory=JobOptions)


def job_options(executor: object) -> JobOptions:
    """The JobOptions riding on `executor` (defaults for an executor built by hand)."""
    return getattr(executor, "nemotron", None) or JobOptions()


E = TypeVar("E")


def attach(executor: E, options: JobOptions) -> E:
    """Hang `options` on a nemo-run executor (frozen dataclasses too) as `executor.nemotron`."""
    object.__setattr__(executor, "nemotron", options)
    return executor


@dataclass(frozen=True)
class JobPaths:
    local: Path  # the job dir on this machine (job.yaml, jobref.json)
    host: str  # the job dir on the cluster's filesystem (== local for a LocalTunnel)
    in_job: str  # the job dir as the job sees it (/nemo_run inside a container)

    @property
    def code(self) -> str:
        return f"{self.in_job}/code"

    @property
    def host_code(self) -> str:
        return f"{self.host}/code"


def job_paths(executor: object, job_dir: str | Path) -> JobPaths:
    """Where `job_dir` lives for the executor: here, on the cluster, inside the job."""
    job_dir = Path(job_dir).resolve()
    opts = job_options(executor)
    host = str(job_dir)
    if opts.remote_job_dir:
        host = f"{opts.remote_job_dir.rstrip('/')}/{job_dir.parent.name}/{job_dir.name}"
    # Slurm+pyxis mounts the job dir at /nemo_run; Docker jobs see it at its own path (backends/docker.py).
    container = getattr(executor, "container_image", None) and type(executor).__name__ != "DockerExecutor"
    in_job = "/nemo_run" if container else host
    return JobPaths(local=job_dir, host=host, in_job=in_job)
