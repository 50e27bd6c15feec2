"""Eval task: perplexity, held-out exact match, RL reward and an lm-eval run for one model version.

Input: a model artifact version (any of nano3-{pretrain,sft,rl}-model:vN) plus the data it is
scored on. Output: results.json → nano3-eval, with lineage to the model version. An eval of a
version that already has one is a cache hit (same content key). Stage: pipeline/stages.py EVAL;
steps: pipeline/run.py:run_stage.
"""

from __future__ import annotations

from prefect import task

from pipeline.run import StageRequest
from pipeline.stages import EVAL
from tasks.policy import stage_task_options
from tasks.progress import run_reported


@task(**stage_task_options(EVAL))
def evaluate(request: StageRequest, model: str, pretrain_data: str, rl_data: str) -> str:
    return run_reported(EVAL, request, {"model": model, "pretrain_data": pretrain_data, "rl_data": rl_data})
