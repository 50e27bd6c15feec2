"""Rollouts on Ray actors: each actor holds a copy of the policy and samples completions.

    group = RolloutGroup(model_dir, cfg["rollout"], stop=flag)   # starts/joins Ray, creates the actors
    group.push(policy, version=step)                            # learner weights -> every actor
    done = group.generate(prompt_ids, n=8, seed=..., max_new_tokens=16, ...)  # split across actors
    group.close()

Ray: joins the cluster in RAY_ADDRESS (a RayJob: Slurm or `ray start --head`), else
starts a local head with num_cpus = actors x cpus_per_actor, no dashboard, its temp dir
under the state folder (common/shards.init_ray; Ray's socket paths need it short), bound
to 127.0.0.1 (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, RAY_AUTH_MODE=disabled).

Weights go through the object store once per push (`ray.put` of a CPU state_dict, every
actor loads it); at real scale this is where an NCCL broadcast would go. While waiting
for actors the driver wakes up every 0.5 s: a stop signal (SIGTERM) interrupts the wait
with `StopRequested`, and so does an actor that died because the signal reached the
whole process group (the local Ray head shares the job's process group).
"""

from __future__ import annotations

import os
from pathlib import Path


class StopRequested(Exception):
    """A stop signal arrived while waiting for the actors (the step in flight is dropped)."""


class RolloutWorker:
    """The actor: a policy copy on `device` with `threads` torch threads."""

    def __init__(self, model_dir: str, threads: int, device: str = "cpu"):
        import torch
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        torch.set_num_threads(threads)
        self.device = device
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device).eval()
        self.version = -1

    def gpu_ids(self) -> list[int]:
        import ray

        return [int(g) for g in ray.get_gpu_ids()]

    def set_weights(self, state: dict, version: int) -> int:
        self.model.load_state_dict({k: v.to(self.device) for k, v in state.items()})
        self.version = version
        return version

    def generate(self, prompts: list[list[int]], **kwargs) -> tuple[list[list[int]], int]:
        """(completions, the weights version that sampled them)."""
        from .sampling import completions

        return completions(self.model, prompts, **kwargs), self.version


def _device_for(gpus: float) -> str:
    return "cuda" if gpus > 0 else "cpu"


class RolloutGroup:
    def __init__(self, model_dir: str | Path, rcfg: dict, *, stop, extra_pythonpath: str | None = None):
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # bind 127.0.0.1 only (scripts/ray)
        from recipes.nano3.common.shards import init_ray

        n, cpus, gpus = rcfg["actors"], rcfg["cpus_per_actor"], rcfg["gpus_per_actor"]
        init_ray(n * cpus, extra_pythonpath)  # keeps the driver's SIGTERM handler
        import ray

        self.stop = stop
        actor = ray.remote(num_cpus=cpus, num_gpus=gpus, max_restarts=0)(RolloutWorker)
        self.actors = [actor.remote(str(model_dir), cpus, _device_for(gpus)) for _ in range(n)]
        self.used_gpus = sorted({g for ids in self._wait([a.gpu_ids.remote() for a in self.actors]) for g in ids})

    def _wait(self, refs: list) -> list:
        import ray

        pending = list(refs)
        while pending:
            if self.stop.requested:
                raise StopRequested()
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
        try:
            return ray.get(refs)
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.RaySystemError):
            if self.stop.requested:
                raise StopRequested() from None
            raise

    def push(self, model, version: int) -> None:
        """Send the learner's current weights to every actor (and wait until all loaded them)."""
        import ray

        state = ray.put({k: v.detach().to("cpu") for k, v in model.state_dict().items()})
        self._wait([a.set_weights.remote(state, version) for a in self.actors])

    def generate(self, prompts: list[list[int]], *, n: int, seed: int, **kwargs) -> tuple[list[list[int]], set[int]]:
        """n completions per prompt (prompt-major), prompts split in contiguous chunks over the actors;
        also the weight versions that sampled them (one, after a push)."""
        k = len(self.actors)
        bounds = [len(prompts) * i // k for i in range(k + 1)]
        calls = [(a, prompts[lo:hi], i) for i, (a, lo, hi) in enumerate(zip(self.actors, bounds, bounds[1:])) if hi > lo]
        results = self._wait([a.generate.remote(chunk, n=n, seed=seed * 1000 + i, **kwargs) for a, chunk, i in calls])
        return [c for part, _ in results for c in part], {v for _, v in results}

    def close(self) -> None:
        from recipes.nano3.common.shards import shutdown_ray

        shutdown_ray()
