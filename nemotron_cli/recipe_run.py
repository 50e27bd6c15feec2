"""Run one recipe from the CLI, visibly: runspec → config → job.yaml → plan → execute.

This is the CLI's counterpart of a stage's Prefect task (tasks/): the same toolkit calls
in the same order, so reading it tells you exactly what `nemotron nano3 <stage>` does.

    (no --run/--batch), --run local   this process runs the command and waits (execute_local)
    --run PROFILE                     submit through the profile's executor, stream the logs,
                                      wait; Ctrl-C cancels the job; exit code = the job's
    --batch PROFILE                   submit and return (the job id and job dir are printed)
    --dry-run                         print config and plan (and, on Slurm, the sbatch script)
"""

from __future__ import annotations

import sys

from nemotron_cli.context import GlobalContext
from nemotron_cli.recipe_typer import RecipeMeta
from nemotron_core.errors import NotBuiltError


def run_recipe(meta: RecipeMeta, g: GlobalContext, dotlist: list[str]) -> int:
    if not meta.script_path.is_file():
        raise NotBuiltError(f"'{meta.name}' is not built yet: {meta.script} does not exist (issue #{meta.issue})")

    from nemotron_core.config import build_job_config, extract_train_config, generate_job_dir, parse_config, save_configs
    from nemotron_core.display import display_job_config, display_plan
    from nemotron_core.launch import plan_job
    from nemotron_core.profiles import load_env
    from nemotron_core.runspec import parse
    from omegaconf import OmegaConf

    from nemotron_core.artifacts import config_lookup, open_registry
    from nemotron_core.config import set_artifact_lookup
    from nemotron_core.contract import OUTPUT_DIR_KEY

    # 1. What the recipe is, where it runs, with which config; ${art:} refs resolve in the registry.
    spec = parse(meta.script_path)
    env = load_env()
    profile = env.profile(g.profile)
    registry = open_registry(env.section("artifacts"))
    set_artifact_lookup(config_lookup(registry))
    job_dir = generate_job_dir(spec.name)
    train = parse_config(spec.config_dir, g.config, dotlist, default=spec.config.default)
    if OmegaConf.is_missing(train, OUTPUT_DIR_KEY) if OUTPUT_DIR_KEY in train else True:
        OmegaConf.update(train, OUTPUT_DIR_KEY, str(job_dir / "output"), force_add=True)  # unless the user set one
    job = build_job_config(train, spec=spec, mode=g.mode, profile=profile, argv=g.argv, dotlist=dotlist,
                           passthrough=g.passthrough, config_name=g.config)

    # 2. The plan: executor, launcher, resources, command line; on Slurm, the sbatch script.
    plan = plan_job(spec, profile, job_dir / "train.yaml", passthrough=g.passthrough)
    in_process = plan.executor == "local" and g.attached
    executor = sbatch = None
    if not in_process:
        from nemotron_core.execution import create_executor

        executor = create_executor(profile, spec, attached=g.attached, job_config=job)
        if plan.executor == "slurm":
            from nemotron_core.execution.backends.slurm import render_job_script

            sbatch = render_job_script(executor, plan, job_dir)
        elif plan.executor in ("dgxcloud", "lepton", "skypilot"):  # what nemo-run would send, rendered
            from nemotron_core.execution.backends.cloud_render import render_request

            sbatch = render_request(executor, plan, job_dir)
    display_job_config(job)
    display_plan(plan, job_dir=job_dir, mode=g.mode, profile_name=profile.name,
                 artifacts=dict(job.run.artifacts), sbatch=sbatch, dry_run=g.dry_run)
    if g.dry_run:
        return 0

    # 3. Write job.yaml/train.yaml, then run here, or submit (and follow when attached).
    if in_process:
        from nemotron_core.execution import execute_local

        save_configs(job, extract_train_config(job, for_remote=False), job_dir)
        code = execute_local(plan, job_dir)
        return register_output(meta, job, registry) if code == 0 else code

    from nemotron_core.execution import job_paths, submit
    from nemotron_core.paths import PACKAGE_ROOT

    paths = job_paths(executor, job_dir)
    moved = paths.in_job != str(paths.local)  # a container or another machine: rewrite checkout paths
    save_configs(job, extract_train_config(job, for_remote=moved, code_root=PACKAGE_ROOT, remote_root=paths.code),
                 job_dir)
    handle = submit(executor, plan, job_dir=job_dir)
    print(f"submitted {handle.describe()}; job dir {job_dir}", flush=True)
    if not g.attached:
        print(f"logs: {handle.log_hint()}", flush=True)
        return 0
    code = follow(handle)
    return register_output(meta, job, registry) if code == 0 else code


def register_output(meta: RecipeMeta, job, registry) -> int:
    """After an attached run succeeded: publish its output as the recipe's artifact (lineage = pinned inputs)."""
    import json
    from pathlib import Path

    from nemotron_core.contract import OUTPUT_DIR_KEY, RESULT_FILE

    if not meta.outputs:
        return 0
    output_dir = Path(job[OUTPUT_DIR_KEY])
    result_path = output_dir / RESULT_FILE
    if not result_path.is_file():
        print(f"error: the job succeeded but wrote no {result_path}; nothing registered", file=sys.stderr)
        return 1
    train = {k: v for k, v in job.items() if k != "run"}
    source = output_dir / meta.artifact_subdir if meta.artifact_subdir else output_dir
    version = registry.publish(next(iter(meta.outputs)), source, lineage=sorted(set(job.run.artifacts.values())),
                               metadata={"producer": meta.name, "result": json.loads(result_path.read_text()),
                                         "config": _plain(train), "job_dir": str(output_dir.parent)})
    print(f"registered {version.ref}", flush=True)
    return 0


def _plain(cfg) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.create(cfg), resolve=False)


def follow(handle) -> int:
    """Stream the job's output until it ends; Ctrl-C cancels it. Returns the job's exit code."""
    def echo(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    try:
        status = handle.wait(on_log=echo)
    except KeyboardInterrupt:
        print(f"\ncancelling {handle.describe()} ...", file=sys.stderr, flush=True)
        status = handle.cancel()
        print(f"{handle.describe()}: {status.describe()}", file=sys.stderr, flush=True)
        return 130
    print(f"{handle.describe()}: {status.describe()}", file=sys.stderr if not status.ok else sys.stdout, flush=True)
    return status.returncode
