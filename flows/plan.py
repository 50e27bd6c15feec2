"""`nemotron nano3 pipe --dry-run`: what the nano3-full flow would do, stage by stage.

For each stage, in pipeline order:
- skip     its content is already registered (the ref it would return)
- attach   a job for the same content key is pending/running/completed (its id)
- submit   nothing matches: the command (and, on Slurm, the sbatch script) it would run
A stage whose upstream would be (re)built cannot know its content key yet: it is planned
as "submit (after <upstream>)". Nothing is written and nothing is submitted.
"""

from __future__ import annotations

from dataclasses import dataclass

from flows.nano3_full import MODEL_STAGES, STAGES, check_stages
from tasks.stage import StageRequest

# stage -> {input slot: upstream stage}
UPSTREAM = {
    "data_pretrain": {},
    "data_sft": {"pretrain_data": "data_pretrain"},
    "data_rl": {"pretrain_data": "data_pretrain"},
    "pretrain": {"data": "data_pretrain"},
    "sft": {"data": "data_sft", "base_model": "pretrain"},
    "rl": {"data": "data_rl", "base_model": "sft"},
    "eval": {"model": "sft", "pretrain_data": "data_pretrain", "rl_data": "data_rl"},
}


@dataclass
class StagePlan:
    stage: str
    action: str  # skip | attach | submit
    reason: str
    ref: str | None = None  # the output ref when known
    command: str | None = None
    sbatch: str | None = None


def plan_pipeline(*, profile: str = "local", config: str = "tiny", stage_configs: dict[str, str] | None = None,
                  overrides: dict[str, list[str]] | None = None, stages: list[str] | None = None,
                  force: bool = False) -> list[StagePlan]:
    from nemotron_core.execution import create_executor, find_job
    from nemotron_core.launch import plan_job
    from nemotron_core.profiles import load_env
    from tasks.stage import prepare_job, published_output
    from tasks.summary import pinned_latest

    selected = check_stages(stages)
    env = load_env()
    env.profile(profile)
    known: dict[str, str | None] = {}  # stage -> output ref (None: will be rebuilt, unknown now)
    plans: list[StagePlan] = []
    for name, stage in STAGES.items():
        if name not in selected:
            known[name] = pinned_latest(env, stage.output) if _needed(name, selected) else None
            continue
        request = StageRequest(profile=profile, config=(stage_configs or {}).get(name, config),
                               overrides=list((overrides or {}).get(name, [])))
        pending = [up for up in UPSTREAM[name].values() if known.get(up) is None]
        if pending:
            plans.append(StagePlan(name, "submit", f"after {', '.join(pending)} (inputs not built yet)"))
            known[name] = None
            continue
        job = prepare_job(stage, request, {slot: known[up] for slot, up in UPSTREAM[name].items()})
        done = None if force else published_output(job)
        if done:
            plans.append(StagePlan(name, "skip", f"cached: content {job.key[:12]} is {done}", ref=done))
            known[name] = done
            continue
        running = None if force else find_job(job.key)
        if running is not None:
            plans.append(StagePlan(name, "attach", f"{running.describe()} has the same content key"))
            known[name] = None
            continue
        plan = plan_job(job.spec, job.profile, job.job_dir / "train.yaml")
        sbatch = None
        if plan.executor != "local":  # the stage task's own path: an unsupported/misconfigured profile fails here
            executor = create_executor(job.profile, job.spec, job_config=job.job_config)
            if plan.executor == "slurm":
                from nemotron_core.execution.backends.slurm import render_job_script

                sbatch = render_job_script(executor, plan, job.job_dir)
        plans.append(StagePlan(name, "submit", "forced" if force else f"no output for content {job.key[:12]}",
                               command=plan.command_line, sbatch=sbatch))
        known[name] = None
    return plans


def _needed(name: str, selected: list[str]) -> bool:
    """Is `name`'s output an input of a selected stage (or of the evals)?"""
    consumers = [s for s in selected if name in UPSTREAM[s].values()]
    return bool(consumers) or ("eval" in selected and name in MODEL_STAGES)


def print_plan(plans: list[StagePlan]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="nano3-full plan (dry run)", show_lines=False)
    for col in ("stage", "action", "reason", "command"):
        table.add_column(col, overflow="fold")
    for p in plans:
        table.add_row(p.stage, p.action, p.reason, p.command or "")
    console = Console(soft_wrap=True)
    console.print(table)
    for p in plans:
        if p.sbatch:
            console.rule(f"{p.stage}: sbatch script")
            console.print(p.sbatch, markup=False, highlight=False)
