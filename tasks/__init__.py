"""Prefect tasks, one per stage of pipeline/stages.py, thin over pipeline/run.py:run_stage.

`stage_task(name)` is the task of a stage (the flow looks tasks up by stage name).
"""

from __future__ import annotations

from typing import Any


def stage_task(name: str) -> Any:
    # lazy: pulls in prefect, fsspec
    from tasks.data_prep import data_prep_pretrain, data_prep_rl, data_prep_sft
    from tasks.eval import evaluate
    from tasks.pretrain import pretrain
    from tasks.rl import rl
    from tasks.sft import sft

    return {"data_pretrain": data_prep_pretrain, "data_sft": data_prep_sft, "data_rl": data_prep_rl,
            "pretrain": pretrain, "sft": sft, "rl": rl, "eval": evaluate}[name]
