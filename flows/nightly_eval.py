"""`nano3-nightly-eval`: evaluate every model version that has no eval yet, every night.

    prefect deployment run nano3-nightly-eval/nightly     (scheduled 02:00 by deployments/prefect.yaml)

- Targets: each version of nano3-{pretrain,sft,rl}-model without a nano3-eval whose lineage
  names it, plus what the `latest`/`prod` aliases point at (re-evaluated only when that
  version has no eval). A version is evaluated once: re-running the flow finds nothing to do.
  A version whose record is unreadable is skipped with a warning (`nemotron artifacts verify`
  names it), never evaluated.
- One failed eval does not stop the others: every target is evaluated, the history is written,
  then the flow run fails naming the model versions whose eval failed (they are retried the
  next night: they still have no eval).
- New checkpoint → eval: nano3-full evaluates the models it produces as its last step, with
  the same eval task and content key, so a model nano3-full evaluated is skipped here and a
  model registered any other way (`nemotron nano3 model import`, a standalone training run)
  is picked up the next night. Nothing is evaluated twice.
- Each run appends to the eval history: a table artifact (key `nano3-eval-history`) of every
  eval so far, ordered by model and version, to show the trend across versions.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.cancellation import guard_flow_run
from flows.nano3_full import cancel_cluster_jobs
from nemotron_core.artifacts import open_registry
from nemotron_core.errors import ArtifactError, NemotronError
from nemotron_core.profiles import load_env
from pipeline.run import StageRequest
from pipeline.stages import MODEL_ARTIFACTS  # the eval's model upstreams, from the stage table
from tasks.eval import EVAL, evaluate
from tasks.policy import runtime_options
from tasks.report import in_prefect_run, logger
from tasks.summary import pinned_latest


def evaluated_models(registry) -> set[str]:
    """Model refs that already have an eval (from the nano3-eval lineage)."""
    try:
        evals = registry.list("nano3-eval")
    except ArtifactError:
        return set()
    return {ref for v in evals for ref in v.lineage if ref.split(":")[0] in MODEL_ARTIFACTS}


def eval_targets(registry, aliases: list[str]) -> list[str]:
    done = evaluated_models(registry)
    targets: set[str] = set()
    for name in MODEL_ARTIFACTS:
        try:
            versions = registry.list(name)
        except ArtifactError:
            continue
        targets.update(v.ref for v in versions if v.ref not in done and not v.problem)
        for alias in aliases:
            try:
                ref = registry.resolve(f"{name}:{alias}").ref
            except ArtifactError:
                continue
            if ref not in done:
                targets.add(ref)
    return sorted(targets)


def eval_history(registry) -> list[dict[str, Any]]:
    try:
        evals = registry.list("nano3-eval")
    except ArtifactError:
        return []
    rows = []
    for v in evals:
        if v.problem:  # an unreadable record has no lineage or metrics to show
            continue
        model = next((ref for ref in v.lineage if ref.split(":")[0] in MODEL_ARTIFACTS), "-")
        metrics = (v.metadata.get("result") or {}).get("metrics") or {}
        rows.append({"model": model, "eval": v.ref, "created": str(v.created)[:19],
                     **{k: val for k, val in metrics.items() if isinstance(val, (int, float))}})
    return sorted(rows, key=lambda r: (r["model"].split(":")[0], int(r["model"].rsplit(":v", 1)[-1] or 0)
                                       if ":v" in r["model"] else 0))


@flow(name="nano3-nightly-eval", on_cancellation=[cancel_cluster_jobs], on_crashed=[cancel_cluster_jobs])
def nightly_eval(profile: str = "local", config: str = "tiny", aliases: list[str] | None = None,
                 overrides: list[str] | None = None) -> dict[str, str]:
    """Evaluate the model versions without an eval; returns {model ref: eval ref}.

    `overrides`: dotlist overrides of the eval config (e.g. `lm_eval.enabled=false`).
    """
    guard_flow_run()
    env = load_env()
    env.profile(profile)
    registry = open_registry(env.section("artifacts"))
    for name in MODEL_ARTIFACTS:
        for ref, problem in unreadable_versions(registry, name):
            logger().warning(f"skipping {ref}: its record is unreadable ({problem})")
    targets = eval_targets(registry, aliases if aliases is not None else ["latest", "prod"])
    logger().info(f"{len(targets)} model version(s) to evaluate: {', '.join(targets) or 'none'}")
    results: dict[str, str] = {}
    failed: dict[str, str] = {}
    if targets:
        data, rl_data = pinned_latest(env, "nano3-pretrain-data"), pinned_latest(env, "nano3-rl-data")
        task = evaluate.with_options(**runtime_options(EVAL, force=False, env=env))
        request = StageRequest(profile=profile, config=config, overrides=list(overrides or []))
        futures = {ref: task.submit(request, model=ref, pretrain_data=data, rl_data=rl_data) for ref in targets}
        for ref, future in futures.items():
            try:
                results[ref] = future.result()
            except Exception as e:  # noqa: BLE001 - reported below, after the others and the history
                failed[ref] = " ".join(str(e).split())[:300]
    history = eval_history(registry)
    if in_prefect_run() and history:
        from prefect.artifacts import create_table_artifact  # lazy: prefect.artifacts is a heavy import

        create_table_artifact(history, key="nano3-eval-history", description="Every eval so far, by model version")
    if failed:
        raise NemotronError(f"eval failed for {len(failed)} of {len(targets)} model version(s): "
                            + "; ".join(f"{ref}: {why}" for ref, why in failed.items()))
    return results


def unreadable_versions(registry, name: str) -> list[tuple[str, str]]:
    """(ref, problem) of the versions of `name` whose record cannot be read."""
    try:
        return [(v.ref, v.problem) for v in registry.list(name) if v.problem]
    except ArtifactError:
        return []
