"""`nemotron nano3 pipe --dry-run`: what the nano3-full flow would do, stage by stage. No Prefect here.

It walks the same stage table as the flow (pipeline/stages.py), one row per run of a stage (the
eval once per model), in pipeline order:
- skip     its content is already registered (the ref it would return)
- attach   a job for the same content key is pending/running/completed (its id)
- submit   nothing matches: the command (and, on Slurm, the sbatch script) it would run
A stage whose upstream would be (re)built cannot know its content key yet: it is planned
as "submit (after <upstream>)". Nothing is written and nothing is submitted.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.run import StageRequest
from pipeline.stages import STAGES, Stage, check_stages, consumed


@dataclass
class StagePlan:
    stage: str  # "eval[sft]" for one run of a fanned-out stage
    action: str  # skip | attach | submit
    reason: str
    ref: str | None = None  # the output ref when known
    command: str | None = None
    sbatch: str | None = None
    inputs: dict[str, str] | None = None  # slot -> upstream stage


def plan_pipeline(*, profile: str = "local", config: str = "tiny", stage_configs: dict[str, str] | None = None,
                  overrides: dict[str, list[str]] | None = None, stages: list[str] | None = None,
                  force: bool = False) -> list[StagePlan]:
    from nemotron_core.profiles import load_env
    from pipeline.run import pinned_latest

    selected = check_stages(stages)
    env = load_env()
    env.profile(profile)
    needed = consumed(selected)
    known: dict[str, str | None] = {}  # stage -> output ref (None: will be rebuilt, unknown now)
    plans: list[StagePlan] = []
    for name, stage in STAGES.items():
        if name not in selected:
            known[name] = pinned_latest(env, stage.output) if name in needed and stage.output else None
            continue
        request = StageRequest(profile=profile, config=(stage_configs or {}).get(name, config),
                               overrides=list((overrides or {}).get(name, [])))
        refs: list[str | None] = []
        for fan, slots in stage.runs():
            label = f"{name}[{fan}]" if fan else name
            plans.append(_plan_run(label, stage, request, slots, known, force=force))
            refs.append(plans[-1].ref)
        known[name] = refs[0] if len(refs) == 1 else None  # a fanned-out stage feeds nothing downstream
    return plans


def _plan_run(label: str, stage: Stage, request: StageRequest, slots: dict[str, str],
              known: dict[str, str | None], *, force: bool) -> StagePlan:
    """One run of a stage: what its inputs would be and what the stage's run_stage would do with them."""
    from nemotron_core.execution import create_executor, find_job
    from pipeline.run import plan_of, prepare_job, published_output

    pending = sorted({up for up in slots.values() if known.get(up) is None})
    if pending:
        return StagePlan(label, "submit", f"after {', '.join(pending)} (inputs not built yet)", inputs=slots)
    job = prepare_job(stage, request, {slot: known[up] for slot, up in slots.items()})
    done = None if force else published_output(job)
    if done:
        return StagePlan(label, "skip", f"cached: content {job.key[:12]} is {done}", ref=done, inputs=slots)
    running = None if force else find_job(job.key)
    if running is not None:
        return StagePlan(label, "attach", f"{running.describe()} has the same content key", inputs=slots)
    plan = plan_of(job)
    sbatch = None
    if plan.executor != "local":  # the stage task's own path: an unsupported/misconfigured profile fails here
        executor = create_executor(job.profile, job.spec, job_config=job.job_config)
        if plan.executor == "slurm":
            from nemotron_core.execution.backends.slurm import render_job_script

            sbatch = render_job_script(executor, plan, job.job_dir)
    return StagePlan(label, "submit", "forced" if force else f"no output for content {job.key[:12]}",
                     command=plan.command_line, sbatch=sbatch, inputs=slots)


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
