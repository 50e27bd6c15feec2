"""The flow's final summary artifact (and `pinned_latest`, from pipeline/run.py, for the flows)."""

from __future__ import annotations

from typing import Any

from nemotron_core.artifacts import open_registry
from pipeline.run import pinned_latest  # noqa: F401  (flows/nightly_eval.py imports it from here)
from tasks.report import in_prefect_run, logger


def summarize(env, result: dict[str, Any]) -> None:
    """A table of every stage's artifact and, when evals ran, the metrics per model."""
    registry = open_registry(env.section("artifacts"))
    rows = [{"stage": stage, "artifact": ref} for stage, ref in result.items() if isinstance(ref, str)]
    eval_rows = []
    for model, eval_ref in (result.get("evals") or {}).items():
        metrics = (registry.resolve(eval_ref).metadata.get("result") or {}).get("metrics") or {}
        eval_rows.append({"model": result.get(model), "eval": eval_ref,
                          **{k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}})
    for row in rows + eval_rows:
        logger().info(" | ".join(f"{k}={v}" for k, v in row.items()))
    if in_prefect_run():
        from prefect.artifacts import create_table_artifact  # lazy: prefect.artifacts is a heavy import

        create_table_artifact(rows, key="nano3-full-stages", description="Artifacts of this nano3-full run")
        if eval_rows:
            create_table_artifact(eval_rows, key="nano3-full-evals", description="Eval results per model version")
