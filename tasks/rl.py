"""RL task: GRPO with verifiable rewards, rollouts on Ray actors, KL to the SFT model.

Inputs: nano3-rl-data and nano3-sft-model (policy init and frozen reference).
Output: `output_dir/model` → nano3-rl-model. The steps are in tasks/stage.py:run_stage.
"""

from __future__ import annotations

from prefect import task

from tasks.policy import stage_task_options
from tasks.stage import Stage, StageRequest, run_stage

RL = Stage("rl", "recipes/nano3/stage2_rl/train.py", output="nano3-rl-model", output_subdir="model",
           inputs={"data": "data_path=${{art:{ref},path}}", "base_model": "base_model=${{art:{ref},path}}"})


@task(**stage_task_options(RL))
def rl(request: StageRequest, data: str, base_model: str) -> str:
    return run_stage(RL, request, {"data": data, "base_model": base_model})
