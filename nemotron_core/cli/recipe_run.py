"""Run one recipe from the CLI, visibly: runspec → config → job.yaml → plan → execute.

This is the CLI's counterpart of a stage's Prefect task (tasks/): the same toolkit calls
in the same order, so reading it tells you exactly what `nemotron nano3 <stage>` does.
"""

from __future__ import annotations

from nemotron_core.cli.context import GlobalContext
from nemotron_core.cli.recipe_typer import RecipeMeta
from nemotron_core.errors import NotBuiltError


def run_recipe(meta: RecipeMeta, g: GlobalContext, dotlist: list[str]) -> int:
    if not meta.script_path.is_file():
        raise NotBuiltError(f"'{meta.name}' is not built yet: {meta.script} does not exist (issue #{meta.issue})")

    from nemotron_core.config import build_job_config, extract_train_config, generate_job_dir, parse_config, save_configs
    from nemotron_core.display import display_job_config, display_plan
    from nemotron_core.launch import plan_job
    from nemotron_core.profiles import load_env
    from nemotron_core.runspec import parse

    # 1. What the recipe is, where it runs, with which config.
    spec = parse(meta.script_path)
    profile = load_env().profile(g.profile)
    train = parse_config(spec.config_dir, g.config, dotlist, default=spec.config.default)
    job = build_job_config(train, spec=spec, mode=g.mode, profile=profile, argv=g.argv, dotlist=dotlist,
                           passthrough=g.passthrough, config_name=g.config)

    # 2. The plan: executor, launcher, resources, command line.
    job_dir = generate_job_dir(spec.name)
    plan = plan_job(spec, profile, job_dir / "train.yaml", passthrough=g.passthrough)
    display_job_config(job)
    display_plan(plan, job_dir=job_dir, mode=g.mode, profile_name=profile.name,
                 artifacts=dict(job.run.artifacts), dry_run=g.dry_run)
    if g.dry_run:
        return 0
    if plan.executor != "local":
        raise NotBuiltError(f"running on a '{plan.executor}' profile is not built yet (execution layer, issue #5); "
                            f"use --dry-run to see the plan")

    # 3. Write job.yaml/train.yaml, then run.
    from nemotron_core.execution import execute_local

    save_configs(job, extract_train_config(job, for_remote=False), job_dir)
    return execute_local(plan, job_dir)
