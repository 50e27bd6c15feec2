"""The execution names of the seed (NVIDIA's `nemo_runspec.execution`), taking its arguments too.

A seed recipe command builds and runs its job with

    env_vars = build_env_vars(job_config, env)
    executor = create_executor(env=env, env_vars=env_vars, packager=None, attached=cfg.attached,
                               default_image=SPEC.image, script_resources=SPEC.resources)
    execute_local(SCRIPT_PATH, train_path, cfg.passthrough, torchrun=False,
                  env_vars=env_vars, startup_commands=get_startup_commands(env))

Each name here takes that form and this project's own (`create_executor(profile, spec, ...)`,
`execute_local(plan, job_dir)`), told apart by the arguments, and calls the one implementation
(executors.py, local.py, profile_keys.py, squash.py). Differences from the seed, on purpose:
- `env` is the `Profile` that `parse_env` returns (create_executor and execute_remote refuse
  anything else in one line; build_env_vars and get_startup_commands also read a `run.env` mapping);
- `build_env_vars` never returns a secret (HF_TOKEN, WANDB_API_KEY reach the job through the
  0600 secrets.env, not the plain environment);
- the seed's `execute_local` ends the command with typer.Exit(code); here it returns on success
  and raises SystemExit(code) when the script fails (the toolkit does not import typer);
- `create_executor(env=..., packager=None)` ships no code, as nemo-run does with no packager;
  pass a packager (`SelfContainedPackager`, `CodePackager`) or `spec=SPEC` (this project's
  choice from the profile and runspec) to ship it;
- `clone_git_repos_via_tunnel` takes the job config (its run.repos) instead of a global registry,
  and execute_local / execute_remote call it for the job.yaml saved beside train.yaml, as the
  seed's executor creation does;
- the seed's remote step is nemo-run's Experiment; here it is `execute_remote` (below), which
  renders the sbatch text under `dry_run` and otherwise submits through `submit`, so jobs are
  found, followed and cancelled like every other job of this project.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

from nemotron_core.config.git_mounts import Runner, clone_repo, run_here
from nemotron_core.errors import NemotronError, ProfileError
from nemotron_core.execution import executors as _executors, squash as _squash
from nemotron_core.execution import local as _local
from nemotron_core.execution import profile_keys as _keys
from nemotron_core.execution.backends.cloud_render import render_request
from nemotron_core.execution.backends.slurm import render_job_script
from nemotron_core.execution.backends.slurm_shell import SlurmShell
from nemotron_core.execution.jobs import submit
from nemotron_core.execution.shellsafe import check_env
from nemotron_core.launch import Plan, plan_job
from nemotron_core.profiles import Profile
from nemotron_core.runspec import Runspec, RunspecConfig, RunspecResources, RunspecRun, parse


def _profile(env: Any, what: str) -> Profile | None:
    if env is None or isinstance(env, Profile):
        return env
    raise ProfileError(f"{what}: env must be the profile parse_env() returned (or None for a local run), "
                       f"got {type(env).__name__}")


def _mapping_profile(env: Any) -> Profile | None:
    """A `run.env`-style mapping read as a profile named after it (for the readers that take one)."""
    if env is None or isinstance(env, Profile):
        return env
    if isinstance(env, Mapping) or hasattr(env, "items"):
        return Profile(name="run.env", data={str(k): v for k, v in env.items()}, chain=("run.env",), source=None)
    raise ProfileError(f"env must be a profile or a mapping, got {type(env).__name__}")


# --------------------------------------------------------------------------- readers


def get_startup_commands(env: Any) -> list[str]:
    """The `startup_commands` of a profile, or of a mapping such as a config's `run.env`."""
    return _keys.get_startup_commands(_mapping_profile(env))


def build_env_vars(job_config: Any = None, env: Any = None) -> dict[str, str]:
    """The job's non-secret environment (executors.build_env_vars); `env` a profile or a mapping."""
    return _executors.build_env_vars(job_config, _mapping_profile(env))


# --------------------------------------------------------------------------- create_executor


def create_executor(*args: Any, **kwargs: Any) -> Any:
    """`create_executor(env=..., env_vars=..., packager=..., attached=..., default_image=...,
    script_resources=...)` (seed) or `create_executor(profile, spec, ...)` (executors.py)."""
    seed = "env" in kwargs or (len(args) >= 2 and not isinstance(args[1], Runspec)) or (
        len(args) < 2 and "spec" not in kwargs)
    if not seed:
        return _executors.create_executor(*args, **kwargs)
    return _seed_create_executor(*args, **kwargs)


def _stand_in_spec(default_image: str | None, script_resources: Any) -> Runspec:
    """The seed's create_executor knows no runspec: its image and resources make one (torchrun, as the seed)."""
    resources = script_resources if isinstance(script_resources, RunspecResources) else RunspecResources()
    return Runspec(name="recipe", script_path=Path("recipe.py"), config=RunspecConfig(dir=Path(".")),
                   run=RunspecRun(launch="torchrun"), resources=resources, image=default_image)


def _seed_create_executor(env: Any = None, env_vars: dict[str, str] | None = None, packager: Any = None, *,
                          attached: bool = False, force_squash: bool = False, default_image: str | None = None,
                          script_resources: Any = None, spec: Runspec | None = None) -> Any:
    profile = _profile(env, "create_executor")
    if spec is None and packager is None and profile is not None and profile.executor != "local":
        from nemotron_core.execution.packaging import make_packager  # lazy: pulls in nemo_run, omegaconf

        # nemo-run's meaning of packager=None: ship nothing, the job runs the code where it lies (a
        # shared filesystem). spec=SPEC instead lets the profile and runspec choose (packaging.py).
        packager = make_packager("none", script_path="")
    spec = spec or _stand_in_spec(default_image, script_resources)
    if default_image and not spec.image:
        spec = dataclasses.replace(spec, image=default_image)
    if force_squash and profile is not None and profile.executor == "slurm":
        image = _keys.image(profile, spec)
        if image and not image.endswith(".sqsh"):
            ensure_squashed_image(profile, image, force=True)
    return _executors.create_executor(profile, spec, env_vars=env_vars, packager=packager, attached=attached)


# --------------------------------------------------------------------------- running


def execute_local(*args: Any, **kwargs: Any) -> Any:
    """`execute_local(script_path, train_path, passthrough, torchrun=..., env_vars=..., startup_commands=...)`
    (seed) or `execute_local(plan, job_dir)` (local.py, returns the exit code)."""
    first = args[0] if args else kwargs.get("plan")
    if isinstance(first, Plan):
        return _local.execute_local(*args, **kwargs)
    return _seed_execute_local(*args, **kwargs)


def _seed_execute_local(script_path: str | Path, train_path: str | Path, passthrough: Sequence[str] = (), *,
                        torchrun: bool = True, env_vars: dict[str, str] | None = None,
                        startup_commands: Sequence[str] | None = None) -> None:
    spec = parse(script_path)
    launch = "torchrun" if torchrun else ("direct" if spec.run.launch == "torchrun" else spec.run.launch)
    if launch != spec.run.launch:  # the seed's flag decides the launcher, as there
        spec = dataclasses.replace(spec, run=dataclasses.replace(spec.run, launch=launch))
    plan = plan_job(spec, None, Path(train_path), passthrough=list(passthrough))
    env = {**plan.env, **check_env(dict(env_vars or {}), profile=None)}
    command = list(plan.command)
    if startup_commands:  # run first in the job's shell; a failing line stops the job (set -e)
        lines = "\n".join(["set -e", *startup_commands, 'exec "$@"'])
        command = ["bash", "-c", lines, "startup", *command]
    plan = dataclasses.replace(plan, command=command, env=env)
    _clone_saved_repos(Path(train_path))
    code = _local.execute_local(plan, Path(train_path).parent)
    if code != 0:
        raise SystemExit(code)


def _clone_saved_repos(train_path: Path, executor: Any = None) -> None:
    """Clone the `${auto_mount:git+...}` checkouts of the job.yaml saved beside `train_path`, if any."""
    job_yaml = Path(train_path).parent / "job.yaml"
    if job_yaml.is_file():
        from nemotron_core.config.loader import load_yaml  # lazy: pulls in omegaconf, yaml

        clone_git_repos_via_tunnel(executor, job_config=load_yaml(job_yaml))


def render_dry_run(executor: Any, plan: Plan, job_dir: Path) -> str:
    """What a dry run shows for `executor`: the sbatch script (Slurm), the request (clouds), else the command."""
    kind = plan.executor  # the profile's executor kind
    if kind == "slurm":
        return render_job_script(executor, plan, job_dir)
    if kind in ("dgxcloud", "lepton", "skypilot"):
        return render_request(executor, plan, job_dir)
    return plan.command_line


def execute_remote(script_path: str | Path, train_path: str | Path, env: Any, executor: Any,
                   passthrough: Sequence[str] = (), *, attached: bool = True, dry_run: bool = False,
                   echo: Callable[[str], Any] = print) -> int:
    """Step 3 for a profile (the seed writes nemo-run's Experiment here): the job of `script_path`
    reading `train_path`, through `executor`. `dry_run` prints what would be submitted (the sbatch
    text on Slurm) and submits nothing. Attached, it follows the logs and returns the job's exit
    code; detached, it returns 0 once the job is queued."""
    profile = _profile(env, "execute_remote")
    plan = plan_job(parse(script_path), profile, Path(train_path), passthrough=list(passthrough))
    job_dir = Path(train_path).parent
    if dry_run:
        echo(render_dry_run(executor, plan, job_dir))
        return 0
    _clone_saved_repos(Path(train_path), executor)
    job = submit(executor, plan, job_dir=job_dir)
    echo(f"submitted {plan.recipe}: job {job.id} ({plan.executor}), job dir {job_dir}")
    if not attached:
        return 0
    return job.wait(on_log=echo).returncode


# --------------------------------------------------------------------------- squash and git


def ensure_squashed_image(*args: Any, **kwargs: Any) -> str:
    """`ensure_squashed_image(tunnel, image, remote_job_dir, env, force=...)` (seed) or
    `ensure_squashed_image(profile, image, force=..., dry_run=...)` (squash.py)."""
    first = args[0] if args else kwargs.get("profile")
    if isinstance(first, Profile):
        return _squash.ensure_squashed_image(*args, **kwargs)
    return _seed_ensure_squashed_image(*args, **kwargs)


def _seed_ensure_squashed_image(tunnel: Any, image: str, remote_job_dir: str | None = None, env: Any = None,
                                force: bool = False) -> str:
    """The seed passes its open tunnel; here the profile (`env`) says how to reach the cluster, and the
    squash file goes to the profile's `squash_dir`, else `<remote_job_dir>/images`."""
    profile = _profile(env, "ensure_squashed_image")
    if profile is None:
        raise ProfileError("ensure_squashed_image: pass env=<the Slurm profile parse_env() returned>")
    if remote_job_dir and not profile.get("squash_dir"):
        profile = dataclasses.replace(profile, data={**profile.data, "squash_dir": f"{remote_job_dir.rstrip('/')}/images"})
    return _squash.ensure_squashed_image(profile, image, force=force)


def clone_git_repos_via_tunnel(tunnel: Any = None, remote_job_dir: str | None = None, *,
                               job_config: Any = None) -> list[str]:
    """Clone the `${auto_mount:git+URL@REF[,TARGET]}` checkouts of `job_config` (its `run.repos`) where the
    job reads them; return their `cache:TARGET` container mounts, as the seed does.

    The seed reads a registry its resolver filled and clones into `<remote_job_dir>/git-cache`. Here
    build_job_config already fixed each checkout's folder (`[cache] git_dir` on a Slurm cluster, else
    the state folder's git cache), so `remote_job_dir` is not needed. `tunnel`: None clones on this
    machine; the Slurm executor create_executor returned (or its local `tunnel`) clones through that
    cluster's shell. The clone itself is config/git_mounts.py's `clone_repo`.
    """
    if job_config is None:
        raise NemotronError("clone_git_repos_via_tunnel: pass job_config=<the config build_job_config returned>: "
                            "the checkouts it pinned are in its run.repos")
    run: Runner = run_here
    if hasattr(getattr(tunnel, "tunnel", None), "kind"):  # a Slurm executor built by create_executor

        shell = SlurmShell.for_executor(tunnel)
        run = lambda argv: shell.run(argv, timeout=600)  # noqa: E731
    # Other executors (local, docker, ray) and a local tunnel see this machine's files: cloned here.
    elif tunnel is not None and not hasattr(tunnel, "nemotron") and getattr(tunnel, "kind", None) != "local":
        raise NemotronError(f"clone_git_repos_via_tunnel: pass the executor create_executor returned (or None for "
                            f"this machine), not a {type(tunnel).__name__}")
    repos = list(job_config.run.get("repos") or []) if "run" in job_config else []
    for repo in repos:
        clone_repo(dict(repo), run)
    return [f"{r['path']}:{r['target']}" for r in repos if r.get("target")]
