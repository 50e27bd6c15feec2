"""SFT task: fine-tune the pretrained model on chats, loss on assistant tokens (torchrun DDP).

Inputs: nano3-sft-data and nano3-pretrain-model, both pinned to this flow run's versions.
Output: `output_dir/model` → nano3-sft-model. The steps are in tasks/stage.py:run_stage.
"""

from __future__ import annotations

from prefect import task

from tasks.policy import stage_task_options
from tasks.stage import Stage, StageRequest, run_stage

SFT = Stage("sft", "recipes/nano3/stage1_sft/train.py", output="nano3-sft-model", output_subdir="model",
            inputs={"data": "data_path=${{art:{ref},path}}", "base_model": "base_model=${{art:{ref},path}}"})


@task(**stage_task_options(SFT))
def sft(request: StageRequest, data: str, base_model: str) -> str:
    return run_stage(SFT, request, {"data": data, "base_model": base_model})
