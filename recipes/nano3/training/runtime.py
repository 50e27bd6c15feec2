"""Where a trainer process runs: rank, device, process-group backend, precision, threads.

`select(...)` is a pure function of what the machine has and the `runtime` config, so the
GPU path (cuda:LOCAL_RANK, nccl, bf16 autocast) is tested on CPU. `start(cfg)` applies it:
thread count, CUDA device, TF32, `init_process_group` when torchrun started several
processes (WORLD_SIZE > 1). Without torchrun's variables it is one process, no group.

Threads: torchrun sets OMP_NUM_THREADS=1 per worker; we set `usable cores / processes on
this node` explicitly (measured: 2 ranks x 2 threads on 2 cores is 4x slower than 2 x 1).
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass

from nemotron_core.errors import ConfigError


@dataclass(frozen=True)
class Runtime:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: str = "cpu"  # "cpu" | "cuda:N"
    backend: str | None = None  # "gloo" | "nccl" when world_size > 1
    amp_dtype: str | None = None  # "bfloat16" under autocast, None = fp32
    threads: int = 1
    compile: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def device_type(self) -> str:
        return self.device.split(":")[0]

    def describe(self) -> dict:
        return {"world_size": self.world_size, "device": self.device_type, "backend": self.backend,
                "precision": self.amp_dtype or "float32", "threads": self.threads}


def _env_int(env: Mapping[str, str], key: str, default: int) -> int:
    try:
        return int(env.get(key, default))
    except ValueError:
        raise ConfigError(f"environment variable {key}={env.get(key)!r} must be an integer (set by torchrun)") from None


def select(rcfg: Mapping, *, cuda_devices: int, env: Mapping[str, str], cpus: int) -> Runtime:
    """The Runtime for the `runtime` config section on a machine with `cuda_devices` GPUs and `cpus` cores."""
    world, rank = _env_int(env, "WORLD_SIZE", 1), _env_int(env, "RANK", 0)
    local_rank = _env_int(env, "LOCAL_RANK", 0)
    local_world = _env_int(env, "LOCAL_WORLD_SIZE", world)
    device = rcfg.get("device", "auto")
    if device == "auto":
        device = "cuda" if cuda_devices > 0 else "cpu"
    if device == "cuda":
        if cuda_devices == 0:
            raise ConfigError("config key 'runtime.device': 'cuda' but no GPU is visible; use auto or cpu")
        if local_rank >= cuda_devices:
            raise ConfigError(f"local rank {local_rank} has no GPU (this node has {cuda_devices}); "
                              f"start at most {cuda_devices} processes per node")
        device = f"cuda:{local_rank}"
    gpu = device.startswith("cuda")
    backend = rcfg.get("backend", "auto")
    if backend == "auto":
        backend = "nccl" if gpu else "gloo"
    if backend == "nccl" and not gpu:
        raise ConfigError("config key 'runtime.backend': nccl needs GPUs; use auto or gloo on CPU")
    precision = rcfg.get("precision", "auto")
    amp = "bfloat16" if precision == "bf16" or (precision == "auto" and gpu) else None
    threads = rcfg.get("threads", "auto")
    if threads == "auto":
        threads = max(1, cpus // max(1, local_world))
    return Runtime(rank=rank, world_size=world, local_rank=local_rank, local_world_size=local_world,
                   device=device, backend=backend if world > 1 else None, amp_dtype=amp, threads=int(threads),
                   compile=bool(rcfg.get("compile", False)))


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def start(rcfg: Mapping) -> Runtime:
    """Select and apply the runtime: threads, device, TF32, process group."""
    import torch

    rt = select(rcfg, cuda_devices=torch.cuda.device_count() if torch.cuda.is_available() else 0,
                env=os.environ, cpus=usable_cpus())
    torch.set_num_threads(rt.threads)
    if rt.device_type == "cuda":
        torch.cuda.set_device(rt.local_rank)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if rt.distributed:
        import torch.distributed as dist

        kwargs = {"device_id": torch.device(rt.device)} if rt.device_type == "cuda" else {}
        dist.init_process_group(rt.backend, timeout=datetime.timedelta(minutes=30), **kwargs)
    return rt


def autocast(rt: Runtime):
    """bf16 autocast when configured (weights and optimizer state stay fp32), else a no-op."""
    import torch

    if rt.amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=rt.device_type, dtype=getattr(torch, rt.amp_dtype))


def all_sum(rt: Runtime, values: list[float]) -> list[float]:
    """Element-wise sum of a few numbers over all ranks (one collective); local values when alone."""
    if not rt.distributed:
        return list(values)
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=rt.device)
    dist.all_reduce(t)
    return t.tolist()


def barrier(rt: Runtime) -> None:
    if rt.distributed:
        import torch.distributed as dist

        dist.barrier()


def stop(rt: Runtime) -> None:
    if rt.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
