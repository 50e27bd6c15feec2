"""Eval task: perplexity, held-out exact match, RL reward and an lm-eval run for one model version.

Input: a model artifact version (any of nano3-{pretrain,sft,rl}-model:vN) plus the data it is
scored on. Output: results.json → nano3-eval, with lineage to the model version. An eval of a
version that already has one is a cache hit (same content key). Steps: tasks/stage.py:run_stage.
"""

from __future__ import annotations

from prefect import task

from tasks.policy import stage_task_options
from tasks.stage import Stage, StageRequest, run_stage

EVAL = Stage("eval", "recipes/nano3/stage3_eval/eval.py", output="nano3-eval",
             inputs={"model": "model_path=${{art:{ref},path}}", "pretrain_data": "pretrain_data=${{art:{ref},path}}",
                     "rl_data": "rl_data=${{art:{ref},path}}"})


@task(**stage_task_options(EVAL))
def evaluate(request: StageRequest, model: str, pretrain_data: str, rl_data: str) -> str:
    return run_stage(EVAL, request, {"model": model, "pretrain_data": pretrain_data, "rl_data": rl_data})
