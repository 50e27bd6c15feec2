"""Pretrain task: a decoder learns the world from the tokenized blend (torchrun DDP).

Runs recipes/nano3/stage0_pretrain/train.py with `data_path` pinned to the data version
from this flow run, and registers `output_dir/model` (HF safetensors) as nano3-pretrain-model.
The steps are in tasks/stage.py:run_stage.
"""

from __future__ import annotations

from prefect import task

from tasks.policy import stage_task_options
from tasks.stage import Stage, StageRequest, run_stage

PRETRAIN = Stage("pretrain", "recipes/nano3/stage0_pretrain/train.py", output="nano3-pretrain-model",
                 output_subdir="model", inputs={"data": "data_path=${{art:{ref},path}}"})


@task(**stage_task_options(PRETRAIN))
def pretrain(request: StageRequest, data: str) -> str:
    return run_stage(PRETRAIN, request, {"data": data})
