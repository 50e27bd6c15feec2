"""What an eval writes (results.json, RESULT.json) and the comparison table across model versions.

results.json (output_dir of eval.py):
    {"model":   {"path", "artifact", "name", "config_digest"}   <- the evaluated model's own RESULT.json
     "metrics": {"perplexity", "valid_loss", "exact_match", "completion_exact_match", "rl_reward",
                 "rl_accuracy", "rl_format", "lmeval_qa_exact_match", "lmeval_qa_mc_acc", ...}  (flat)
     "exact_match_by_task": {...}, "lm_eval": {task: {metric: value}}, "counts": {...}}

RESULT.json carries the same flat `metrics` (the caller copies RESULT.json into the nano3-eval
artifact's metadata), so the table can be drawn from the registry without downloading files.
Metric keys have no dots: `${art:nano3-eval,metadata.result.metrics.rl_reward}` works.
"""

from __future__ import annotations

import json
from pathlib import Path

#: (metric key, column title, format); higher is better except perplexity.
COLUMNS = (
    ("perplexity", "perplexity ↓", "{:.2f}"),
    ("exact_match", "exact match", "{:.1%}"),
    ("completion_exact_match", "completion EM", "{:.1%}"),
    ("rl_reward", "RL reward", "{:.3f}"),
    ("rl_accuracy", "RL accuracy", "{:.1%}"),
    ("lmeval_qa_exact_match", "lm-eval qa EM", "{:.1%}"),
    ("lmeval_qa_mc_acc", "lm-eval qa MC", "{:.1%}"),
)
#: Rows in pipeline order; other artifacts after these, by name.
STAGE_ORDER = ("nano3-pretrain-model", "nano3-sft-model", "nano3-rl-model")


def flat_metrics(ppl: dict, qa: dict, rl: dict, lm: dict) -> dict:
    out = {**{k: ppl[k] for k in ("perplexity", "valid_loss") if k in ppl},  # absent when not selected
           **{k: v for k, v in qa.items() if not isinstance(v, dict)}, **rl}
    for task, values in lm.items():
        short = task.removeprefix("nano3_")
        out.update({f"lmeval_{short}_{m}": v for m, v in values.items()})
    return out


def load_results(path: str | Path) -> dict:
    p = Path(path)
    return json.loads((p / "results.json" if p.is_dir() else p).read_text())


def _order(label: str) -> tuple:
    name = label.split(":")[0]
    return (STAGE_ORDER.index(name) if name in STAGE_ORDER else len(STAGE_ORDER), label)


def comparison_table(entries: list[tuple[str, dict]], title: str = "nano3 model comparison"):
    """A rich Table: one row per (label, flat metrics), pipeline order; the best value per column in bold."""
    from rich.table import Table

    entries = sorted(entries, key=lambda e: _order(e[0]))
    table = Table(title=title, caption=gains_caption(entries) or None)
    table.add_column("model")
    shown = [c for c in COLUMNS if any(isinstance(m.get(c[0]), (int, float)) for _, m in entries)]
    for _, head, _ in shown:
        table.add_column(head, justify="right")
    for label, metrics in entries:
        cells = []
        for key, _, fmt in shown:
            value = metrics.get(key)
            values = [m[key] for _, m in entries if isinstance(m.get(key), (int, float))]
            best = (min if key == "perplexity" else max)(values) if values else None
            text = fmt.format(value) if isinstance(value, (int, float)) else "–"
            cells.append(f"[bold]{text}[/bold]" if value is not None and value == best and len(values) > 1 else text)
        table.add_row(label, *cells)
    return table


def gains_caption(entries: list[tuple[str, dict]]) -> str:
    """'SFT vs pretrain: exact match +x pts; RL vs SFT: RL reward +y' for the stages present."""
    by_stage = {label.split(":")[0]: m for label, m in entries}
    pre, sft, rl = (by_stage.get(n) for n in STAGE_ORDER)
    parts = []
    if pre and sft and "exact_match" in pre and "exact_match" in sft:
        parts.append(f"SFT vs pretrain: exact match {100 * (sft['exact_match'] - pre['exact_match']):+.1f} pts")
    if sft and rl and "rl_reward" in sft and "rl_reward" in rl:
        parts.append(f"RL vs SFT: RL reward {rl['rl_reward'] - sft['rl_reward']:+.3f}, accuracy "
                     f"{100 * (rl['rl_accuracy'] - sft['rl_accuracy']):+.1f} pts")
    return "; ".join(parts)


def compare_files(paths: list[str | Path]):
    """The table for several results.json files (or eval output folders), labelled by model artifact."""
    entries = []
    for p in paths:
        res = load_results(p)
        label = res.get("model", {}).get("artifact") or str(p)
        entries.append((label, res["metrics"]))
    return comparison_table(entries)
