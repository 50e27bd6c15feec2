"""Run one stage, top to bottom: `run_stage` below, one visible step per line. No Prefect here.

Called by the Prefect stage tasks (tasks/*.py, which add caching, retries, logging and the run
report around it through their `Reporter`) and by the CLI's stage commands (nemotron_cli/recipe_run.py,
which prints). Both therefore compute the same content key and use the same output layout, so
`nemotron nano3 pretrain -c tiny` followed by `nemotron nano3 pipe` does not build pretraining twice.

Decisions, written down:
- Inputs are pinned refs ("nano3-pretrain-data:v3"), never `latest`: the flow passes the exact
  versions produced upstream in the same run, bound into the recipe config by the stage table's
  `Input.bind` (`${art:REF,path}` overrides), so job.yaml records them. A CLI run binds nothing: the
  config's own `${art:NAME,path}` pins `latest` when it resolves; the content key holds the pinned
  version either way, so both paths agree on it.
- `output_dir` is stable per content key (`<state>/outputs/<artifact>/<key[:16]>`, or
  `<profile.output_root>/...` for clusters): a retry after preemption finds the trainer's
  checkpoints there and resumes (`resume: auto`), and a re-attach finds the same output.
  An `output_dir=` the user passes on the command line wins (published by copy, never moved).
- A retry (pipeline/retry.py decides which failures) lands in `submit_or_attach` again: the
  failed job is not reused, the new one gets its own job dir and `resume: auto`, and its
  trainer continues from the checkpoints the failed attempt left in output_dir.
- Registration checks the registry for a version with the same content key first, so a
  process that died between "job done" and "result stored" never publishes twice.
- A detached submission (`nemotron nano3 STAGE --batch PROFILE`) returns right after submitting:
  nothing is registered then. The job carries its content key (jobref.json), so the next
  `nano3 pipe`, flow run or attached CLI run of the same stage and content re-attaches to it
  (running or finished), waits and registers it: the batch job is never run twice.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import shutil
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from pydantic import BaseModel, Field

from nemotron_core.artifacts import config_lookup, open_registry
from nemotron_core.config import build_job_config, generate_job_dir, parse_config, set_artifact_lookup
from nemotron_core.config import extract_train_config, save_configs
from nemotron_core.config.git_mounts import clone_repo, run_here as on_this_machine
from nemotron_core.content_key import content_key, recipe_source_digest
from nemotron_core.contract import OUTPUT_DIR_KEY, PREEMPTED_FILE, RESULT_FILE
from nemotron_core.errors import ArtifactError, ProfileError
from nemotron_core.execution import JobError, create_executor, execute_local, find_job, job_paths, submit
from nemotron_core.execution.backends.slurm_shell import SlurmShell
from nemotron_core.execution.refs import REF_FILE
from nemotron_core.launch import plan_job
from nemotron_core.paths import PACKAGE_ROOT, state_dir
from nemotron_core.profiles import load_env
from nemotron_core.runspec import parse
from pipeline.pending import pending_check
from pipeline.retry import ResumableJobError, resume_reason
from pipeline.stages import Stage

if TYPE_CHECKING:  # omegaconf and the registry load only when a stage is prepared (the CLI starts without them)
    from omegaconf import DictConfig

    from nemotron_core.artifacts.registry import ArtifactRegistry
    from nemotron_core.profiles import Profile
    from nemotron_core.runspec import Runspec


#: The output folder's name in a dry run whose inputs are pending (the content key is not known yet).
PENDING_KEY = "<content-key-pending>"


class StageRequest(BaseModel):
    """What the caller asks of one stage (Prefect parameters: no secrets here, ever)."""

    profile: str = "local"
    config: str = "tiny"
    overrides: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class Launch:
    """How this caller runs the job; none of it is part of the content key except `passthrough`."""

    mode: str = "run"  # job.yaml run.mode: local | run | batch
    detach: bool = False  # submit and return (CLI --batch): registered later, see the module docstring
    in_process: bool = False  # this process runs the command (CLI on the local executor, attached)
    argv: tuple[str, ...] = ()  # the CLI line, for job.yaml's provenance
    passthrough: tuple[str, ...] = ()  # words after `--`, appended to the script's command line
    dry_run: bool = False  # plan only: an unpublished input reads as `<pending: ...>` instead of failing


class Reporter(Protocol):
    """Where a stage run's messages go: Prefect's logger and UI (tasks/report.py), or stdout (the CLI)."""

    def info(self, message: str) -> None: ...
    def job_line(self, line: str) -> None: ...  # one line of the job's own log
    def attempt(self) -> int: ...  # which try this is (1 unless the caller retries)
    def owner(self) -> str | None: ...  # the flow run that owns submitted jobs (cancelling it cancels them)
    def registered(self, job: PreparedJob, handle: Any, ref: str, result: dict, metrics: list[dict]) -> None: ...


class LogReporter:
    """The default: messages and job lines to the `nemotron.pipeline` logger."""

    def __init__(self) -> None:
        self.log = logging.getLogger("nemotron.pipeline")

    def info(self, message: str) -> None:
        self.log.info(message)

    def job_line(self, line: str) -> None:
        self.log.info(line)

    def attempt(self) -> int:
        return 1

    def owner(self) -> str | None:
        return None

    def registered(self, job, handle, ref, result, metrics) -> None:
        pass


@dataclass
class PreparedJob:
    stage: Stage
    request: StageRequest
    inputs: dict[str, str]  # slot -> pinned ref
    spec: Runspec
    profile: Profile
    registry: ArtifactRegistry
    job_config: DictConfig  # train config + run provenance (`run:`)
    key: str
    job_dir: Path
    output_dir: Path
    launch: Launch = field(default_factory=Launch)
    own_output: bool = True  # output_dir is the per-key folder (published by moving it), not the user's

    @property
    def pending(self) -> dict[str, str]:
        """Dry runs: inputs not published yet (ref -> who produces it); the content key waits for them."""
        return dict(self.job_config.run.get("pending") or {})

    @property
    def lineage(self) -> list[str]:
        return sorted(set(self.job_config.run.artifacts.values()))


class StageFailed(Exception):
    """The stage's job ran and did not succeed; `returncode` is the job's (the CLI exits with it)."""

    def __init__(self, message: str, returncode: int):
        super().__init__(message)
        self.returncode = returncode


_PREPARED: dict[tuple, PreparedJob] = {}


def run_stage(stage: Stage, request: StageRequest, inputs: dict[str, str], reporter: Reporter | None = None,
              launch: Launch = Launch()) -> str | None:
    """Run one stage; return the pinned ref of its output artifact (None: detached, or no output)."""
    reporter = reporter or LogReporter()
    job = prepare_job(stage, request, inputs, launch)   # 1. runspec, config + overrides + pinned inputs, content key
    if done := published_output(job):                   # 2. this exact content is registered already
        reporter.info(f"{stage.name}: cached: content {job.key[:12]} is {done}; nothing to run")
        return done
    if launch.in_process:                               # 3-5. the CLI on the local executor: run it right here
        run_here(job, reporter)
        return register_output(job, None, reporter)     # 6.
    executor = create_executor(job.profile, job.spec,   # 3. local / torchrun / Ray / Slurm / Docker, from the profile
                               attached=not launch.detach, job_config=job.job_config)
    handle = submit_or_attach(job, executor, reporter)  # 4. re-attach by content key, else write configs and submit
    if launch.detach:                                   #    --batch: the next run re-attaches and registers it
        reporter.info(f"logs: {handle.log_hint()}")
        reporter.info(f"{stage.name}: detached; the next run of this stage (or nano3 pipe) with the same "
                      f"content re-attaches to it and registers its output")
        return None
    wait_streaming_logs(job, handle, reporter)          # 5. job logs → reporter; JobError unless COMPLETED
    return register_output(job, handle, reporter)       # 6. publish output_dir → "nano3-...:vN" with lineage


def prepare_job(stage: Stage, request: StageRequest, inputs: dict[str, str], launch: Launch = Launch(),
                rebuilt: tuple[tuple[str, str], ...] = ()) -> PreparedJob:
    """Runspec, profile, config with overrides and pinned inputs, content key, dirs (memoized).

    Reads only: the job dir is named, not created. With `launch.dry_run`, inputs not published
    yet (and the artifacts in `rebuilt`, (name, stage) pairs a plan builds first) are pending:
    the job is prepared with placeholders, `job.pending` says who produces them, and the content
    key and output folder are unknown until they exist.
    """
    env = load_env()
    profile = env.profile(request.profile)
    # The same call in the same place gets the same job (the Prefect cache key and the task share it);
    # another env.toml or state folder (tests, a long-lived process) is another place.
    place = json.dumps([str(state_dir()), profile.redacted(), env.section("artifacts")], sort_keys=True, default=str)
    memo = (stage, request.model_dump_json(), tuple(sorted(inputs.items())), launch, place, rebuilt)
    if memo in _PREPARED:
        return _PREPARED[memo]
    from omegaconf import OmegaConf  # lazy: omegaconf is a heavy import

    from nemotron_core.config.run_section import fill_run_wandb  # lazy: pulls in omegaconf, yaml

    spec = parse(stage.script_path)
    registry = open_registry(env.section("artifacts"))
    set_artifact_lookup(config_lookup(registry))
    dotlist = [*request.overrides, *stage.bindings(inputs)]
    train = parse_config(spec.config_dir, request.config, dotlist, extensions=spec.config.extensions)
    fill_run_wandb(train, env.section("wandb"))  # `${run.wandb.project}` in seed configs
    chosen = (OUTPUT_DIR_KEY in train and not OmegaConf.is_missing(train, OUTPUT_DIR_KEY)  # the user's output_dir
              and train[OUTPUT_DIR_KEY] is not None)
    if not chosen:  # output_dir is not part of the content: a placeholder now, the per-key folder below
        OmegaConf.update(train, OUTPUT_DIR_KEY, "<set from the content key>", force_add=True)
    pending = None
    if launch.dry_run:
        pending = pending_check(registry, dict(rebuilt))
    job = build_job_config(train, spec=spec, mode=launch.mode, profile=profile, argv=launch.argv, dotlist=dotlist,
                           passthrough=launch.passthrough, config_name=request.config, pending=pending,
                           git_cache=git_cache_of(env, profile), git=not launch.dry_run)
    if job.run.get("env"):  # the config's run.env overrides the profile (nemotron_core/config/run_section.py)
        from nemotron_core.config.run_section import apply_run_env  # lazy: pulls in omegaconf, yaml

        profile = apply_run_env(profile, OmegaConf.to_container(job.run.env), f"config (run.env of {spec.name})")
    plain = cast("dict[str, Any]", OmegaConf.to_container(job, resolve=False))  # a DictConfig gives a dict
    plain.pop("run")
    key = content_key(recipe=spec.name, source_digest=recipe_source_digest(spec.script_path), train_config=plain,
                      image=spec.image, inputs={ref: registry.cache_key_part(ref) for ref in job.run.artifacts.values()})
    if launch.passthrough:  # words for the script change what it computes: a key of their own
        key = hashlib.sha256(json.dumps([key, list(launch.passthrough)]).encode()).hexdigest()
    job_dir = generate_job_dir(spec.name)
    if chosen:
        output_dir = Path(job[OUTPUT_DIR_KEY])
    elif stage.output:
        folder = PENDING_KEY if "pending" in job.run else key[:16]
        output_dir = Path(profile.get("output_root") or state_dir() / "outputs") / stage.output / folder
    else:  # a recipe that publishes nothing: its output stays with its job
        output_dir = job_dir / "output"
    job[OUTPUT_DIR_KEY] = str(output_dir)
    prepared = PreparedJob(stage=stage, request=request, inputs=dict(inputs), spec=spec, profile=profile,
                           registry=registry, job_config=job, key=key, job_dir=job_dir, output_dir=output_dir,
                           launch=launch, own_output=not chosen)
    _PREPARED[memo] = prepared
    return prepared


def train_config(job: PreparedJob) -> dict:
    from omegaconf import OmegaConf  # lazy: omegaconf is a heavy import

    plain = cast("dict[str, Any]", OmegaConf.to_container(job.job_config, resolve=False))
    plain.pop("run", None)
    return plain


def published_output(job: PreparedJob) -> str | None:
    """The pinned ref of a version already published for this content key, if any."""
    if not job.stage.output:
        return None
    try:
        versions = job.registry.list(job.stage.output)
    except ArtifactError:
        return None
    for version in sorted(versions, key=lambda v: v.version or 0, reverse=True):
        if version.metadata.get("content_key") == job.key:
            return version.ref
    return None


def pinned_latest(env, name: str) -> str:
    """The current `latest` of an artifact, as "name:vN" (a flow pins it once, when it starts)."""
    try:
        return open_registry(env.section("artifacts")).resolve(name).ref
    except ArtifactError as e:
        raise ArtifactError(f"{e}; include the stage that produces {name} in `stages`") from None


def plan_of(job: PreparedJob):
    """The launch plan (executor, launcher, command line) for the job's train.yaml."""
    return plan_job(job.spec, job.profile, job.job_dir / "train.yaml", passthrough=job.launch.passthrough)


def git_cache_of(env, profile) -> str | None:
    """Where `${auto_mount:git+...}` checkouts live for this profile's jobs: a Slurm cluster's
    `[cache] git_dir`, else the state folder's git cache (None)."""
    git_dir = (env.section("cache") or {}).get("git_dir")
    return str(git_dir) if git_dir and profile.executor == "slurm" else None


def clone_repos(job: PreparedJob, executor=None) -> None:
    """Submit time: clone the config's `${auto_mount:git+URL@REF}` checkouts where the job reads them
    (this machine, or the Slurm cluster through its shell). A dry run never gets here."""
    repos = list(job.job_config.run.get("repos") or [])
    if not repos:
        return

    run = on_this_machine
    if job.profile.executor == "slurm" and executor is not None:
        shell = SlurmShell.for_executor(executor)
        if shell.kind == "ssh" and not git_cache_of(load_env(), job.profile):
            raise ProfileError(f"profile '{job.profile.name}': ${{auto_mount:git+...}} clones on the cluster: set "
                               f"[cache] git_dir in env.toml (a folder on the cluster's shared filesystem)")
        run = lambda argv: shell.run(argv, timeout=600)  # noqa: E731
    elif job.profile.executor not in ("local", "docker", "ray", "slurm"):
        raise ProfileError(f"profile '{job.profile.name}': ${{auto_mount:git+...}} is not supported on "
                           f"{job.profile.executor} jobs; mount a checkout the cluster already has")
    for repo in repos:  # job.yaml records the commit each checkout is at
        repo.commit = clone_repo(dict(repo), run)


def _write_configs(job: PreparedJob, config, *, moved: bool, remote_root: str | None = None) -> None:
    train = extract_train_config(config, for_remote=moved, code_root=PACKAGE_ROOT, remote_root=remote_root)
    save_configs(config, train, job.job_dir)
    job.output_dir.mkdir(parents=True, exist_ok=True)
    (job.output_dir / PREEMPTED_FILE).unlink(missing_ok=True)  # a marker found after this job ends is its own


class _Lines:
    """A text stream whose complete lines go to the reporter (execute_local echoes into it)."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter, self.buffer = reporter, ""

    def write(self, text: str) -> None:
        self.buffer += text
        *lines, self.buffer = self.buffer.split("\n")
        for line in lines:
            self.reporter.job_line(line)

    def flush(self) -> None:
        pass


def run_here(job: PreparedJob, reporter: Reporter) -> None:
    """Steps 3-5 in this process (the CLI, local executor, attached): write configs, run the command,
    its output to the reporter; StageFailed unless it exits 0. Ctrl-C stops it (SIGTERM, then SIGKILL)."""
    clone_repos(job)
    _write_configs(job, job.job_config, moved=False)
    lines = _Lines(reporter)
    code = execute_local(plan_of(job), job.job_dir, echo=lines)
    if lines.buffer:
        reporter.job_line(lines.buffer)
    if code != 0:
        raise StageFailed(f"{job.stage.name}: the command exited {code}; log: {job.job_dir / 'job.log'}", code)


def submit_or_attach(job: PreparedJob, executor, reporter: Reporter):
    """Re-attach to a pending/running/completed job for this content key, else write configs and submit.

    A retry lands here again: the failed job is not reused, the new one gets its own job dir, and it
    runs with `resume: auto` (the output_dir holds the checkpoints of the attempt before).
    """
    existing = find_job(job.key)
    if existing is not None:
        existing.adopt(reporter.owner())  # cancelling the owning flow run now cancels the job too
        reporter.info(f"{job.stage.name}: re-attached to {existing.describe()} (same content key {job.key[:12]})")
        return existing
    if (job.job_dir / REF_FILE).exists():  # an earlier attempt used it
        job.job_dir = generate_job_dir(job.spec.name)
    config = job.job_config
    attempt = reporter.attempt()
    if attempt > 1 and "resume" in config and config.resume != "auto":
        config = copy.deepcopy(config)
        config.resume = "auto"  # how to run, not what: the content key stays the same
        reporter.info(f"{job.stage.name}: attempt {attempt} runs with resume: auto "
                      f"(the config said {job.job_config.resume})")
    paths = job_paths(executor, job.job_dir)
    created = [p for p in (job.job_dir, job.output_dir) if not p.exists()]
    try:
        clone_repos(job, executor)
        _write_configs(job, config, moved=paths.in_job != str(paths.local), remote_root=paths.code)
        handle = submit(executor, plan_of(job), job_dir=job.job_dir, content_key=job.key,
                        flow_run_id=reporter.owner())
    except BaseException:
        _undo_unsubmitted(job, created)
        raise
    reporter.info(f"{job.stage.name}: submitted {handle.describe()}; job dir {job.job_dir}")
    return handle


def _undo_unsubmitted(job: PreparedJob, created: list[Path]) -> None:
    """A submit that failed before the backend recorded a job (every backend saves its jobref.json
    before the point where a job can exist) leaves nothing half-written: the job dir and output dir
    this attempt created go again (an output dir only while empty: nothing else wrote there)."""
    if (job.job_dir / REF_FILE).exists():
        return  # a job may exist: keep its files for re-attaching and sweeping
    for path in created:
        if path == job.output_dir:
            with contextlib.suppress(OSError):  # not empty, or already gone
                path.rmdir()
        else:
            shutil.rmtree(path, ignore_errors=True)


def wait_streaming_logs(job: PreparedJob, handle, reporter: Reporter):
    """Wait for the job, its log lines to the reporter; JobError unless COMPLETED. Ctrl-C cancels the job.

    A failure that running again can fix (pipeline/retry.py:resume_reason) is raised as
    ResumableJobError, which the Prefect task's retry condition accepts.
    """
    tail: deque[str] = deque(maxlen=200)  # torchrun's failure report is at the end

    def on_log(line: str) -> None:
        tail.append(line)
        reporter.job_line(line)

    try:
        status = handle.wait(on_log=on_log, check=True)
    except KeyboardInterrupt:
        reporter.info(f"cancelling {handle.describe()} ...")
        reporter.info(f"{handle.describe()}: {handle.cancel().describe()}")
        raise
    except JobError as e:
        reason = resume_reason(e.status, job.output_dir, tail)
        if reason is None and e.status is not None:  # the streamed tail may miss the last lines: read the log
            reason = resume_reason(e.status, job.output_dir, handle.logs().splitlines()[-200:])
        if reason is None:
            raise
        raise ResumableJobError(f"{e}; resumable: {reason}", e.status) from e
    reporter.info(f"{handle.describe()}: {status.describe()}")
    return status


def read_metrics(output_dir: Path) -> list[dict[str, Any]]:
    """The trainer's metrics.jsonl rows (for the run report), [] when there are none."""
    path = Path(output_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def register_output(job: PreparedJob, handle, reporter: Reporter) -> str | None:
    """Publish the job's output as the next version of the stage's artifact; return "name:vN"."""
    if not job.stage.output:
        return None
    already = published_output(job)
    if already:
        reporter.info(f"{job.stage.name}: output already registered as {already}")
        return already
    result_path = job.output_dir / RESULT_FILE
    if not result_path.is_file():
        raise ArtifactError(f"{job.stage.name}: the job finished but wrote no {result_path}; nothing registered")
    result = json.loads(result_path.read_text())
    metadata = {
        "content_key": job.key,
        "producer": job.spec.name,
        "config": train_config(job),
        "result": result,
        "job_dir": str(job.job_dir if handle is None else handle.job_dir),
    }
    metrics = read_metrics(job.output_dir)  # read before the output moves into the registry
    source = job.output_dir / job.stage.output_subdir if job.stage.output_subdir else job.output_dir
    version = job.registry.publish(job.stage.output, source, metadata=metadata, lineage=job.lineage,
                                   move=job.own_output)
    reporter.info(f"{job.stage.name}: registered {version.ref} (lineage: {', '.join(job.lineage) or 'none'})")
    reporter.registered(job, handle, version.ref, result, metrics)
    return version.ref
