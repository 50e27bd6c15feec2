"""`nano3-full`: data prep → pretrain → SFT → RL → eval, chained by pinned artifact versions.

    prefect deployment run nano3-full/local          (deployments/, issue #10)
    nemotron nano3 pipe                              (the CLI runs the same flow)

Each stage consumes the exact versions its upstream produced in this run ("name:vN",
never `latest`). The three data preps: pretrain data first (it trains the tokenizer), then
SFT and RL data concurrently, and pretraining starts alongside them. Stages left out of
`stages` use the `latest` version of their output, pinned once when the flow starts (only
when a selected stage consumes it: `stages=["data_pretrain"]` needs nothing upstream).

Caching is by content (tasks/policy.py): a rerun with nothing changed is all cache hits;
an SFT override reruns SFT, RL and eval. `force=True` reruns every selected stage.
Cancelling the flow run (or the flow process crashing) cancels its cluster jobs.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.data_prep import DATA_PRETRAIN, DATA_RL, DATA_SFT, data_prep_pretrain, data_prep_rl, data_prep_sft
from tasks.eval import EVAL, evaluate
from tasks.pretrain import PRETRAIN, pretrain
from tasks.rl import RL, rl
from tasks.sft import SFT, sft
from tasks.stage import StageRequest

STAGES = {s.name: s for s in (DATA_PRETRAIN, DATA_SFT, DATA_RL, PRETRAIN, SFT, RL, EVAL)}
MODEL_STAGES = ("pretrain", "sft", "rl")
#: The stages whose artifacts each stage consumes.
INPUTS = {"data_pretrain": (), "data_sft": ("data_pretrain",), "data_rl": ("data_pretrain",),
          "pretrain": ("data_pretrain",), "sft": ("data_sft", "pretrain"), "rl": ("data_rl", "sft"),
          "eval": ("data_pretrain", "data_rl", *MODEL_STAGES)}


def cancel_cluster_jobs(flow, flow_run, state) -> None:
    """on_cancellation / on_crashed: end every job this flow run submitted (Slurm, Ray, local)."""
    from flows.cancellation import cancel_jobs

    cancel_jobs(str(flow_run.id))


def check_stages(stages: list[str] | None) -> list[str]:
    from nemotron_core.errors import ConfigError, NotBuiltError, did_you_mean

    selected = list(stages) if stages else list(STAGES)
    for name in selected:
        if name not in STAGES:
            raise ConfigError(f"unknown stage '{name}'{did_you_mean(name, STAGES)}; stages: {', '.join(STAGES)}")
        if not STAGES[name].script_path.is_file():
            raise NotBuiltError(f"stage '{name}' is not built yet: {STAGES[name].script} does not exist; "
                                f"leave it out of `stages`")
    return [name for name in STAGES if name in selected]  # pipeline order


@flow(name="nano3-full", on_cancellation=[cancel_cluster_jobs], on_crashed=[cancel_cluster_jobs])
def nano3_full(profile: str = "local", config: str = "tiny", stage_configs: dict[str, str] | None = None,
               overrides: dict[str, list[str]] | None = None, stages: list[str] | None = None,
               force: bool = False) -> dict[str, Any]:
    """Run the nano3 pipeline; returns the pinned artifact ref each stage produced or used."""
    from flows.cancellation import guard_flow_run
    from nemotron_core.profiles import load_env
    from tasks.policy import runtime_options
    from tasks.summary import pinned_latest, summarize

    guard_flow_run()  # cancel reaches the jobs even when Prefect's hooks do not run
    selected = check_stages(stages)
    env = load_env()
    env.profile(profile)  # an unknown profile fails here, before anything runs

    def request(name: str) -> StageRequest:
        return StageRequest(profile=profile, config=(stage_configs or {}).get(name, config),
                            overrides=list((overrides or {}).get(name, [])))

    consumed = {dep for name in selected for dep in INPUTS[name]}

    def run(task, name: str, **inputs):
        """Submit the stage when selected, else pin the latest version of its output if a selected stage needs it."""
        if name not in selected:
            return pinned_latest(env, STAGES[name].output) if name in consumed else None
        return task.with_options(**runtime_options(STAGES[name], force=force, env=env)).submit(request(name), **inputs)

    refs: dict[str, Any] = {}
    refs["data_pretrain"] = run(data_prep_pretrain, "data_pretrain")
    refs["data_sft"] = run(data_prep_sft, "data_sft", pretrain_data=refs["data_pretrain"])
    refs["data_rl"] = run(data_prep_rl, "data_rl", pretrain_data=refs["data_pretrain"])
    refs["pretrain"] = run(pretrain, "pretrain", data=refs["data_pretrain"])
    refs["sft"] = run(sft, "sft", data=refs["data_sft"], base_model=refs["pretrain"])
    if "rl" in selected or "eval" in selected:
        refs["rl"] = run(rl, "rl", data=refs["data_rl"], base_model=refs["sft"])
    evals: dict[str, Any] = {}
    if "eval" in selected:
        eval_options = runtime_options(EVAL, force=force, env=env)
        for model in MODEL_STAGES:
            evals[model] = evaluate.with_options(**eval_options).submit(
                request("eval"), model=refs[model], pretrain_data=refs["data_pretrain"], rl_data=refs["data_rl"])

    result = {name: (ref.result() if hasattr(ref, "result") else ref) for name, ref in refs.items()
              if ref is not None}
    result["evals"] = {model: future.result() for model, future in evals.items()}
    summarize(env, result)
    return result
