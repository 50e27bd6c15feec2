"""What a stage task does, top to bottom: `run_stage` below, one visible step per line.

Every stage task (tasks/data_prep.py, pretrain.py, sft.py, rl.py, eval.py) declares its
`Stage` (recipe script, output artifact, how upstream artifacts bind into its config) and
calls `run_stage`. The steps are the same for every stage, so they live here once rather
than being copied into seven files.

Decisions, written down:
- Inputs are pinned refs ("nano3-pretrain-data:v3"), never `latest`: the flow passes the exact
  versions produced upstream in the same run, bound into the recipe config as
  `${art:REF,path}` overrides, so job.yaml records them.
- `output_dir` is stable per content key (`<state>/outputs/<artifact>/<key[:16]>`, or
  `<profile.output_root>/...` for clusters): a retry after preemption finds the trainer's
  checkpoints there and resumes (`resume: auto`), and a re-attach finds the same output.
- A retry (tasks/policy.py decides which failures) lands in `submit_or_attach` again: the
  failed job is not reused, the new one gets its own job dir and `resume: auto`, and its
  trainer continues from the checkpoints the failed attempt left in output_dir.
- Registration checks the registry for a version with the same content key first, so a
  process that died between "job done" and "Prefect stored the result" never publishes twice.
- Content caching in Prefect (StageCache) uses the same key; SERIALIZABLE isolation with a
  file lock makes two concurrent flow runs compute each stage once (the second waits and
  reads the first one's result). Locks live under the state folder: one machine or a
  shared filesystem; a lock whose holder process died is free (tasks/locks.py).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from nemotron_core.contract import OUTPUT_DIR_KEY, RESULT_FILE
from nemotron_core.paths import PACKAGE_ROOT, state_dir


class StageRequest(BaseModel):
    """What the flow asks of one stage (Prefect parameters: no secrets here, ever)."""

    profile: str = "local"
    config: str = "tiny"
    overrides: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class Stage:
    name: str  # task name, e.g. "pretrain"
    script: str  # relative to the checkout
    output: str  # artifact name
    output_subdir: str = ""  # the part of output_dir that is the artifact ("" = all of it)
    inputs: dict[str, str] = field(default_factory=dict)  # slot -> "config_key=${{art:{ref},path}}..."

    @property
    def script_path(self) -> Path:
        return PACKAGE_ROOT / self.script


@dataclass
class PreparedJob:
    stage: Stage
    request: StageRequest
    inputs: dict[str, str]  # slot -> pinned ref
    spec: Any
    profile: Any
    registry: Any
    job_config: Any  # DictConfig: train config + run provenance
    key: str
    job_dir: Path
    output_dir: Path

    @property
    def lineage(self) -> list[str]:
        return sorted(set(self.job_config.run.artifacts.values()))


_PREPARED: dict[tuple, PreparedJob] = {}


def run_stage(stage: Stage, request: StageRequest, inputs: dict[str, str]) -> str:
    """Run one stage and return the pinned ref of its output artifact."""
    from nemotron_core.execution import create_executor

    job = prepare_job(stage, request, inputs)            # runspec, config + overrides, pinned inputs, content key
    if done := published_output(job):                    # this exact content is registered already
        return done
    executor = create_executor(job.profile, job.spec,    # local / torchrun / Ray head / Slurm, from the profile
                               job_config=job.job_config)  # (+ the config's ${auto_mount:} mounts)
    handle = submit_or_attach(job, executor)             # re-attach by content key, else write configs and submit
    wait_streaming_logs(job, handle)                     # job logs → Prefect logger; JobError unless COMPLETED
    return register_output(job, handle)                  # publish output_dir → "nano3-...:vN" with lineage


def prepare_job(stage: Stage, request: StageRequest, inputs: dict[str, str]) -> PreparedJob:
    """Runspec, profile, config with overrides and pinned inputs, content key, dirs (memoized)."""
    memo = (stage.name, request.model_dump_json(), tuple(sorted(inputs.items())))
    if memo in _PREPARED:
        return _PREPARED[memo]
    from omegaconf import OmegaConf

    from nemotron_core.artifacts import config_lookup, open_registry
    from nemotron_core.config import build_job_config, generate_job_dir, parse_config, set_artifact_lookup
    from nemotron_core.content_key import content_key, recipe_source_digest
    from nemotron_core.profiles import load_env
    from nemotron_core.runspec import parse

    spec = parse(stage.script_path)
    env = load_env()
    profile = env.profile(request.profile)
    registry = open_registry(env.section("artifacts"))
    set_artifact_lookup(config_lookup(registry))
    bindings = [template.format(ref=inputs[slot]) for slot, template in stage.inputs.items()]
    train = parse_config(spec.config_dir, request.config, [*request.overrides, *bindings])
    # output_dir is not part of the content: a placeholder now, the per-key folder below.
    OmegaConf.update(train, OUTPUT_DIR_KEY, "<set from the content key>", force_add=True)
    job = build_job_config(train, spec=spec, mode="run", profile=profile, dotlist=[*request.overrides, *bindings],
                           config_name=request.config)
    plain = OmegaConf.to_container(job, resolve=False)
    plain.pop("run")
    key = content_key(recipe=spec.name, source_digest=recipe_source_digest(spec.script_path), train_config=plain,
                      image=spec.image, inputs={ref: registry.cache_key_part(ref) for ref in job.run.artifacts.values()})
    root = Path(profile.get("output_root") or state_dir() / "outputs")
    output_dir = root / stage.output / key[:16]
    job[OUTPUT_DIR_KEY] = str(output_dir)
    prepared = PreparedJob(stage=stage, request=request, inputs=dict(inputs), spec=spec, profile=profile,
                           registry=registry, job_config=job, key=key, job_dir=generate_job_dir(spec.name),
                           output_dir=output_dir)
    _PREPARED[memo] = prepared
    return prepared


def train_config(job: PreparedJob) -> dict:
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(job.job_config, resolve=False)
    plain.pop("run", None)
    return plain


def published_output(job: PreparedJob) -> str | None:
    """The pinned ref of a version already published for this content key, if any."""
    from nemotron_core.errors import ArtifactError

    try:
        versions = job.registry.list(job.stage.output)
    except ArtifactError:
        return None
    for version in sorted(versions, key=lambda v: v.version, reverse=True):
        if version.metadata.get("content_key") == job.key:
            return version.ref
    return None


def submit_or_attach(job: PreparedJob, executor):
    """Re-attach to a pending/running/completed job for this content key, else write configs and submit.

    A Prefect retry of the task lands here again: the failed job is not reused, the new
    one gets its own job dir, and it runs with `resume: auto` (the output_dir holds the
    checkpoints of the attempt before).
    """
    from nemotron_core.config import extract_train_config, generate_job_dir, save_configs
    from nemotron_core.contract import PREEMPTED_FILE
    from nemotron_core.execution import find_job, job_paths, submit
    from nemotron_core.execution.refs import REF_FILE
    from nemotron_core.launch import plan_job

    from tasks.report import flow_run_id, logger

    existing = find_job(job.key)
    if existing is not None:
        existing.adopt(flow_run_id())  # cancelling this flow run now cancels the job too
        logger().info(f"{job.stage.name}: re-attached to {existing.describe()} (same content key {job.key[:12]})")
        return existing
    if (job.job_dir / REF_FILE).exists():  # an earlier attempt of this task used it
        job.job_dir = generate_job_dir(job.spec.name)
    config = job.job_config
    if task_attempt() > 1 and "resume" in config and config.resume != "auto":
        config = copy.deepcopy(config)
        config.resume = "auto"  # how to run, not what: the content key stays the same
        logger().info(f"{job.stage.name}: attempt {task_attempt()} runs with resume: auto "
                      f"(the config said {job.job_config.resume})")
    paths = job_paths(executor, job.job_dir)
    moved = paths.in_job != str(paths.local)
    train = extract_train_config(config, for_remote=moved, code_root=PACKAGE_ROOT, remote_root=paths.code)
    save_configs(config, train, job.job_dir)
    job.output_dir.mkdir(parents=True, exist_ok=True)
    (job.output_dir / PREEMPTED_FILE).unlink(missing_ok=True)  # a marker found after this job ends is its own
    plan = plan_job(job.spec, job.profile, job.job_dir / "train.yaml")
    handle = submit(executor, plan, job_dir=job.job_dir, content_key=job.key, flow_run_id=flow_run_id())
    logger().info(f"{job.stage.name}: submitted {handle.describe()}; job dir {job.job_dir}")
    return handle


def task_attempt() -> int:
    """Which attempt of the Prefect task run this is (1 outside Prefect)."""
    from prefect.context import TaskRunContext

    ctx = TaskRunContext.get()
    return max(1, ctx.task_run.run_count) if ctx is not None and ctx.task_run is not None else 1


def wait_streaming_logs(job: PreparedJob, handle):
    """Wait for the job, its log lines going to the Prefect logger; JobError unless COMPLETED.

    A failure that running again can fix (tasks/policy.py:resume_reason) is raised as
    ResumableJobError, which the task's retry condition accepts.
    """
    from collections import deque

    from nemotron_core.execution import JobError

    from tasks.policy import ResumableJobError, resume_reason
    from tasks.report import logger

    log = logger()
    tail: deque[str] = deque(maxlen=200)  # torchrun's failure report is at the end

    def on_log(line: str) -> None:
        tail.append(line)
        log.info(line)

    try:
        status = handle.wait(on_log=on_log, check=True)
    except JobError as e:
        reason = resume_reason(e.status, job.output_dir, tail)
        if reason is None and e.status is not None:  # the streamed tail may miss the last lines: read the log
            reason = resume_reason(e.status, job.output_dir, handle.logs().splitlines()[-200:])
        if reason is None:
            raise
        raise ResumableJobError(f"{e}; resumable: {reason}", e.status) from e
    log.info(f"{handle.describe()}: {status.describe()}")
    return status


def register_output(job: PreparedJob, handle=None) -> str:
    """Publish the job's output as the next version of the stage's artifact; return "name:vN"."""
    from nemotron_core.errors import ArtifactError

    from tasks.report import logger, read_metrics, stage_report

    already = published_output(job)
    if already:
        logger().info(f"{job.stage.name}: output already registered as {already}")
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
    version = job.registry.publish(job.stage.output, source, metadata=metadata, lineage=job.lineage, move=True)
    logger().info(f"{job.stage.name}: registered {version.ref} (lineage: {', '.join(job.lineage) or 'none'})")
    stage_report(job, handle, version.ref, result, metrics)
    return version.ref
