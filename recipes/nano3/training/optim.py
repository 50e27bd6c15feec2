"""AdamW and the learning-rate schedule (linear warmup, then cosine down to lr x min_lr_ratio).

Weight decay applies to matrices (linear and embedding weights), not to norms or
biases. The schedule is a `LambdaLR` whose lambda is a picklable object, so the
scheduler's state_dict (its step) goes into the checkpoint with the optimizer's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class WarmupCosine:
    """lr multiplier at `step`: 0 -> 1 over warmup_steps, then cosine 1 -> min_ratio at max_steps."""

    warmup_steps: int
    max_steps: int
    min_ratio: float

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if step >= self.max_steps:
            return self.min_ratio
        progress = (step - self.warmup_steps) / max(1, self.max_steps - self.warmup_steps)
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build(model, ocfg: dict, max_steps: int, device_type: str):
    """(optimizer, scheduler) for the `optim` config section."""
    import torch

    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": ocfg["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=ocfg["lr"], betas=(ocfg["beta1"], ocfg["beta2"]), eps=ocfg["eps"],
                                  fused=device_type == "cuda")
    schedule = WarmupCosine(ocfg["warmup_steps"], max_steps, ocfg["min_lr_ratio"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    return optimizer, scheduler
