"""Pretrain task: a decoder learns the world from the tokenized blend (torchrun DDP).

Runs recipes/nano3/stage0_pretrain/train.py with `data_path` pinned to the data version
from this flow run, and registers `output_dir/model` (HF safetensors) as nano3-pretrain-model.
Stage: pipeline/stages.py PRETRAIN; steps: pipeline/run.py:run_stage.
"""

from __future__ import annotations

from prefect import task

from pipeline.run import StageRequest
from pipeline.stages import PRETRAIN
from tasks.policy import stage_task_options
from tasks.progress import run_reported


@task(**stage_task_options(PRETRAIN))
def pretrain(request: StageRequest, data: str) -> str:
    return run_reported(PRETRAIN, request, {"data": data})
