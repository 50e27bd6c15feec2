"""`nemotron nano3 pipe --dry-run`: what the nano3-full flow would do, stage by stage. No Prefect here.

It walks the same stage table as the flow (pipeline/stages.py), one row per run of a stage (the
eval once per model), in pipeline order:
- skip     its content is already registered (the ref it would return)
- attach   a job for the same content key is pending/running/completed (its id)
- submit   nothing matches: the command (and, on Slurm, the sbatch script) it would run
A stage whose upstream would be (re)built cannot know its content key yet: it is planned
as "submit (after <upstream>)", its inputs pending (`<pending: ...>` in its config, see
pipeline/pending.py), its command and sbatch script shown all the same. An input that no
selected stage builds and nobody published yet is pending too, naming the command that
produces it. Nothing is written and nothing is submitted.
"""

from __future__ import annotations

from dataclasses import dataclass

from nemotron_core.errors import ArtifactError
from nemotron_core.execution import create_executor, find_job
from nemotron_core.execution.backends.slurm import render_job_script
from nemotron_core.profiles import load_env
from pipeline.run import Launch, StageRequest, pinned_latest, plan_of, prepare_job, published_output
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
    selected = check_stages(stages)
    env = load_env()
    env.profile(profile)
    needed = consumed(selected)
    known: dict[str, str | None] = {}  # stage -> output ref (None: will be rebuilt, unknown now)
    plans: list[StagePlan] = []
    for name, stage in STAGES.items():
        if name not in selected:  # its published latest, or None: pending (the runs that need it show who builds it)
            known[name] = _latest_or_none(env, stage.output) if name in needed and stage.output else None
            continue
        request = StageRequest(profile=profile, config=(stage_configs or {}).get(name, config),
                               overrides=list((overrides or {}).get(name, [])))
        refs: list[str | None] = []
        for fan, slots in stage.runs():
            label = f"{name}[{fan}]" if fan else name
            plans.append(_plan_run(label, stage, request, slots, known, set(selected), force=force))
            refs.append(plans[-1].ref)
        known[name] = refs[0] if len(refs) == 1 else None  # a fanned-out stage feeds nothing downstream
    return plans


def _plan_run(label: str, stage: Stage, request: StageRequest, slots: dict[str, str],
              known: dict[str, str | None], building: set[str], *, force: bool) -> StagePlan:
    """One run of a stage: what its inputs would be and what the stage's run_stage would do with them."""
    # An upstream rebuilt first binds its new version: pending here, the command and script still shown.
    waits = sorted({up for up in slots.values() if known.get(up) is None and up in building})
    rebuilt = tuple(sorted((str(STAGES[up].output), up) for up in waits))
    bound = {slot: known[up] or str(STAGES[up].output) for slot, up in slots.items()}
    job = prepare_job(stage, request, bound, Launch(dry_run=True), rebuilt=rebuilt)
    if job.pending:
        built_here = {name for name, _ in rebuilt}
        missing = [f"{ref} {who}" for ref, who in job.pending.items() if ref.partition(":")[0] not in built_here]
        reason = "; ".join([*([f"after {', '.join(waits)} (inputs not built yet)"] if waits else []),
                            *([f"not published: {'; '.join(missing)}"] if missing else [])])
        return _submit(label, job, reason, slots)
    done = None if force else published_output(job)
    if done:
        return StagePlan(label, "skip", f"cached: content {job.key[:12]} is {done}", ref=done, inputs=slots)
    running = None if force else find_job(job.key)
    if running is not None:
        return StagePlan(label, "attach", f"{running.describe()} has the same content key", inputs=slots)
    return _submit(label, job, "forced" if force else f"no output for content {job.key[:12]}", slots)


def _submit(label: str, job, reason: str, slots: dict[str, str]) -> StagePlan:
    """A run the plan submits: its command line and, on Slurm, its sbatch script."""
    plan = plan_of(job)
    sbatch = None
    if plan.executor != "local":  # the stage task's own path: an unsupported/misconfigured profile fails here
        executor = create_executor(job.profile, job.spec, job_config=job.job_config)
        if plan.executor == "slurm":
            sbatch = render_job_script(executor, plan, job.job_dir)
    return StagePlan(label, "submit", reason, command=plan.command_line, sbatch=sbatch, inputs=slots)


def _latest_or_none(env, name: str) -> str | None:
    try:
        return pinned_latest(env, name)
    except ArtifactError:
        return None


def print_plan(plans: list[StagePlan]) -> None:
    from rich.console import Console  # lazy: rich.console is a heavy import
    from rich.table import Table  # lazy: rich.table is a heavy import
    from rich.text import Text  # lazy: rich.text is a heavy import

    table = Table(title="nano3-full plan (dry run)", show_lines=False)
    for col in ("stage", "action", "reason", "command"):
        table.add_column(col, overflow="fold")
    for p in plans:  # plain text: "eval[sft]" and paths are not rich markup
        table.add_row(*(Text(v) for v in (p.stage, p.action, p.reason, p.command or "")))
    console = Console(soft_wrap=True)
    console.print(table)
    for p in plans:
        if p.sbatch:
            console.rule(f"{p.stage}: sbatch script")
            console.print(p.sbatch, markup=False, highlight=False)
