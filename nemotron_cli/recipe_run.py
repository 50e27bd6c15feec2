"""Run one stage from the CLI: `nemotron nano3 <stage>` → pipeline/run.py:run_stage, printed.

The same `run_stage` the Prefect tasks call, so a stage built here has the flow's content key and
output layout (`<state>/outputs/<artifact>/<key[:16]>`) and a following `nano3 pipe` finds it cached.
What the CLI adds: it shows the config and the plan first, and prints instead of logging to Prefect.

    (no --run/--batch), --run local   this process runs the command and waits
    --run PROFILE                     submit through the profile's executor, stream the logs,
                                      wait; Ctrl-C cancels the job; exit code = the job's
    --batch PROFILE                   submit and return (job id, job dir, logs printed); the next
                                      run of the stage or `nano3 pipe` re-attaches by content key
                                      and registers the output
    --dry-run                         print config and plan (and, on Slurm, the sbatch script);
                                      say whether the output is already registered; write nothing
A stage whose content is already registered runs nothing: it prints the version (cache hit).
"""

from __future__ import annotations

import sys

from nemotron_cli.context import GlobalContext
from pipeline.run import LogReporter
from pipeline.stages import Stage


class PrintReporter(LogReporter):
    """pipeline.run.Reporter for a terminal: the default reporter, with messages and job lines on stdout."""

    def info(self, message: str) -> None:
        print(message, flush=True)

    def job_line(self, line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def run_recipe(stage: Stage, g: GlobalContext, dotlist: list[str]) -> int:
    from nemotron_core.errors import NotBuiltError

    if not stage.script_path.is_file():
        raise NotBuiltError(f"'{stage.name}': its script {stage.script} does not exist")

    from nemotron_core.display import display_job_config, display_plan
    from nemotron_core.execution import JobError
    from nemotron_core.profiles import load_env
    from nemotron_core.runspec import parse
    from pipeline.run import Launch, StageFailed, StageRequest, plan_of, prepare_job, published_output, run_stage

    # 1. What the stage is, where it runs, with which config; its content key and output folder.
    profile = load_env().profile(g.profile)
    in_process = profile.executor == "local" and g.attached
    request = StageRequest(profile=profile.name, config=g.config or parse(stage.script_path).config.default,
                           overrides=list(dotlist))
    launch = Launch(mode=g.mode, detach=not g.attached, in_process=in_process, argv=tuple(g.argv),
                    passthrough=tuple(g.passthrough), dry_run=g.dry_run)
    job = prepare_job(stage, request, {}, launch)

    # 2. The plan: executor, launcher, resources, command line; on Slurm, the sbatch script.
    plan = plan_of(job)
    sbatch = None
    if not in_process:  # a misconfigured profile fails here, before anything is written
        from nemotron_core.execution import create_executor

        executor = create_executor(job.profile, job.spec, attached=g.attached, job_config=job.job_config)
        if plan.executor == "slurm":
            from nemotron_core.execution.backends.slurm import render_job_script

            sbatch = render_job_script(executor, plan, job.job_dir)
        elif plan.executor in ("dgxcloud", "lepton", "skypilot"):  # what nemo-run would send, rendered
            from nemotron_core.execution.backends.cloud_render import render_request

            sbatch = render_request(executor, plan, job.job_dir)
    pending = job.pending
    for ref, producer in pending.items():  # dry run only: a real run refuses an unpublished input
        print(f"pending input: {ref} is not published yet; {producer}")
    if pending and stage.output:
        print(f"would publish {stage.output} from a folder named by its content key, known once "
              f"{', '.join(pending)} {'is' if len(pending) == 1 else 'are'} published")
    elif g.dry_run and stage.output:
        cached = published_output(job)
        print(f"cached: {cached} holds this content (key {job.key[:16]}); a run would do nothing" if cached
              else f"would publish {stage.output} from {job.output_dir} (content key {job.key[:16]})")
    display_job_config(job.job_config)
    display_plan(plan, job_dir=job.job_dir, mode=g.mode, profile_name=profile.name,
                 artifacts={**job.job_config.run.artifacts, **{ref: "pending" for ref in pending}},
                 sbatch=sbatch, dry_run=g.dry_run)
    if g.force_squash:  # the import before the submit (under --dry-run: its commands)
        from nemotron_cli.stage_flags import force_squash

        force_squash(job.profile, job.spec, dry_run=g.dry_run)
    if g.dry_run:
        return 0
    if g.stage:  # the job's files in place and how to run them; nothing submitted, nothing registered
        from nemotron_cli.stage_flags import stage_job

        return stage_job(job, attached=g.attached)

    # 3. run_stage: cached? → run here, or submit (and follow when attached) → register.
    try:
        run_stage(stage, request, {}, PrintReporter(), launch)
    except StageFailed as e:  # the script printed its own error
        return e.returncode
    except JobError as e:
        if e.status is None:
            raise
        print(f"error: {e}", file=sys.stderr, flush=True)
        return e.status.returncode
    return 0
