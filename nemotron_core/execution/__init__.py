"""The execution layer: where and how a recipe job runs, and the handle to it afterwards.

A stage's Prefect task reads top to bottom:

    executor = create_executor(profile, spec)            # nemo-run LocalExecutor, our SlurmJobExecutor,
                                                         # or RayClusterExecutor (local Ray head)
    job = submit(executor, plan, job_dir=job_dir,        # JobRef persisted in the job dir;
                 content_key=key, flow_run_id=run_id)    # re-attaches instead of resubmitting
    status = job.wait(on_log=logger.info, check=True)    # real state + exit code, logs streamed

Modules (one job each):
    local.py          execute_local: the attached `--run local` path (CLI waits on its child)
    options.py        JobOptions, JobPaths, job_options, job_paths (a leaf: imports nothing from execution)
    profile_keys.py   profile readers shared by the executor builders (startup_commands, image, mounts)
    executors.py      create_executor, build_env_vars, with_plan_env, RayClusterExecutor
    docker_profile.py the docker profile -> nemo-run DockerExecutor
    slurm_executor.py SlurmJobExecutor: a Slurm profile's fields (nemo-run's names), no nemo-run import
    jobs.py           submit, find_job, Job (status/wait/cancel/requeue/logs), wait_all
    states.py         JobState, JobStatus, JobError
    refs.py           JobRef persistence and the by-key / by-flow-run indexes
    secrets_file.py   the 0600 secrets.env, scrubbed environments
    logs.py           following log files / texts line by line
    packaging.py      SelfContainedPackager, CodePackager, choose_packager (imports nemo-run)
    squash.py         ensure_squashed_image (enroot import on the Slurm profile)
    seed_forms.py     the seed's (nemo_runspec.execution) call forms of create_executor, execute_local,
                      build_env_vars, get_startup_commands, ensure_squashed_image; execute_remote
    sweeper.py        list and cancel the jobs of a (dead) flow run
    tracking.py       track_slurm_jobs: wait on thousands of Slurm jobs/array tasks, one squeue per poll
    ssh.py            the login node's SSH connection (host keys checked, one-line errors)
    backends/         the Backend protocol and the registry (__init__.py); local (process group),
                      docker, ray (job API), cloud (dgxcloud/lepton), slurm (slurm.py backend;
                      slurm_tags, slurm_shell, slurm_render + sbatch_script + ray_slurm, slurm_poll)

Importing this package is cheap: nemo-run, Ray and torch load only when a function needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

from nemotron_core.execution.executors import RayClusterExecutor
from nemotron_core.execution.options import JobOptions, JobPaths, job_options, job_paths
from nemotron_core.execution.jobs import Job, find_job, submit, wait_all
from nemotron_core.execution.local import job_environment
# The seed's names, taking its arguments as well as ours (seed_forms.py calls the modules above).
from nemotron_core.execution.seed_forms import (build_env_vars, clone_git_repos_via_tunnel, create_executor,
                                                ensure_squashed_image, execute_local, execute_remote,
                                                get_startup_commands)
from nemotron_core.execution.refs import JobRef
from nemotron_core.execution.states import JobError, JobState, JobStatus

_LAZY = {
    "SelfContainedPackager": "nemotron_core.execution.packaging",
    "CodePackager": "nemotron_core.execution.packaging",
    "choose_packager": "nemotron_core.execution.packaging",
    "render_job_script": "nemotron_core.execution.backends.slurm_render",
    "cancel_flow_run": "nemotron_core.execution.sweeper",
    "orphans": "nemotron_core.execution.sweeper",
}

__all__ = [
    "Job", "JobError", "JobOptions", "JobPaths", "JobRef", "JobState", "JobStatus", "RayClusterExecutor",
    "build_env_vars", "clone_git_repos_via_tunnel", "create_executor", "ensure_squashed_image", "execute_local",
    "execute_remote", "find_job", "get_startup_commands", "job_environment",
    "job_options", "job_paths", "submit", "wait_all", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nemotron_core.execution' has no attribute {name!r}")
