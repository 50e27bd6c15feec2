"""Checkpoints: written to a temp dir, renamed into place, found by `latest()`.

    output_dir/checkpoints/
      step_00000500/                 a complete checkpoint (the rename is the commit)
        model/                       HF layout: config.json, generation_config.json, model.safetensors, tokenizer
        optimizer.pt                 optimizer + LR scheduler state_dicts
        trainer_state.json           step, consumed_samples (the data position), tokens, elapsed, wandb id, ...
        rng/rank_00000.pt            python / numpy / torch (+ cuda) RNG states, one file per rank
        COMPLETE                     written last, just before the rename
      .tmp-step_00000600/            being written (or left by a kill): ignored, removed on the next start

A kill at any moment leaves either the previous checkpoints only, or a new complete
one: `latest()` considers only `step_<8 digits>` dirs that hold COMPLETE. In a DDP run
every rank writes its RNG file into the same temp dir, rank 0 writes the rest and renames.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path

from . import model as modellib
from .runtime import Runtime, barrier

CKPT_RE = re.compile(r"^step_(\d{8})$")
COMPLETE = "COMPLETE"
TMP_PREFIX = ".tmp-"


def name(step: int) -> str:
    return f"step_{step:08d}"


def complete(folder: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and CKPT_RE.match(p.name) and (p / COMPLETE).is_file()]
    return sorted(found, key=lambda p: int(CKPT_RE.match(p.name).group(1)))


def latest(folder: Path) -> Path | None:
    found = complete(folder)
    return found[-1] if found else None


def step_of(ckpt: Path) -> int:
    return int(CKPT_RE.match(ckpt.name).group(1))


def clean(folder: Path) -> None:
    """Remove what a killed save left behind: temp dirs and step dirs without COMPLETE (rank 0)."""
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        if p.is_dir() and (p.name.startswith(TMP_PREFIX) or (CKPT_RE.match(p.name) and not (p / COMPLETE).is_file())):
            shutil.rmtree(p, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    for p in [*folder.rglob("*"), folder]:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def rng_state() -> dict:
    import numpy as np
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save(folder: Path, *, rt: Runtime, model, tokenizer, optimizer, scheduler, state: dict, keep: int) -> Path:
    """Write checkpoint `state["step"]` atomically (all ranks call this); returns its path."""
    import torch

    final = folder / name(state["step"])
    tmp = folder / f"{TMP_PREFIX}{final.name}"
    if rt.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "rng").mkdir(parents=True)
    barrier(rt)
    torch.save(rng_state(), tmp / "rng" / f"rank_{rt.rank:05d}.pt")
    if rt.is_main:
        modellib.save(model, tokenizer, tmp / "model")
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt")
        (tmp / "trainer_state.json").write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
    barrier(rt)
    if rt.is_main:
        (tmp / COMPLETE).write_text(f"{state['step']}\n")
        _fsync_tree(tmp)
        if final.exists():  # a re-run of the same step (resume: never): replace it
            shutil.rmtree(final)
        os.rename(tmp, final)
        for old in complete(folder)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    barrier(rt)
    return final


def load(ckpt: Path, *, rt: Runtime, model, optimizer, scheduler) -> dict:
    """Restore weights, optimizer, scheduler and this rank's RNG; returns trainer_state.json."""
    import torch

    modellib.load_weights(model, ckpt / "model")
    opt = torch.load(ckpt / "optimizer.pt", map_location=rt.device, weights_only=True)
    optimizer.load_state_dict(opt["optimizer"])
    sched = dict(opt["scheduler"])
    sched["lr_lambdas"] = [None] * len(sched.get("lr_lambdas") or [None])  # the schedule comes from the config
    scheduler.load_state_dict(sched)
    rng = ckpt / "rng" / f"rank_{rt.rank:05d}.pt"
    if rng.is_file():  # absent when the world size grew: that rank keeps its fresh seed
        set_rng_state(torch.load(rng, weights_only=False))  # our own file: numpy/python states are pickled
    return json.loads((ckpt / "trainer_state.json").read_text())
