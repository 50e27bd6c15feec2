"""How the model is spread over the data-parallel ranks: DDP (replicated) or FSDP2 (sharded).

`parallelism.data` in the trainer config:
  ddp   every rank holds the whole model, gradients and AdamW state; gradients are all-reduced.
  fsdp  `fully_shard` on each decoder block, then on the root: each rank holds 1/world of the
        weights, gradients and optimizer state; a block's weights are all-gathered for its
        forward/backward and freed after (reshard_after_forward). On CUDA the gathered weights are
        bf16 and gradients are reduced in fp32 (MixedPrecisionPolicy), master weights stay fp32;
        on CPU everything is fp32. The same code runs over gloo here and nccl on GPUs.
  auto  fsdp when a replica's training state does not fit comfortably: with several ranks and
        16 bytes/parameter (fp32 weights + gradients + AdamW's two moments) over half of one
        device's memory (a GPU's memory, or on CPU the node's RAM / processes on the node; the
        other half is left to activations). Else ddp.
One process is never wrapped (nothing to shard or reduce). Checkpoints are DCP in every mode
(dcp_checkpoint.py), so a run moves between 1 and N ranks and between ddp and fsdp.
`parallelism.activation_checkpointing` recomputes each block's activations in the backward
(transformers' non-reentrant gradient checkpointing): less memory for one more forward.
"""

from __future__ import annotations

import contextlib
from typing import Any

from nemotron_core.errors import ConfigError

from .runtime import Runtime

MODES = ("auto", "ddp", "fsdp")
STATE_BYTES_PER_PARAM = 16  # fp32 weight + fp32 grad + AdamW exp_avg + exp_avg_sq


def device_memory(rt: Runtime) -> int:
    """Bytes one rank may use: its GPU's memory, or the node's RAM split over its processes."""
    import torch

    if rt.device_type == "cuda":
        return int(torch.cuda.get_device_properties(rt.local_rank).total_memory)
    import os

    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) // max(1, rt.local_world_size)


def choose(mode: str, *, parameters: int, world_size: int, memory: int) -> str:
    """`ddp` or `fsdp` for `parallelism.data` = mode (pure: tested with made-up sizes)."""
    if mode != "auto":
        return mode
    return "fsdp" if world_size > 1 and parameters * STATE_BYTES_PER_PARAM > memory // 2 else "ddp"


def blocks(model) -> list:
    """The decoder blocks (HF causal LMs keep them in model.model.layers)."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise ConfigError(f"config key 'parallelism.data': fsdp needs the decoder blocks at model.model.layers; "
                          f"{type(model).__name__} has none; use ddp")
    return list(layers)


def activation_checkpointing(model) -> None:
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise ConfigError(f"config key 'parallelism.activation_checkpointing': {type(model).__name__} does not "
                          f"support it; set it to false")
    kwargs = {"use_reentrant": False}
    enable = getattr(model, "activation_checkpointing_enable", None)  # transformers >= 5.x's name
    if enable is not None:
        enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def shard(model, rt: Runtime) -> Any:
    """FSDP2 in place: each block, then the root (embeddings, final norm, LM head)."""
    import torch
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(rt.device_type, (rt.world_size,))
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) \
        if rt.device_type == "cuda" and rt.amp_dtype == "bfloat16" else MixedPrecisionPolicy()
    for block in blocks(model):
        fully_shard(block, mesh=mesh, mp_policy=mp)
    fully_shard(model, mesh=mesh, mp_policy=mp)
    return model


def replicate(model, rt: Runtime) -> Any:
    from torch.nn.parallel import DistributedDataParallel

    # no buffer broadcast: the only buffers (RoPE tables) are the same on every rank
    return DistributedDataParallel(model, device_ids=[rt.local_rank] if rt.device_type == "cuda" else None,
                                   broadcast_buffers=False)


def apply(model, rt: Runtime, mode: str, *, checkpointing: bool) -> Any:
    """The module the step runs: `model` itself (one process, or FSDP in place) or a DDP wrapper."""
    if checkpointing:
        activation_checkpointing(model)
    if not rt.distributed:
        return model
    return shard(model, rt) if mode == "fsdp" else replicate(model, rt)


def grad_sync(net, on: bool):
    """A context in which backward reduces gradients (`on`) or only accumulates them locally."""
    if on:
        return contextlib.nullcontext()
    if hasattr(net, "set_requires_gradient_sync"):  # FSDP2
        return _fsdp_no_sync(net)
    return net.no_sync() if hasattr(net, "no_sync") else contextlib.nullcontext()


@contextlib.contextmanager
def _fsdp_no_sync(net):
    net.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        net.set_requires_gradient_sync(True)


def is_sharded(net) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(net, FSDPModule)


def local(value):
    """A DTensor (FSDP's parameters, the clipped grad norm) as a plain full tensor; anything else as is."""
    full = getattr(value, "full_tensor", None)
    return full() if callable(full) else value
