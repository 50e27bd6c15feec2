"""Data prep tasks: the synthetic world (or your files) → tokenizer, pretrain blend, SFT and RL data.

Each runs a `data_prep.py` recipe (launch = ray) and registers its output folder. SFT and
RL data are tokenized with the tokenizer shipped in the pretrain data artifact, pinned to
the exact version this flow run produced. Stages: pipeline/stages.py; steps: pipeline/run.py.
"""

from __future__ import annotations

from prefect import task

from pipeline.run import StageRequest
from pipeline.stages import DATA_PRETRAIN, DATA_RL, DATA_SFT
from tasks.policy import stage_task_options
from tasks.progress import run_reported


@task(**stage_task_options(DATA_PRETRAIN))
def data_prep_pretrain(request: StageRequest) -> str:
    """Pretrain data: tokenizer + Megatron bin/idx shards + blend.json → nano3-pretrain-data."""
    return run_reported(DATA_PRETRAIN, request, {})


@task(**stage_task_options(DATA_SFT))
def data_prep_sft(request: StageRequest, pretrain_data: str) -> str:
    """SFT data: chats, assistant-only loss mask, packed Parquet splits → nano3-sft-data."""
    return run_reported(DATA_SFT, request, {"pretrain_data": pretrain_data})


@task(**stage_task_options(DATA_RL))
def data_prep_rl(request: StageRequest, pretrain_data: str) -> str:
    """RL data: prompts with verifiable answers (JSONL + manifest) → nano3-rl-data."""
    return run_reported(DATA_RL, request, {"pretrain_data": pretrain_data})
