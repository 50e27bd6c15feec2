"""RL task: GRPO with verifiable rewards, rollouts on Ray actors, KL to the SFT model.

Inputs: nano3-rl-data and nano3-sft-model (policy init and frozen reference).
Output: `output_dir/model` → nano3-rl-model. Stage: pipeline/stages.py RL; steps: pipeline/run.py.
"""

from __future__ import annotations

from prefect import task

from pipeline.run import StageRequest
from pipeline.stages import RL
from tasks.policy import stage_task_options
from tasks.progress import run_reported


@task(**stage_task_options(RL))
def rl(request: StageRequest, data: str, base_model: str) -> str:
    return run_reported(RL, request, {"data": data, "base_model": base_model})
