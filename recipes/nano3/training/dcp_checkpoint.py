"""Sharded checkpoints with torch.distributed.checkpoint (DCP): the trainers' format under ddp and fsdp.

    step_00000500/
      dcp/                   model + AdamW state: one __<rank>_0.distcp file per rank (its shards), .metadata
      hf/                    config.json, generation_config.json, tokenizer files (no weights)
      scheduler.pt           the LR schedule's state
      (trainer_state.json, rng/, COMPLETE as in checkpoint.py)

The state dicts come from `get_state_dict` (torch.distributed.checkpoint.state_dict): keys are
the model's parameter names whatever the wrapping (no DDP `module.` prefix, FSDP's DTensors
or plain tensors), the optimizer state is keyed by parameter name too, so DCP can load a
checkpoint written by N ranks into M ranks, under fsdp (it reads the pieces each rank's shards
need) or ddp / one process (every rank reads the full tensors). Under ddp the tensors are the
same on every rank: DCP's planner spreads their writes over the ranks (each written once).
`consolidate` turns the model part into an HF folder (model.safetensors) for the
registry/eval/SFT/RL, holding one full copy of the weights in one process (the optimizer
state is never read).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recipes.nano3.common.errors import DataError

SHARDS, HF, SCHEDULER = "dcp", "hf", "scheduler.pt"
_ASYNC_GROUP: list = []  # the gloo group async saves coordinate over (created once, by every rank)


def is_sharded(ckpt: Path) -> bool:
    return (ckpt / SHARDS / ".metadata").is_file()


@contextlib.contextmanager
def _one_process_quiet() -> Iterator[None]:
    """DCP warns "torch.distributed is disabled ..." when one process saves/loads: that is what we mean."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def _state(model, optimizer) -> dict:
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_sd, optim_sd = get_state_dict(model, optimizer)
    return {"model": model_sd, "optim": optim_sd}


def write_side_files(tmp: Path, *, model, tokenizer, scheduler) -> None:
    """What rank 0 adds next to the shards: the schedule and the HF config/tokenizer."""
    import torch

    from . import model as modellib

    torch.save({"scheduler": scheduler.state_dict()}, tmp / SCHEDULER)
    hf = tmp / HF
    hf.mkdir()
    inner = modellib.unwrap(model)
    modellib.generation_defaults(inner, tokenizer)
    inner.config.save_pretrained(str(hf))
    inner.generation_config.save_pretrained(str(hf))
    tokenizer.save_pretrained(str(hf))


def save(tmp: Path, *, model, optimizer, asynchronous: bool):
    """Every rank writes its shards into tmp/dcp. Returns None, or the future of an async save
    (done when every rank's shards and the .metadata are written)."""
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp

    state = _state(model, optimizer)
    if not asynchronous:
        with _one_process_quiet():
            dcp.save(state, checkpoint_id=str(tmp / SHARDS))
        return None
    group = None
    if dist.is_initialized():
        if not _ASYNC_GROUP:  # the writer thread's collectives must not share the training group (nccl)
            _ASYNC_GROUP.append(dist.new_group(backend="gloo"))
        group = _ASYNC_GROUP[0]
    with _one_process_quiet():
        return dcp.async_save(state, checkpoint_id=str(tmp / SHARDS), process_group=group)


def load(ckpt: Path, *, model, optimizer, scheduler) -> None:
    """Restore model + optimizer (resharded to this run's ranks) and the schedule."""
    import torch
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_state_dict

    state = _state(model, optimizer)
    with _one_process_quiet():
        dcp.load(state, checkpoint_id=str(ckpt / SHARDS))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    sched = dict(torch.load(ckpt / SCHEDULER, weights_only=True)["scheduler"])
    sched["lr_lambdas"] = [None] * len(sched.get("lr_lambdas") or [None])  # the schedule comes from the config
    scheduler.load_state_dict(sched)


def _model_tensors(ckpt: Path) -> dict[str, Any]:
    """Empty full-size tensors for the checkpoint's model entries (from .metadata), keyed by name."""
    import torch
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    meta = FileSystemReader(str(ckpt / SHARDS)).read_metadata()
    out = {}
    for key, md in meta.state_dict_metadata.items():
        if key.startswith("model.") and isinstance(md, TensorStorageMetadata):
            out[key[len("model."):]] = torch.empty(md.size, dtype=md.properties.dtype)
    return out


def consolidate(ckpt: Path, folder: Path) -> Path:
    """Write the checkpoint's model as an HF folder (model.safetensors, config, tokenizer) at `folder`,
    atomically (folder.parent/.tmp-<name>, then a rename). Call it in one process, no process group needed."""
    import torch
    import torch.distributed.checkpoint as dcp
    from transformers import AutoConfig, AutoModelForCausalLM

    from . import model as modellib

    weights = _model_tensors(ckpt)
    with _one_process_quiet():
        dcp.load({"model": weights}, checkpoint_id=str(ckpt / SHARDS), no_dist=True)
    config = AutoConfig.from_pretrained(str(ckpt / HF))
    with torch.device("meta"):
        hf_model = AutoModelForCausalLM.from_config(config)
    missing, unexpected = hf_model.load_state_dict(weights, strict=False, assign=True)
    params = dict(hf_model.named_parameters(remove_duplicate=False))
    still_meta = [k for k in missing if k in params and params[k].is_meta]
    if still_meta or unexpected:
        raise DataError(f"sharded checkpoint {ckpt} does not match its config: missing {still_meta[:3]}, "
                         f"unexpected {list(unexpected)[:3]}")
    tmp = folder.parent / f".tmp-{folder.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    modellib.quiet()
    hf_model.save_pretrained(str(tmp), safe_serialization=True)
    del weights, hf_model
    for src in (ckpt / HF).iterdir():  # tokenizer files and the generation config written at save time
        if src.name != "config.json":
            shutil.copy2(src, tmp / src.name)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def describe(ckpt: Path) -> dict:
    """Bytes per shard file (what each rank wrote)."""
    return {p.name: p.stat().st_size for p in sorted((ckpt / SHARDS).iterdir())} | \
        {"config": json.loads((ckpt / HF / "config.json").read_text()).get("model_type")}
