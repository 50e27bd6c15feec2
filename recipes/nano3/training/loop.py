"""The training step and loop, shared by pretrain and SFT.

`train_step` is one optimizer step: for each of this rank's micro-batches, forward
(under bf16 autocast on GPU), summed cross-entropy over the targets, backward (DDP/FSDP
gradient reduction only on the last micro-batch); the loss is divided by the number of
targets of the whole global batch, so gradient accumulation and data parallelism give
the same update as one big batch (and SFT's masked tokens weigh nothing). A mixture-of-experts
model (NemotronH) adds `train.moe_aux_loss_coef` x the routers' load-balancing loss (moe.py),
averaged over the micro-batches. Then gradient clipping, AdamW, the LR schedule.

`fit` runs the loop: spread the model over the ranks (parallelize.py: DDP or FSDP2), resume
from the newest complete checkpoint (resume: auto; DCP: under ddp or fsdp, at any number of ranks), global
sample index -> micro-batches for this rank, metrics every log.interval steps (MoE: tokens
per expert, the aux loss), valid loss every eval.interval steps, checkpoints every
checkpoint.interval steps and at the end (async ones committed when written; the last one and
a preemption's are synchronous), stop signals -> checkpoint -> `Preempted`. It ends with the final
model exported to output_dir/model (consolidated from the DCP shards) and returns the run
summary for RESULT.json.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemotron_core.errors import ConfigError

from recipes.nano3.common.outputs import RESULT

from . import checkpoint, dcp_checkpoint, optim, parallelize, settings
from . import model as modellib
from .data import IGNORE
from .metrics import Metrics
from .moe import RouterStats, imbalance
from .runtime import Runtime, all_sum, autocast, barrier
from . import signals
from .signals import PREEMPTED_FILE, Preempted


def loss_sum(model, batch, rt: Runtime):
    """Summed next-token cross-entropy over the batch's targets (fp32 logits)."""
    import torch.nn.functional as F

    with autocast(rt):
        logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False,
                       **modellib.packed_kwargs(model, batch.position_ids)).logits
    return F.cross_entropy(logits.float().flatten(0, 1), batch.targets.flatten(), ignore_index=IGNORE,
                           reduction="sum")


def next_batches(data, start: int, *, rt: Runtime, micro: int, accum: int) -> tuple[list, int]:
    """(this rank's micro-batches of the global batch that starts at sample `start`, their target count).

    Targets are counted on the CPU, before the copy to the GPU (no device sync).
    """
    batches = [data.batch(start + (k * rt.world_size + rt.rank) * micro, micro) for k in range(accum)]
    return [b.to(rt.device) for b in batches], sum(b.num_targets() for b in batches)


def train_step(model, optimizer, scheduler, micro_batches: list, *, rt: Runtime, grad_clip: float,
               num_targets: float, moe: RouterStats | None = None, aux_coef: float = 0.0):
    """One optimizer step; returns (this rank's share of the mean loss, grad norm or None) as tensors.

    `num_targets` counts the targets of the global batch (all ranks); the mean of the
    returned loss over ranks is the global batch's mean token loss (cross-entropy only: the
    MoE aux loss, when `moe` has routers, is in the gradient and in `moe.last_aux`).
    """
    import torch

    scale = rt.world_size / max(1.0, num_targets)  # DDP and FSDP average gradients over ranks
    total = torch.zeros((), device=rt.device)
    aux_total = torch.zeros((), device=rt.device)
    routed = moe is not None and moe.active
    last = len(micro_batches) - 1
    for k, mb in enumerate(micro_batches):
        with parallelize.grad_sync(model, k == last or not rt.distributed):
            if routed:
                moe.recording = True
            loss = loss_sum(model, mb, rt) * scale
            objective = loss
            if routed:
                moe.recording = False
                aux = moe.aux_loss()
                if aux is not None:
                    aux_total += aux.detach() / len(micro_batches)
                    if aux_coef:  # a mean over micro-batches; the gradient mean makes it one over ranks
                        objective = loss + aux * (aux_coef / len(micro_batches))
            objective.backward()
        total += loss.detach()
    if routed:
        moe.last_aux = aux_total
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip) if grad_clip > 0 else None
    norm = parallelize.local(norm)  # FSDP: a DTensor of the global norm
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return total, norm


def evaluate(model, data, *, rt: Runtime, batches: int, micro: int, lockstep: bool = False) -> float:
    """Mean token loss over the first `batches` micro-batches of `data` (the same every time).

    `lockstep` (FSDP: each forward all-gathers with every rank): all ranks run the same number of
    forwards, a rank past the last batch repeats batch 0 and does not count it."""
    import math

    import torch

    model.eval()
    s, n = 0.0, 0
    end = math.ceil(batches / rt.world_size) * rt.world_size if lockstep else batches
    with torch.no_grad():
        for k in range(rt.rank, end, rt.world_size):
            b = data.batch((k if k < batches else 0) * micro, micro).to(rt.device)
            loss = float(loss_sum(model, b, rt))
            if k < batches:
                s += loss
                n += b.num_targets()
    model.train()
    s, n = all_sum(rt, [s, n])
    return s / max(1, n)


def moe_row(rt: Runtime, moe: RouterStats, aux: float) -> dict:
    """The metrics row's MoE fields for a log window: tokens per expert per MoE layer (all ranks),
    the busiest expert's share relative to an even split (max over layers), the mean aux loss."""
    counts = moe.take_counts()
    flat = all_sum(rt, [float(c) for layer in counts for c in layer] + [aux])
    aux, it, summed = flat[-1] / rt.world_size, iter(flat[:-1]), []
    for layer in counts:
        summed.append([int(next(it)) for _ in layer])
    return {"moe_aux_loss": round(aux, 6), "expert_imbalance": imbalance(summed), "expert_tokens": summed}


@dataclass
class Job:
    """What a stage hands to `fit`."""

    name: str  # e.g. "nano3/pretrain"
    cfg: dict
    rt: Runtime
    model: Any  # an HF causal LM, fp32, on CPU
    tokenizer: Any
    train: Any  # .batch(start, n) -> Batch, .seq_length
    valid: Any | None
    out: Path


def _prepare_output(job: Job) -> Path:
    """Drop what a previous attempt left that must not survive (rank 0); returns the checkpoint dir."""
    ckpts = job.out / "checkpoints"
    if job.rt.is_main:
        job.out.mkdir(parents=True, exist_ok=True)
        (job.out / RESULT).unlink(missing_ok=True)
        (job.out / PREEMPTED_FILE).unlink(missing_ok=True)
        if job.cfg["resume"] == "never":
            shutil.rmtree(ckpts, ignore_errors=True)
        checkpoint.clean(ckpts)
    barrier(job.rt)
    return ckpts


def _seed(seed: int, rank: int) -> None:
    import numpy as np
    import torch

    random.seed(seed + rank)
    np.random.seed(seed + rank)
    torch.manual_seed(seed + rank)


def export_model(ckpt: Path, out: Path) -> Path:
    """Hard-link (or copy) the checkpoint's HF model to out/model, atomically."""
    final, tmp = out / "model", out / ".tmp-model"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for src in (ckpt / "model").iterdir():
        try:
            os.link(src, tmp / src.name)
        except OSError:
            shutil.copy2(src, tmp / src.name)
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)
    return final


def fit(job: Job) -> dict:
    import torch

    cfg, rt, out = job.cfg, job.rt, job.out
    t, ev, lg, ck = cfg["train"], cfg["eval"], cfg["log"], cfg["checkpoint"]
    accum = settings.grad_accum_steps(cfg, rt.world_size)
    micro, gbs, max_steps = t["micro_batch_size"], t["global_batch_size"], t["max_steps"]
    ckpts = _prepare_output(job)

    model = job.model.to(rt.device)
    par = cfg["parallelism"]
    mode = parallelize.choose(par["data"], parameters=sum(p.numel() for p in model.parameters()),
                              world_size=rt.world_size, memory=parallelize.device_memory(rt))
    # FSDP shards in place (model's parameters become DTensors): the optimizer is built on them
    net = parallelize.apply(model, rt, mode, checkpointing=par["activation_checkpointing"])
    optimizer, scheduler = optim.build(model, cfg["optim"], max_steps, rt.device_type)
    state = {"step": 0, "consumed_samples": 0, "tokens": 0, "elapsed": 0.0, "wandb_id": None,
             "config_digest": settings.digest(cfg), "resumes": 0, "loss": None, "valid_loss": None}
    _seed(cfg["seed"], rt.rank)
    ckpt = checkpoint.latest(ckpts) if cfg["resume"] == "auto" else None
    if ckpt is not None:
        if parallelize.is_sharded(net) and not dcp_checkpoint.is_sharded(ckpt):
            raise ConfigError(f"config key 'parallelism.data': {ckpt} is a full-copy checkpoint (model/ + "
                              f"optimizer.pt, written by ddp before checkpoints were DCP) and fsdp cannot load "
                              f"it; resume it with parallelism.data=ddp (its next checkpoint is DCP, which fsdp "
                              f"loads), or start over with resume=never")
        saved = checkpoint.load(ckpt, rt=rt, model=model, optimizer=optimizer, scheduler=scheduler)
        if rt.is_main and saved.get("config_digest") != state["config_digest"]:
            print(f"warning: {ckpt} was written with another config; continuing with this one", flush=True)
        state.update({**saved, "config_digest": state["config_digest"]})
        state["resumes"] += 1
        print(f"resumed from {ckpt} (step {state['step']}, {state['consumed_samples']} samples)", flush=True)
    resumed_at = state["step"] if ckpt is not None else None

    if rt.compile:
        net = torch.compile(net)
    net.train()
    moe = RouterStats(model)  # inert for a model without routers
    aux_coef = t["moe_aux_loss_coef"]
    window_aux = 0.0

    metrics = Metrics(out / lg["metrics_file"], enabled=rt.is_main, wcfg=lg["wandb"], run_name=out.name,
                      config=cfg, resume_step=resumed_at, wandb_id=state["wandb_id"])
    state["wandb_id"] = metrics.wandb_id
    flag = signals.install()  # (again) after wandb.init, which may install handlers of its own
    last_saved = resumed_at
    seq = job.train.seq_length
    pending: checkpoint.Pending | None = None  # an async save being written

    def settle(wait: bool) -> None:
        """Commit the async save once its writes are done (now, when `wait`)."""
        nonlocal pending
        if pending is not None and (wait or pending.done()):
            checkpoint.commit(pending, rt)
            pending = None

    def save(asynchronous: bool = False) -> Path:
        nonlocal last_saved, pending
        settle(wait=True)  # one async save at a time
        state["elapsed"] = elapsed()
        if last_loss is not None:  # the last step's loss (all ranks): a re-run after the end reports it
            state["loss"] = all_sum(rt, [float(last_loss)])[0] / rt.world_size
        # DCP under ddp and fsdp alike: keyed by parameter name, it loads under either mode at any number
        # of ranks (`auto` may pick the other mode when a requeued job gets another number of nodes)
        path = checkpoint.save(ckpts, rt=rt, model=model, tokenizer=job.tokenizer, optimizer=optimizer,
                               scheduler=scheduler, state=dict(state), keep=ck["keep"], sharded=True,
                               asynchronous=asynchronous)
        last_saved = state["step"]
        if isinstance(path, checkpoint.Pending):
            pending = path
            return path.final
        return path

    t_start, elapsed0 = time.perf_counter(), state["elapsed"]
    elapsed = lambda: round(elapsed0 + time.perf_counter() - t_start, 3)  # noqa: E731
    # a log window: loss summed over its steps, its start, time spent in eval/checkpoints (not in tokens/s)
    window_loss, window_steps, window_t0, paused = 0.0, 0, time.perf_counter(), 0.0
    step_seconds, steps_here = 0.0, 0
    last_loss = None
    exit_code = 1
    try:
        while state["step"] < max_steps:
            t0 = time.perf_counter()
            batches, targets = next_batches(job.train, state["consumed_samples"], rt=rt, micro=micro, accum=accum)
            num_targets, stop = all_sum(rt, [targets, float(flag.requested)])
            if stop:
                settle(wait=True)
                path = save() if last_saved != state["step"] else ckpts / checkpoint.name(state["step"])
                raise Preempted(flag.signum or 15, state["step"], path)
            lr = optimizer.param_groups[0]["lr"]
            loss, norm = train_step(net, optimizer, scheduler, batches, rt=rt, grad_clip=t["grad_clip"],
                                    num_targets=num_targets, moe=moe, aux_coef=aux_coef)
            if moe.active:
                window_aux += moe.last_aux
            state["step"] += 1
            state["consumed_samples"] += gbs
            state["tokens"] += gbs * seq
            window_loss += loss
            window_steps += 1
            last_loss = loss
            step_seconds += time.perf_counter() - t0
            steps_here += 1
            step = state["step"]

            row, new_window = None, step % lg["interval"] == 0 or step == max_steps
            if new_window:
                total, = all_sum(rt, [float(window_loss)])  # (a device sync: tokens/s below is real)
                row = {"step": step, "loss": total / rt.world_size / window_steps, "lr": lr,
                       "tokens_per_s": round(window_steps * gbs * seq / (time.perf_counter() - window_t0 - paused), 1),
                       "elapsed": elapsed(), "tokens": state["tokens"], "samples": state["consumed_samples"]}
                if norm is not None:
                    row["grad_norm"] = float(norm)
                if moe.active:
                    row.update(moe_row(rt, moe, float(window_aux) / window_steps))
                window_loss, window_steps, paused, window_aux = 0.0, 0, 0.0, 0.0
            if job.valid is not None and ((ev["interval"] and step % ev["interval"] == 0) or step == max_steps):
                t_eval = time.perf_counter()
                # the bare model: ranks may run different numbers of eval batches (no DDP collectives)
                state["valid_loss"] = evaluate(model, job.valid, rt=rt, batches=ev["batches"], micro=micro,
                                               lockstep=parallelize.is_sharded(net))
                row = {**(row or {"step": step, "elapsed": elapsed()}), "valid_loss": state["valid_loss"]}
                paused += time.perf_counter() - t_eval
            if ck["interval"] and step % ck["interval"] == 0 and step < max_steps:
                t_save = time.perf_counter()
                save(asynchronous=ck["async_save"])
                paused += time.perf_counter() - t_save
            elif rt.is_main:
                settle(wait=False)
            if row is not None:
                metrics.log(row)
            if new_window:
                window_t0, paused = time.perf_counter(), 0.0

        settle(wait=True)
        final = save() if last_saved != state["step"] else ckpts / checkpoint.name(state["step"])
        if rt.is_main:
            if dcp_checkpoint.is_sharded(final):  # one full copy of the weights, on rank 0 only
                dcp_checkpoint.consolidate(final, out / "model")
            else:
                export_model(final, out)
        barrier(rt)
        summary = {
            "steps": state["step"], "samples": state["consumed_samples"], "tokens": state["tokens"],
            "final_loss": state["loss"], "final_valid_loss": state["valid_loss"], "elapsed_s": elapsed(),
            "resumes": state["resumes"],
            "resumed_from_step": resumed_at, "steps_this_attempt": steps_here,
            "tokens_per_s": round(steps_here * gbs * seq / step_seconds, 1) if step_seconds else None,
            "checkpoint": str(final.relative_to(out)), "grad_accum_steps": accum, "wandb_id": state["wandb_id"],
            "parallelism": mode,
        }
        metrics.summary({k: v for k, v in summary.items() if isinstance(v, (int, float)) and v is not None})
        exit_code = 0
        return summary
    except Preempted as p:
        if rt.is_main:
            p.write_marker(out)
        exit_code = 75
        raise
    finally:
        metrics.close(exit_code)
