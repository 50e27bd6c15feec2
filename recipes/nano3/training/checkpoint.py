"""Checkpoints: written to a temp dir, renamed into place, found by `latest()`.

    output_dir/checkpoints/
      step_00000500/                 a complete checkpoint (the rename is the commit)
        dcp/ hf/ scheduler.pt        pretrain/SFT, ddp and fsdp alike: model + optimizer in DCP (every
                                     rank writes its part, dcp_checkpoint.py), config/tokenizer, schedule
        model/ optimizer.pt          full copy written by rank 0: RL (one process), and pretrain/SFT ddp
                                     checkpoints from before DCP (still loaded by ddp / one process)
        trainer_state.json           step, consumed_samples (the data position), tokens, elapsed, wandb id, ...
        rng/rank_00000.pt            python / numpy / torch (+ cuda) RNG states, one file per rank
        COMPLETE                     written last, just before the rename
      .tmp-step_00000600/            being written (or left by a kill): ignored, removed on the next start

A kill at any moment leaves either the previous checkpoints only, or a new complete
one: `latest()` considers only `step_<8 digits>` dirs that hold COMPLETE. Every rank writes
its RNG file (and, sharded, its shards) into the same temp dir; rank 0 writes the rest and
renames once all ranks are done. An async save (checkpoint.async_save, DCP only) returns
a `Pending` while the shards are written in the background; rank 0 commits it (COMPLETE +
rename) when the writes are done, so a kill meanwhile leaves only a temp dir.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import dcp_checkpoint
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


@dataclass
class Pending:
    """An async save: the shards are being written; `commit` makes it a checkpoint (rank 0)."""

    future: Any
    tmp: Path
    final: Path
    step: int
    keep: int

    def done(self) -> bool:
        return self.future.done()

    def wait(self) -> None:
        self.future.result()  # raises what the writer raised


def _commit(tmp: Path, final: Path, step: int, keep: int) -> None:
    """COMPLETE, fsync, rename, keep the newest `keep` (rank 0, once every rank's files are written)."""
    (tmp / COMPLETE).write_text(f"{step}\n")
    _fsync_tree(tmp)
    if final.exists():  # a re-run of the same step (resume: never): replace it
        shutil.rmtree(final)
    os.rename(tmp, final)
    for old in complete(final.parent)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def commit(pending: Pending, rt: Runtime) -> None:
    """Finish an async save: wait for this rank's writes; rank 0 commits (no collective)."""
    pending.wait()
    if rt.is_main:
        _commit(pending.tmp, pending.final, pending.step, pending.keep)


def save(folder: Path, *, rt: Runtime, model, tokenizer, optimizer, scheduler, state: dict, keep: int,
         sharded: bool = False, asynchronous: bool = False) -> Path | Pending:
    """Write checkpoint `state["step"]` atomically (all ranks call this); returns its path, or a
    `Pending` for an async sharded save (pass it to `commit`)."""
    import torch

    final = folder / name(state["step"])
    tmp = folder / f"{TMP_PREFIX}{final.name}"
    if rt.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "rng").mkdir(parents=True)
    barrier(rt)
    torch.save(rng_state(), tmp / "rng" / f"rank_{rt.rank:05d}.pt")
    if rt.is_main:
        if sharded:
            dcp_checkpoint.write_side_files(tmp, model=model, tokenizer=tokenizer, scheduler=scheduler)
        else:
            modellib.save(model, tokenizer, tmp / "model")
            torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
                       tmp / "optimizer.pt")
        (tmp / "trainer_state.json").write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
    future = dcp_checkpoint.save(tmp, model=model, optimizer=optimizer, asynchronous=asynchronous) \
        if sharded else None
    if future is not None:
        return Pending(future, tmp, final, state["step"], keep)
    barrier(rt)
    if rt.is_main:
        _commit(tmp, final, state["step"], keep)
    barrier(rt)
    return final


def load(ckpt: Path, *, rt: Runtime, model, optimizer, scheduler) -> dict:
    """Restore weights, optimizer, scheduler and this rank's RNG; returns trainer_state.json.
    A DCP checkpoint loads under ddp or fsdp at any number of ranks; a full one into ddp or one process."""
    import torch

    if dcp_checkpoint.is_sharded(ckpt):
        dcp_checkpoint.load(ckpt, model=model, optimizer=optimizer, scheduler=scheduler)
    else:
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
