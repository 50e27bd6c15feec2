"""The RL trainer's config: `train.py --config train.yaml [key=value ...]`, checked before any work.

The sections the RL trainer shares with pretrain/SFT (runtime, optim, log, checkpoint, the
paths, seed, resume) have the same keys, defaults and checks as there (training/settings.py);
the RL-only sections are:

    rollout   Ray actors and sampling: `actors` x (`cpus_per_actor`, `gpus_per_actor`),
              `prompts_per_step` prompts x `samples_per_prompt` (the group size G) completions
              of at most `max_new_tokens`, at `temperature` / `top_p`
    grpo      `clip_eps` (policy-ratio clip), `kl_coef` (KL to the frozen reference),
              `format_reward` (added for a well-formed answer), `minibatches` (optimizer
              steps per rollout batch; from the second one on the ratio differs from 1 and the clip acts)
    train     `max_steps` (GRPO steps), `micro_batch_size` (sequences per forward/backward), `grad_clip`
    eval      `interval` (steps between held-out evals; 0 = start and end only), `prompts` (how many
              valid-split prompts, 0 = all), `batch_size` (prompts per generate call)
"""

from __future__ import annotations

from pathlib import Path

from nemotron_core.errors import ConfigError

from recipes.nano3.common import config as cfglib
from recipes.nano3.training import settings as base

SCHEMA = {
    "output_dir": "???",  # set by the caller; everything is written under it
    "data_path": "???",  # nano3-rl-data: {train,valid,test}.jsonl + manifest.json + tokenizer/
    "base_model": "???",  # nano3-sft-model: the initial policy AND the frozen KL reference
    "seed": 1234,
    "resume": "auto",  # auto: continue from the newest complete checkpoint in output_dir | never
    "runtime": base.COMMON["runtime"],  # the learner process (the Ray driver)
    "rollout": {
        "actors": 2,  # Ray actors sampling completions, each with its own copy of the policy
        "cpus_per_actor": 1,  # Ray num_cpus per actor = its torch threads
        "gpus_per_actor": 0,  # Ray num_gpus per actor (the learner takes a GPU no actor holds)
        "prompts_per_step": 32,
        "samples_per_prompt": 8,  # G: completions per prompt, normalized as one group
        "max_new_tokens": 16,
        "temperature": 1.0,
        "top_p": 1.0,
    },
    "grpo": {
        "clip_eps": 0.2,  # PPO-style clip of the policy ratio: [1 - eps, 1 + eps]
        "kl_coef": 0.04,  # weight of the per-token KL (k3 estimator) to the reference model
        "format_reward": 0.1,  # added to the reward of a well-formed answer (`answer<|im_end|>`)
        "minibatches": 1,  # optimizer steps per rollout batch (whole groups per minibatch)
    },
    "train": {
        "max_steps": 100,  # GRPO steps (one rollout batch each)
        "micro_batch_size": 64,  # sequences per forward/backward (gradient accumulation below that)
        "grad_clip": 1.0,
    },
    "optim": base.COMMON["optim"],
    "eval": {
        "interval": 25,  # steps between held-out evaluations (also at the start and the end); 0 = those only
        "prompts": 0,  # valid-split prompts per evaluation (greedy); 0 = all
        "batch_size": 64,  # prompts per generate call
    },
    "log": base.COMMON["log"],
    "checkpoint": base.COMMON["checkpoint"],
}


def load(argv: list[str], *, script: Path) -> dict:
    """The resolved, checked RL config as a plain dict."""
    return load_checked(argv, script=script, schema=SCHEMA, check=check)


def load_checked(argv: list[str], *, script: Path, schema: dict, check) -> dict:
    """`--config FILE|NAME [key=value ...]` against `schema` (names under <script dir>/config), then `check`."""
    if not any(a == "--config" or a.startswith("--config=") for a in argv):
        names = ", ".join(sorted(p.stem for p in (script.parent / "config").glob("*.yaml")))
        raise ConfigError(f"no config given; pass --config FILE.yaml (or a name under "
                          f"{script.parent.name}/config: {names})")
    cfg = cfglib.load_config(argv, script=script, defaults=schema, subdir="")
    check(cfg)
    return cfg


def _shared_view(cfg: dict) -> dict:
    """The config as the pretrain/SFT checker sees it: the sections RL shares, same keys."""
    t, e = cfg["train"], cfg["eval"]
    # GRPO adds no router load-balancing loss and has one learner process: no parallel layout to check.
    return {**cfg, "train": {"micro_batch_size": t["micro_batch_size"], "global_batch_size": t["micro_batch_size"],
                             "max_steps": t["max_steps"], "grad_clip": t["grad_clip"], "moe_aux_loss_coef": 0.0},
            "parallelism": base.COMMON["parallelism"],
            "eval": {"interval": e["interval"], "batches": 1}}


def check(cfg: dict) -> None:
    """Type/range checks of every value; raises ConfigError naming the key."""
    base.check(_shared_view(cfg), "sft")  # paths, seed, resume, runtime, optim, log, checkpoint, train numbers
    number = base._number
    for key in ("rollout.actors", "rollout.cpus_per_actor", "rollout.prompts_per_step", "rollout.max_new_tokens",
                "eval.batch_size"):
        number(cfg, key, 1, integer=True)
    number(cfg, "rollout.samples_per_prompt", 2, integer=True)  # a group of one has no baseline
    number(cfg, "rollout.gpus_per_actor", 0)
    number(cfg, "rollout.temperature", 0, lo_open=True)
    number(cfg, "rollout.top_p", 0, 1, lo_open=True)
    number(cfg, "grpo.clip_eps", 0, 1, lo_open=True)
    number(cfg, "grpo.kl_coef", 0)
    number(cfg, "grpo.format_reward", 0)
    number(cfg, "grpo.minibatches", 1, integer=True)
    number(cfg, "eval.prompts", 0, integer=True)
    prompts, mbs = cfg["rollout"]["prompts_per_step"], cfg["grpo"]["minibatches"]
    if prompts % mbs:
        raise ConfigError(f"config key 'grpo.minibatches': {mbs} must divide rollout.prompts_per_step ({prompts}) "
                          f"so that every minibatch holds whole groups")


def digest(cfg: dict) -> str:
    return base.digest(cfg)
