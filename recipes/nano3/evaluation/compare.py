"""The comparison table across model artifacts, read from the registry: the newest nano3-eval of
each model artifact (pretrain, SFT, RL), one row each. Read-only; used by `nemotron evaluate`
(nemotron_cli/evaluate.py) and by deployments/quickstart.py after a run.
"""

from __future__ import annotations

import re
import sys

EVAL_ARTIFACT = "nano3-eval"  # = pipeline.stages.EVAL.output (recipes never import the pipeline)
MODEL_NAME = re.compile(r"-model$")


def latest_evals(registry) -> list[tuple[str, dict]]:
    """(model version ref, flat metrics) of the newest nano3-eval of each model artifact."""
    from nemotron_core.errors import ArtifactError

    from .report import load_results

    try:
        evals = registry.list(EVAL_ARTIFACT)
    except ArtifactError:
        return []
    newest: dict[str, tuple[int, str, dict]] = {}
    for v in evals:
        model_ref = next((r for r in v.lineage if MODEL_NAME.search(r.split(":")[0])), None)
        if model_ref is None:
            continue
        metrics = (v.metadata.get("result") or {}).get("metrics")
        if metrics is None:  # registered by hand: read the files
            metrics = load_results(registry.local_copy(v.ref))["metrics"]
        name = model_ref.split(":")[0]
        number = v.version or 0  # a W&B offline publish has no number yet
        if name not in newest or number >= newest[name][0]:
            newest[name] = (number, model_ref, metrics)
    return [(ref, metrics) for _, ref, metrics in newest.values()]


def print_comparison(registry, console=None) -> None:
    """The comparison table across model artifacts (latest eval of each), or a hint when there is none."""
    from rich.console import Console

    from .report import comparison_table

    console = console or Console(width=None if sys.stdout.isatty() else 160)  # a log file: no wrapped columns
    entries = latest_evals(registry)
    if not entries:
        console.print(f"no {EVAL_ARTIFACT} versions yet: run `nemotron evaluate nano3-sft-model` (or another model)")
        return
    console.print(comparison_table(entries))
