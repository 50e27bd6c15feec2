"""The trainers' config: `SCRIPT --config train.yaml [key=value ...]`, checked before any work.

The toolkit writes train.yaml fully resolved (artifact references already pinned to
paths); by hand, `--config tiny` finds `<script dir>/config/tiny.yaml`. Every key is
checked against the schema below (a typo is a ConfigError naming the key, exit 2) and
every value against its type/range. `model` (pretrain only) takes Hugging Face config
keys for the chosen `arch`; they are checked against that config class by `model.py`.

Batch sizes are Megatron-style: `global_batch_size` samples per optimizer step =
`micro_batch_size` x data-parallel ranks x gradient-accumulation steps (derived).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nemotron_core.errors import ConfigError

from recipes.nano3.common import config as cfglib

RESUME = ("auto", "never")
DEVICES = ("auto", "cpu", "cuda")
DATA_PARALLEL = ("auto", "ddp", "fsdp")
BACKENDS = ("auto", "gloo", "nccl")
PRECISIONS = ("auto", "fp32", "bf16")
WANDB_MODES = ("auto", "offline", "online", "disabled")

COMMON = {
    "output_dir": "???",  # set by the caller (the job's output folder); everything is written under it
    "data_path": "???",  # the data artifact's folder (${art:...,path} in the configs)
    "seed": 1234,
    "resume": "auto",  # auto: continue from the newest complete checkpoint in output_dir | never: start over
    "runtime": {
        "device": "auto",  # auto (cuda when available) | cpu | cuda
        "backend": "auto",  # auto (nccl on GPU, gloo on CPU) | gloo | nccl; used when WORLD_SIZE > 1
        "precision": "auto",  # auto (bf16 autocast on GPU, fp32 on CPU) | fp32 | bf16
        "threads": "auto",  # CPU threads per process: auto = usable cores / processes on this node
        "compile": False,  # torch.compile the model
    },
    "train": {
        "micro_batch_size": 16,  # samples per forward/backward per rank
        "global_batch_size": 16,  # samples per optimizer step (all ranks, all accumulation steps)
        "max_steps": 1000,
        "grad_clip": 1.0,  # max global grad norm; 0 = off
        "moe_aux_loss_coef": 1.0e-3,  # x the routers' load-balancing loss (MoE models only; 0 = off)
    },
    # How the model is spread over the ranks. `data` and `activation_checkpointing` are applied
    # (parallelize.py); tensor/sequence/expert are the layout at scale written down with the config,
    # checked here and not applied yet (FSDP shards the experts with the rest of each block).
    # Sizes are ranks per group (1 = not split that way).
    "parallelism": {
        "data": "auto",  # ddp (replicate) | fsdp (FSDP2: shard weights, grads, optimizer state; DCP checkpoints)
        # | auto (fsdp when 16 bytes/param exceed half of one device's memory at several ranks)
        "activation_checkpointing": False,  # recompute each block's activations in the backward
        "tensor": 1,  # tensor-parallel ranks (attention/MLP/Mamba matrices split)
        "sequence": False,  # sequence parallelism over the tensor-parallel group
        "expert": 1,  # expert-parallel ranks: the routed experts of each MoE layer split across them
    },
    "optim": {
        "lr": 3.0e-3,
        "min_lr_ratio": 0.1,  # cosine decays to lr * min_lr_ratio at max_steps
        "warmup_steps": 50,
        "weight_decay": 0.1,  # on matrices only (not norms, biases)
        "beta1": 0.9,
        "beta2": 0.95,
        "eps": 1.0e-8,
    },
    "eval": {
        "interval": 200,  # steps between validation-loss evaluations (and at the end); 0 = only at the end
        "batches": 4,  # micro-batches of the valid split per evaluation (the same ones every time)
    },
    "log": {
        "interval": 10,  # steps between metrics rows
        "metrics_file": "metrics.jsonl",  # relative to output_dir
        "wandb": {
            "mode": "auto",  # auto: online when WANDB_API_KEY is set, else offline | offline | online | disabled
            "project": "nemotron-nano3",
            "entity": None,
            "name": None,  # run name; default: the output folder's name
        },
    },
    "checkpoint": {
        "interval": 500,  # steps between checkpoints (and one at the end); 0 = only at the end
        "keep": 2,  # newest complete checkpoints kept
        "async_save": False,  # write the DCP shards in the background (dcp.async_save); the last one is sync
    },
}

PRETRAIN = {
    **COMMON,
    "train": {**COMMON["train"], "seq_length": 64},
    "model": cfglib.ANY,  # {arch: nemotron_h | llama | ..., <HF config keys>, attn_implementation, vocab_multiple}
}

SFT = {
    **COMMON,
    "base_model": "???",  # the pretrained model: an HF folder, or a model artifact folder holding model/
}

SCHEMAS = {"pretrain": PRETRAIN, "sft": SFT}


def load(argv: list[str], *, script: Path, kind: str) -> dict:
    """The resolved, checked config of a trainer script as a plain dict."""
    if not any(a == "--config" or a.startswith("--config=") for a in argv):
        names = ", ".join(sorted(p.stem for p in (script.parent / "config").glob("*.yaml")))
        raise ConfigError(f"no config given; pass --config train.yaml (or a name under "
                          f"{script.parent.name}/config: {names})")
    cfg = cfglib.load_config(argv, script=script, defaults=SCHEMAS[kind], subdir="")
    check(cfg, kind)
    return cfg


def _get(cfg: dict, key: str) -> Any:
    value: Any = cfg
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _number(cfg: dict, key: str, lo: float, hi: float | None = None, *, integer: bool = False,
            lo_open: bool = False) -> None:
    v = _get(cfg, key)
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and (not integer or isinstance(v, int))
    ok = ok and (v > lo if lo_open else v >= lo) and (hi is None or v <= hi)
    if not ok:
        kind = "an integer" if integer else "a number"
        rng = f"{'>' if lo_open else '>='} {lo}" + (f" and <= {hi}" if hi is not None else "")
        raise ConfigError(f"config key '{key}': {v!r} must be {kind} {rng}")


def _path(cfg: dict, key: str) -> None:
    v = _get(cfg, key)
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(f"config key '{key}': {v!r} must be a path")


def check(cfg: dict, kind: str) -> None:
    """Type/range checks of every value; raises ConfigError naming the key."""
    for key in ("output_dir", "data_path") + (("base_model",) if kind == "sft" else ()):
        _path(cfg, key)
    _number(cfg, "seed", 0, integer=True)
    for key, choices in (("resume", RESUME), ("runtime.device", DEVICES), ("runtime.backend", BACKENDS),
                         ("runtime.precision", PRECISIONS), ("log.wandb.mode", WANDB_MODES),
                         ("parallelism.data", DATA_PARALLEL)):
        cfglib.choice(cfg, key, list(choices))
    threads = _get(cfg, "runtime.threads")
    if threads != "auto":
        _number(cfg, "runtime.threads", 1, integer=True)
    if not isinstance(_get(cfg, "runtime.compile"), bool):
        raise ConfigError(f"config key 'runtime.compile': {_get(cfg, 'runtime.compile')!r} must be true or false")
    for key in ("train.micro_batch_size", "train.global_batch_size", "train.max_steps", "log.interval",
                "checkpoint.keep", "eval.batches") + (("train.seq_length",) if kind == "pretrain" else ()):
        _number(cfg, key, 1, integer=True)
    for key in ("eval.interval", "checkpoint.interval", "optim.warmup_steps"):
        _number(cfg, key, 0, integer=True)
    _number(cfg, "train.grad_clip", 0)
    _number(cfg, "train.moe_aux_loss_coef", 0)
    for key in ("parallelism.tensor", "parallelism.expert"):
        _number(cfg, key, 1, integer=True)
    for key in ("parallelism.sequence", "parallelism.activation_checkpointing", "checkpoint.async_save"):
        if not isinstance(_get(cfg, key), bool):
            raise ConfigError(f"config key '{key}': {_get(cfg, key)!r} must be true or false")
    _number(cfg, "optim.lr", 0, lo_open=True)
    _number(cfg, "optim.min_lr_ratio", 0, 1)
    _number(cfg, "optim.weight_decay", 0)
    for key in ("optim.beta1", "optim.beta2"):
        _number(cfg, key, 0, 1)
    _number(cfg, "optim.eps", 0, lo_open=True)
    if cfg["train"]["global_batch_size"] % cfg["train"]["micro_batch_size"]:
        raise ConfigError(f"config key 'train.global_batch_size': {cfg['train']['global_batch_size']} must be a "
                          f"multiple of train.micro_batch_size ({cfg['train']['micro_batch_size']})")
    if not isinstance(_get(cfg, "log.metrics_file"), str) or Path(cfg["log"]["metrics_file"]).is_absolute() \
            or ".." in Path(cfg["log"]["metrics_file"]).parts:
        raise ConfigError(f"config key 'log.metrics_file': {_get(cfg, 'log.metrics_file')!r} must be a path "
                          f"relative to output_dir (scripts write only under output_dir)")
    if kind == "pretrain" and not isinstance(cfg.get("model"), dict):
        raise ConfigError("config key 'model': must be a mapping with at least 'arch' (e.g. llama)")


def grad_accum_steps(cfg: dict, world_size: int) -> int:
    """global_batch_size / (micro_batch_size x world_size), or a ConfigError when it does not divide."""
    t = cfg["train"]
    per_step = t["micro_batch_size"] * world_size
    if t["global_batch_size"] % per_step:
        raise ConfigError(f"config key 'train.global_batch_size': {t['global_batch_size']} is not a multiple of "
                          f"train.micro_batch_size x processes = {t['micro_batch_size']} x {world_size}; "
                          f"change one of them")
    return t["global_batch_size"] // per_step


def digest(cfg: dict) -> str:
    """What decides the training (not where it is written)."""
    return cfglib.config_digest(cfg)
