"""The eval config: `eval.py --config eval.yaml [key=value ...]`, checked before any work.

    model_path     the model version to evaluate (any nano3-*-model artifact folder, or an HF folder)
    pretrain_data  nano3-pretrain-data: tokenizer/, the valid split (perplexity), world.json (held-out Q&A)
    rl_data        nano3-rl-data: held-out prompts with references (RL reward)
    heldout        which held-out splits, greedy generation length and batch, the format reward weight
    perplexity     window length, batch, how many batches (0 = the whole valid split)
    lm_eval        run the local lm-eval tasks (generate + multiple choice), their batch size
    tasks          which evaluations run ([] = all of this project's own); `nemotron nano3 eval -t TASK`
                   sets it. Own tasks: perplexity, heldout_qa, rl_reward, nano3_qa, nano3_qa_mc; any
                   other name is an lm-eval harness task (its dataset must be reachable by the job)
"""

from __future__ import annotations

import re
from pathlib import Path

from nemotron_core.errors import ConfigError, one_of

from recipes.nano3.common import config as cfglib
from recipes.nano3.rl.settings import load_checked
from recipes.nano3.training import settings as base

SCHEMA = {
    "output_dir": "???",  # set by the caller: results.json, samples, lm-eval files, RESULT.json
    "model_path": "???",  # the model to evaluate (the caller pins the version)
    "pretrain_data": "???",
    "rl_data": "???",
    "seed": 1234,
    "runtime": base.COMMON["runtime"],
    "heldout": {
        "splits": ["valid", "test"],  # held-out items: never in any training data of any stage
        "max_new_tokens": 16,
        "batch_size": 64,  # prompts per generate call
        "format_reward": 0.1,  # as grpo.format_reward in the RL config
    },
    "perplexity": {
        "seq_length": 64,
        "micro_batch_size": 16,
        "batches": 0,  # micro-batches of the valid split; 0 = all of it
    },
    "lm_eval": {
        "enabled": True,
        "batch_size": 32,
    },
    "tasks": [],
}
#: This project's own evaluations; the last two are lm-eval tasks it writes itself (lmeval.TASKS).
OWN_TASKS = ("perplexity", "heldout_qa", "rl_reward", "nano3_qa", "nano3_qa_mc")
_TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
SPLITS = ("train", "valid", "test")


def load(argv: list[str], *, script: Path) -> dict:
    return load_checked(argv, script=script, schema=SCHEMA, check=check)


def check(cfg: dict) -> None:
    for key in ("output_dir", "model_path", "pretrain_data", "rl_data"):
        base._path(cfg, key)
    base._number(cfg, "seed", 0, integer=True)
    for key, choices in (("runtime.device", base.DEVICES), ("runtime.precision", base.PRECISIONS)):
        cfglib.choice(cfg, key, list(choices))
    if cfg["runtime"]["threads"] != "auto":
        base._number(cfg, "runtime.threads", 1, integer=True)
    for key in ("heldout.max_new_tokens", "heldout.batch_size", "perplexity.seq_length", "perplexity.micro_batch_size",
                "lm_eval.batch_size"):
        base._number(cfg, key, 1, integer=True)
    base._number(cfg, "perplexity.batches", 0, integer=True)
    base._number(cfg, "heldout.format_reward", 0)
    splits = cfg["heldout"]["splits"]
    if not isinstance(splits, list) or not splits or any(s not in SPLITS for s in splits):
        raise ConfigError(f"config key 'heldout.splits': {splits!r} must be a non-empty list of "
                          f"{one_of(SPLITS)}")
    tasks = cfg["tasks"]
    if not isinstance(tasks, list) or any(not isinstance(t, str) or not _TASK_NAME.match(t) for t in tasks):
        raise ConfigError(f"config key 'tasks': {tasks!r} must be a list of task names (letters, digits, _ . -); "
                          f"this project's own: {', '.join(OWN_TASKS)}; others are lm-eval tasks")
    if not isinstance(cfg["lm_eval"]["enabled"], bool):
        raise ConfigError(f"config key 'lm_eval.enabled': {cfg['lm_eval']['enabled']!r} must be true or false")


def selected_tasks(cfg: dict) -> list[str]:
    """The tasks to run: the config's `tasks`, or every own task ([] or absent); duplicates dropped."""
    chosen = list(dict.fromkeys(cfg.get("tasks") or OWN_TASKS))
    if not cfg["lm_eval"]["enabled"]:  # lm_eval.enabled: false keeps its meaning: no lm-eval task runs
        chosen = [t for t in chosen if t in OWN_TASKS[:3]]
    return chosen
