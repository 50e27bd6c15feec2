"""What a stage shows in the Prefect UI: a summary table, its curves, links.

Per stage: a table artifact (config, resources, job id, state, duration, artifact version),
the loss/reward curves from the trainer's metrics.jsonl as an embedded PNG (and, for a
mixture-of-experts model, the tokens per expert per layer as a heatmap PNG; a markdown
artifact with a data: URI PNG renders in both Prefect UIs, unsanitized), and links
to the job dir and the W&B run. `PrefectReporter` is what the stage tasks hand to
pipeline/run.py:run_stage: its messages and the job's log lines go to the Prefect run logger, the
try number and the owning flow run come from Prefect's context, and a registered output gets the
report above. Outside a Prefect run the artifacts are no-ops.
"""

from __future__ import annotations

import base64
import io
import logging
from typing import Any


def in_prefect_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext  # lazy: prefect.context is a heavy import

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def logger():
    if in_prefect_run():
        from prefect import get_run_logger  # lazy: prefect is a heavy import

        return get_run_logger()
    return logging.getLogger("nemotron.tasks")


def flow_run_id() -> str | None:
    if not in_prefect_run():
        return None
    from prefect.runtime import flow_run  # lazy: prefect.runtime is a heavy import

    return str(flow_run.id) if flow_run.id else None


class PrefectReporter:
    """pipeline.run.Reporter for a Prefect task run."""

    def info(self, message: str) -> None:
        logger().info(message)

    def job_line(self, line: str) -> None:
        logger().info(line)

    def attempt(self) -> int:
        """Which attempt of the Prefect task run this is (1 outside Prefect)."""
        from prefect.context import TaskRunContext  # lazy: prefect.context is a heavy import

        ctx = TaskRunContext.get()
        return max(1, ctx.task_run.run_count) if ctx is not None and ctx.task_run is not None else 1

    def owner(self) -> str | None:
        return flow_run_id()

    def registered(self, job, handle, ref: str, result: dict[str, Any], metrics: list[dict[str, Any]]) -> None:
        stage_report(job, handle, ref, result, metrics)


def curves_png(rows: list[dict[str, Any]], title: str) -> bytes | None:
    """Loss (and reward/accuracy when present) against step, as PNG bytes."""
    series = [k for k in ("loss", "valid_loss", "reward", "accuracy") if any(k in r for r in rows)]
    if not series:
        return None
    import matplotlib  # lazy: matplotlib is a heavy import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: matplotlib.pyplot is a heavy import

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    for key in series:
        points = [(r["step"], r[key]) for r in rows if key in r and r[key] is not None]
        ax.plot([p[0] for p in points], [p[1] for p in points], label=key)
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def experts_png(rows: list[dict[str, Any]], title: str) -> bytes | None:
    """Mixture-of-experts utilisation: each expert's share of its layer's routed tokens, per MoE
    layer, over the first and last logged windows (heatmaps; an even split is 1/experts, a collapsed
    router shows one bright cell per row). None when the run logged no `expert_tokens`."""
    windows = [r for r in rows if isinstance(r.get("expert_tokens"), list) and r["expert_tokens"]]
    if not windows:
        return None
    import matplotlib  # lazy: matplotlib is a heavy import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: matplotlib.pyplot is a heavy import

    picks = [windows[0], windows[-1]] if len(windows) > 1 else [windows[0]]
    fig, axes = plt.subplots(1, len(picks), figsize=(3.4 * len(picks) + 0.8, 3.0), dpi=100, squeeze=False,
                             layout="constrained")
    image = None
    for ax, row in zip(axes[0], picks):
        share = [[c / max(1, sum(layer)) for c in layer] for layer in row["expert_tokens"]]
        image = ax.imshow(share, aspect="auto", cmap="viridis", vmin=0.0, vmax=max(max(s) for s in share))
        ax.set_title(f"step {row['step']} (imbalance {row.get('expert_imbalance', '-')})", fontsize=9)
        ax.set_xlabel("expert")
        ax.set_ylabel("MoE layer")
        ax.set_yticks(range(len(share)))
    fig.colorbar(image, ax=list(axes[0]), label="share of tokens")
    fig.suptitle(title, fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def stage_report(job, handle, ref: str, result: dict[str, Any], metrics: list[dict[str, Any]]) -> None:
    if not in_prefect_run():
        return
    # lazy: prefect.artifacts is a heavy import
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    name = job.stage.name
    status = handle.status() if handle is not None else None
    plan_resources = f"{job.profile.get('nodes', job.spec.resources.nodes)} node(s) × " \
                     f"{job.profile.get('gpus_per_node', job.spec.resources.gpus_per_node)} GPU(s)"
    rows = [
        {"field": "artifact", "value": ref},
        {"field": "config", "value": f"{job.request.config} + {', '.join(job.request.overrides) or 'no overrides'}"},
        {"field": "profile", "value": f"{job.profile.name} ({job.profile.executor})"},
        {"field": "resources", "value": plan_resources},
        {"field": "job", "value": handle.describe() if handle is not None else "-"},
        {"field": "state", "value": status.describe() if status is not None else "-"},
        {"field": "duration_s", "value": _duration(metrics, result)},
        {"field": "inputs", "value": ", ".join(job.lineage) or "-"},
        {"field": "content_key", "value": job.key[:16]},
    ]
    create_table_artifact(rows, key=f"{_key(name)}-summary", description=f"{name}: {ref}")
    png = curves_png(metrics, f"{name}: {ref}")
    if png:
        data = base64.b64encode(png).decode()
        create_markdown_artifact(f"### {name} curves ({ref})\n\n![curves](data:image/png;base64,{data})\n",
                                 key=f"{_key(name)}-curves", description=f"{name} training curves")
    png = experts_png(metrics, f"{name}: expert utilisation ({ref})")
    if png:
        data = base64.b64encode(png).decode()
        create_markdown_artifact(f"### {name} expert utilisation ({ref})\n\n![experts](data:image/png;base64,{data})\n",
                                 key=f"{_key(name)}-experts", description=f"{name} tokens per expert per MoE layer")
    job_dir = handle.job_dir if handle is not None else job.job_dir
    create_link_artifact(f"file://{job_dir}", link_text=f"{name} job dir", key=f"{_key(name)}-job-dir")
    wandb = (result or {}).get("wandb") or {}
    if wandb.get("url") or wandb.get("dir"):
        target = wandb.get("url") or f"file://{wandb['dir']}"
        create_link_artifact(target, link_text=f"{name} W&B run", key=f"{_key(name)}-wandb")


def _duration(metrics: list[dict[str, Any]], result: dict[str, Any]) -> str:
    for source in ((result or {}).get("elapsed"), (result or {}).get("seconds"), metrics[-1].get("elapsed") if metrics else None):
        if isinstance(source, (int, float)):
            return f"{source:.1f}"
    return "-"


def _key(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower())
