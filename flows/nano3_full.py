"""`nano3-full`: data prep → pretrain → SFT → RL → eval, chained by pinned artifact versions.

    prefect deployment run nano3-full/local          (deployments/, issue #10)
    nemotron nano3 pipe                              (the CLI runs the same flow)

Each stage consumes the exact versions its upstream produced in this run ("name:vN",
never `latest`). The three data preps: pretrain data first (it trains the tokenizer), then
SFT and RL data concurrently, and pretraining starts alongside them. Stages left out of
`stages` use the `latest` version of their output, pinned once when the flow starts (only
when a selected stage consumes it: `stages=["data_pretrain"]` needs nothing upstream).

The stages and their inputs are pipeline/stages.py's table; each task runs
pipeline/run.py:run_stage. Caching is by content (tasks/policy.py): a rerun with nothing changed is all cache hits;
an SFT override reruns SFT, RL and eval. `force=True` reruns every selected stage.
Cancelling the flow run (or the flow process crashing) cancels its cluster jobs.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.cancellation import cancel_jobs, guard_flow_run
from nemotron_core.profiles import load_env
from pipeline.run import StageRequest, pinned_latest
from pipeline.stages import STAGES, check_stages, consumed  # STAGES is also read from here (tasks/stage_limits.py)
from tasks import stage_task
from tasks.policy import runtime_options
from tasks.summary import summarize


def cancel_cluster_jobs(flow, flow_run, state) -> None:
    """on_cancellation / on_crashed: end every job this flow run submitted (Slurm, Ray, local)."""
    cancel_jobs(str(flow_run.id))


@flow(name="nano3-full", on_cancellation=[cancel_cluster_jobs], on_crashed=[cancel_cluster_jobs])
def nano3_full(profile: str = "local", config: str = "tiny", stage_configs: dict[str, str] | None = None,
               overrides: dict[str, list[str]] | None = None, stages: list[str] | None = None,
               force: bool = False) -> dict[str, Any]:
    """Run the nano3 pipeline; returns the pinned artifact ref each stage produced or used
    (and under "evals", the eval ref per evaluated model stage)."""
    guard_flow_run()  # cancel reaches the jobs even when Prefect's hooks do not run
    selected = check_stages(stages)
    env = load_env()
    env.profile(profile)  # an unknown profile fails here, before anything runs
    needed = consumed(selected)

    # Walk the stage table in pipeline order: a selected stage is submitted once per run of it
    # (the eval once per model), its inputs the futures of its upstreams; a stage left out is
    # pinned to the `latest` of its output when a selected stage consumes it.
    refs: dict[str, Any] = {}
    fanned: dict[str, dict[str, Any]] = {}
    for name, stage in STAGES.items():
        if name not in selected:
            refs[name] = pinned_latest(env, stage.output) if name in needed else None
            continue
        task = stage_task(name).with_options(**runtime_options(stage, force=force, env=env))
        request = StageRequest(profile=profile, config=(stage_configs or {}).get(name, config),
                               overrides=list((overrides or {}).get(name, [])))
        futures = {fan: task.submit(request, **{slot: refs[up] for slot, up in slots.items()})
                   for fan, slots in stage.runs()}
        if None in futures:
            refs[name] = futures[None]
        else:
            fanned[name] = futures

    result = {name: (ref.result() if hasattr(ref, "result") else ref) for name, ref in refs.items()
              if ref is not None}
    result["evals"] = {model: future.result() for model, future in fanned.get("eval", {}).items()}
    summarize(env, result)
    return result
