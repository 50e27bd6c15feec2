"""Executors: where a job runs, built from an env.toml profile and the recipe's runspec.

    executor = create_executor(profile, spec)          # nemo-run LocalExecutor, our SlurmJobExecutor,
                                                       # or RayClusterExecutor (a local Ray head)
    job = submit(executor, plan, job_dir=...)          # jobs.py
    job.wait()

Decisions (see also jobs.py):
- Local: nemo-run's LocalExecutor. Slurm: our SlurmJobExecutor (slurm_executor.py) with
  nemo-run's SlurmExecutor field names (account, partition, nodes, ntasks_per_node,
  gpus_per_node, time, container image, mounts, a local or SSH tunnel, the packager's name,
  the torchrun launcher), so a Slurm dry-run renders the sbatch text without importing
  nemo-run (~1.5 s); submit renders the same text. What nemo-run has no field for (the
  profile name, the runspec's launch kind, the interpreter inside the job, secret names,
  the Ray address) rides along in `executor.nemotron` (a `JobOptions`); `job_options(executor)`
  reads it and falls back to defaults for an executor built by hand.
- Resources: runspec `[resources]` < profile (`nodes`, `gpus_per_node`) < the caller's
  `nodes=`/`gpus_per_node=` (the CLI). Unlike the seed, the runspec is honoured on Slurm.
  Tasks per node: profile `ntasks_per_node`, else the GPUs per node, else
  `nproc_per_node` (CPU clusters). With the torchrun launcher nemo-run turns that into
  one task per node running `torchrun --nproc-per-node N` (SlurmJobExecutor.sbatch_fields).
- Environment: `build_env_vars` returns only non-secret variables (they are written in
  plain text into the sbatch script). Secrets go through secrets_file.py.
- A container image comes from the profile (`container_image`/`container`), else the
  runspec `image`; `container_image = ""` in a profile means "no container" (a cluster
  without pyxis, like the test cluster). Without a container the job uses this
  interpreter (`python` key to change it) and finds `torchrun` next to it.
- nemo-run is imported inside functions only (~1.5 s; compat.import_nemo_run keeps torch out),
  with NEMORUN_HOME pinned under the state folder first; a Slurm profile needs it only to package
  code for a submit or to render nemo-run's Ray container template.

Profile keys read here (slurm): account, partition, run_partition, batch_partition,
nodes, gpus_per_node, ntasks_per_node, nproc_per_node, cpus_per_task, mem, time, qos,
gres, constraint, exclusive, container_image|container, mounts, tunnel (local|ssh),
host, user, port, identity, known_hosts, connect_timeout (ssh.py), remote_job_dir (default
~/.nemotron/jobs on the login node), slurm_conf (LocalTunnel; default $SLURM_CONF),
packager, code_excludes, python, startup_commands, env|env_vars, secrets, retries,
additional_parameters, squash (use the image's enroot squash file, see squash.py), squash_dir,
rdzv_port (torchrun's c10d rendezvous port on the first node; default 29500), ray_port (GCS port
of a container-free multi-node Ray job's head; default derived from the job id, see ray_slurm.py).
(local) nproc_per_node. (ray) address, entrypoint_num_cpus. (docker) see docker_profile.py.
"""

from __future__ import annotations

import copy
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Iterable

from nemotron_core.compat import nemo_run
from nemotron_core.errors import ProfileError
from nemotron_core.execution import ssh as ssh_mod
from nemotron_core.execution.backends.slurm_shell import remote_job_dir as login_job_dir
from nemotron_core.execution.cloud_profile import cloud_executor
from nemotron_core.execution.docker_profile import docker_executor
from nemotron_core.execution.options import (Executor, ExecutorFactory, JobOptions, JobPaths, RayClusterExecutor,
                                             attach, job_options, job_paths)
from nemotron_core.execution.profile_keys import get_startup_commands, image as profile_image, int_key
from nemotron_core.execution.profile_keys import mounts as profile_mounts, packager_choice, remote_cluster
from nemotron_core.execution.secrets_file import secret_names
from nemotron_core.execution.slurm_executor import SlurmJobExecutor, Tunnel
from nemotron_core.execution.shellsafe import check_env, check_value
from nemotron_core.execution.squash import plan_squash
from nemotron_core.launch import Plan, resources
from nemotron_core.paths import state_dir, state_env
from nemotron_core.profiles import Profile
from nemotron_core.runspec import Runspec
from nemotron_core.secrets import is_secret_name

# Names other modules import from here (the options moved to options.py, profile readers to profile_keys.py).
__all__ = ["FACTORIES", "Executor", "ExecutorFactory", "JobOptions", "JobPaths", "RayClusterExecutor", "SBATCH_KEYS",
           "build_env_vars",
           "create_executor", "get_startup_commands", "job_options", "job_paths", "nemo_run", "with_plan_env"]


# --------------------------------------------------------------------------- profile helpers


def build_env_vars(job_config: Any = None, profile: Profile | None = None) -> dict[str, str]:
    """Non-secret environment for the job.

    - the state-folder variables (caches and homes) when the job runs on this host's
      filesystem; `NEMO_RUN_DIR`/`HF_HOME` under `remote_job_dir` for an SSH cluster;
    - `WANDB_ENTITY`/`WANDB_PROJECT`/`WANDB_MODE` from the job config's `run.wandb` or
      the profile's `[wandb]`;
    - the profile's `env` / `env_vars` tables, last (they win).
    Secret-named variables are never returned, whatever their source: they go to
    secrets.env (secrets_file.py).
    """
    env: dict[str, str] = {}
    if profile is None or not remote_cluster(profile):
        env.update(state_env())
    elif profile.executor == "slurm":
        from nemotron_core.execution.backends.slurm_shell import remote_job_dir  # may ask the login node's $HOME

        root = remote_job_dir(profile)
        env["NEMO_RUN_DIR"] = root
        env["HF_HOME"] = f"{root}/hf"
    wandb: dict[str, Any] = {}
    if profile is not None and isinstance(profile.get("wandb"), dict):
        wandb.update(profile.get("wandb"))
    try:
        run_wandb = job_config.run.wandb if job_config is not None and "run" in job_config else None
        if run_wandb is not None:
            from omegaconf import OmegaConf  # lazy: omegaconf is a heavy import

            table = OmegaConf.to_container(run_wandb, resolve=True)
            if isinstance(table, dict):
                wandb.update({str(k): v for k, v in table.items()})
    except Exception:  # a job config without run.wandb
        pass
    for key in ("entity", "project", "mode"):
        if wandb.get(key):
            env[f"WANDB_{key.upper()}"] = str(wandb[key])
    if profile is not None:
        for table in ("env", "env_vars"):
            env.update({str(k): str(v) for k, v in (profile.get(table) or {}).items()})
    return {k: v for k, v in env.items() if not is_secret_name(k)}


# --------------------------------------------------------------------------- create_executor


def create_executor(profile: Profile | None, spec: Runspec, *, nodes: int | None = None,
                    gpus_per_node: int | None = None, env_vars: dict[str, str] | None = None, packager: Any = None,
                    attached: bool = True, mounts: list[str] | tuple[str, ...] = (),
                    job_config: Any = None) -> Executor:
    """The executor for `profile` running recipe `spec`.

    `nodes`/`gpus_per_node` come from the CLI and override the profile, which overrides
    the runspec. `env_vars` defaults to `build_env_vars(job_config, profile)`;
    `packager` defaults to packaging.choose_packager(profile, spec).
    """
    kind = profile.executor if profile is not None else "local"
    env = dict(build_env_vars(job_config, profile) if env_vars is None else env_vars)
    env = check_env(env, profile=profile.name if profile is not None else None)  # names and values: data
    leaked = [k for k in env if is_secret_name(k)]
    if leaked:
        raise ProfileError(f"env var {leaked[0]} is a secret: it must not go into the job's plain environment; "
                           f"export it in your shell (it reaches the job through secrets.env)")
    launch = spec.run.launch
    base: dict[str, Any] = dict(profile=profile.name if profile is not None else "local", launch=launch,
                secret_names=tuple(secret_names(profile)), startup=tuple(get_startup_commands(profile)))

    if kind == "local":
        run = nemo_run()
        nproc = int_key(profile, "nproc_per_node", 1) if profile is not None else 1
        ex = run.LocalExecutor(ntasks_per_node=nproc or 1, launcher="torchrun" if launch == "torchrun" else None,
                               env_vars=env)
        return attach(ex, JobOptions(**base))

    if profile is None:  # create_executor(None, ...) is the local kind, returned above
        raise ProfileError(f"executor = '{kind}' needs a profile")

    if kind == "ray":
        address = profile.get("address") or os.environ.get("RAY_ADDRESS")
        if not address:
            raise ProfileError(f"profile '{profile.name}': executor = 'ray' needs address = \"http://127.0.0.1:8265\" "
                               f"(the Ray dashboard of a head started with `ray start --head`)")
        address = str(address) if "://" in str(address) else f"http://{address}"
        return RayClusterExecutor(address=address, env_vars=env, entrypoint_num_cpus=profile.get("entrypoint_num_cpus"),
                                  nemotron=JobOptions(**base))

    factory = FACTORIES.get(kind)
    if factory is not None:
        return factory(profile, spec, env=env, base=base, nodes=nodes, gpus_per_node=gpus_per_node, mounts=mounts,
                       job_config=job_config)

    if kind != "slurm":
        raise ProfileError(f"profile '{profile.name}': executor = '{kind}' is not supported by the execution layer "
                           f"yet; use local, slurm, ray or docker")

    return _slurm_executor(profile, spec, env=env, base=base, nodes=nodes, gpus_per_node=gpus_per_node,
                           packager=packager, attached=attached, mounts=mounts, job_config=job_config)


def _slurm_executor(profile: Profile, spec: Runspec, *, env: dict[str, str], base: dict[str, Any], nodes: int | None,
                    gpus_per_node: int | None, packager: Any, attached: bool, mounts: Iterable[str],
                    job_config: Any) -> SlurmJobExecutor:
    """Our SlurmJobExecutor (nemo-run's field names, without importing nemo-run: see slurm_executor.py)."""
    n, g = resources(spec, profile, nodes, gpus_per_node)
    ntasks = int_key(profile, "ntasks_per_node", None) or g or int_key(profile, "nproc_per_node", 1) or 1
    image = profile_image(profile, spec)
    if image and profile.get("squash") and not image.endswith(".sqsh"):
        image = plan_squash(profile, image).path  # made by `nemotron kit squash IMAGE`; submit checks it exists
    remote = remote_cluster(profile)
    remote_job_dir = profile.get("remote_job_dir")
    ssh = None
    if remote:
        ssh = ssh_mod.ssh_cluster(profile)  # refuses a profile without host
        remote_job_dir = login_job_dir(profile)  # default ~/.nemotron/jobs on the login node
        tunnel = Tunnel("ssh", str(remote_job_dir), host=ssh["host"], user=ssh["user"], port=ssh["port"],
                        identity=ssh["identity"])
    else:
        tunnel = Tunnel("local", str(remote_job_dir or state_dir() / "jobs"))
    partition = profile.get("run_partition" if attached else "batch_partition") or profile.get("partition")
    python = profile.get("python") or ("python" if image else sys.executable)
    setup = []
    if not image and os.path.isabs(python):  # torchrun and console scripts live next to the interpreter
        setup.append(f'export PATH={shlex.quote(str(Path(python).parent))}:"$PATH"')
    setup.extend(get_startup_commands(profile))
    extra = profile.get("additional_parameters") or {}
    if not isinstance(extra, dict):
        raise ProfileError(f"profile '{profile.name}': additional_parameters = {extra!r} must be a table of sbatch "
                           f"options")
    kwargs: dict[str, Any] = dict(
        account=profile.get("account"), partition=partition, nodes=n, ntasks_per_node=ntasks,
        gpus_per_node=g or None, time=str(profile.get("time", "04:00:00")),
        cpus_per_task=int_key(profile, "cpus_per_task", None), mem=profile.get("mem"), qos=profile.get("qos"),
        gres=profile.get("gres"), constraint=profile.get("constraint"), exclusive=profile.get("exclusive") or None,
        container_image=image, container_mounts=profile_mounts(profile, image, mounts, job_config),
    )
    for key in SBATCH_KEYS:  # one #SBATCH line each: a newline would start a shell line
        if kwargs.get(key) is not None:
            check_value(kwargs[key], profile=profile.name, key=key)
    slurm_conf = None if remote else (profile.get("slurm_conf") or os.environ.get("SLURM_CONF"))
    options = JobOptions(**base, python=python, remote_job_dir=str(remote_job_dir) if remote else None,
                         slurm_conf=str(slurm_conf) if slurm_conf else None,
                         ray_port=int_key(profile, "ray_port", None), ssh=ssh)
    excludes = profile.get("code_excludes") or []
    return SlurmJobExecutor(
        **kwargs, tunnel=tunnel, env_vars=env, setup_lines="\n".join(setup) or None,
        retries=int_key(profile, "retries", 0) or 0,
        # --requeue in the script too (submit passes it to sbatch): an admin reading the
        # dry-run text sees that preemption puts the job back in the queue.
        additional_parameters={"requeue": True, **extra},
        launcher="torchrun" if spec.run.launch == "torchrun" else None,
        rdzv_port=int_key(profile, "rdzv_port", None) or 29500,
        packager_choice=packager_choice(profile, spec), code_excludes=tuple(str(e) for e in excludes),
        script_path=str(spec.script_path), nemotron=options, _packager=packager)


def _cloud_executor(profile: Profile, spec: Runspec, *, env: dict[str, str], base: dict[str, Any],
                    nodes: int | None, gpus_per_node: int | None, mounts: Iterable[str], job_config: Any) -> Executor:
    """dgxcloud / lepton / skypilot: rendered by --dry-run (cloud_profile.py reads its own mounts keys)."""
    return cloud_executor(profile, spec, env=env, base=base, nodes=nodes, gpus_per_node=gpus_per_node)


# Profile kinds whose executor is built outside this module (local, ray and slurm are built above).
FACTORIES: dict[str, ExecutorFactory] = {
    "docker": docker_executor,
    "dgxcloud": _cloud_executor,
    "lepton": _cloud_executor,
    "skypilot": _cloud_executor,
}

SBATCH_KEYS = ("account", "partition", "time", "mem", "qos", "gres", "constraint", "container_image")


def with_plan_env(executor: Executor, plan: Plan) -> Executor:
    """A shallow copy of the executor whose env also holds the plan's (runspec + profile `env`)."""
    leaked = [k for k in plan.env if is_secret_name(k)]
    if leaked:
        raise ProfileError(f"env var {leaked[0]} (runspec/profile `env`) is a secret: it must not be written into "
                            f"the job's plain environment; export it in your shell instead (it reaches the job "
                            f"through secrets.env)")
    if not plan.env:
        return executor
    executor = copy.copy(executor)
    executor.env_vars = {**(executor.env_vars or {}), **check_env(plan.env, profile=job_options(executor).profile)}
    return executor
