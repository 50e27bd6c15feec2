"""SFT task: fine-tune the pretrained model on chats, loss on assistant tokens (torchrun DDP).

Inputs: nano3-sft-data and nano3-pretrain-model, both pinned to this flow run's versions.
Output: `output_dir/model` → nano3-sft-model. Stage: pipeline/stages.py SFT; steps: pipeline/run.py.
"""

from __future__ import annotations

from prefect import task

from pipeline.run import StageRequest
from pipeline.stages import SFT
from tasks.policy import stage_task_options
from tasks.progress import run_reported


@task(**stage_task_options(SFT))
def sft(request: StageRequest, data: str, base_model: str) -> str:
    return run_reported(SFT, request, {"data": data, "base_model": base_model})
