"""AdamW and the learning-rate schedule (linear warmup, then cosine down to lr x min_lr_ratio).

Weight decay applies to matrices (linear and embedding weights), not to norms or
biases. The schedule is transformers' warmup-cosine with a floor
(`get_cosine_with_min_lr_schedule_with_warmup`: lr x step/warmup, then cosine to
lr x min_lr_ratio at max_steps), a `LambdaLR` whose step goes into the checkpoint with the
optimizer's state.
"""

from __future__ import annotations


def build(model, ocfg: dict, max_steps: int, device_type: str):
    """(optimizer, scheduler) for the `optim` config section."""
    import torch
    from transformers import get_cosine_with_min_lr_schedule_with_warmup

    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": ocfg["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=ocfg["lr"], betas=(ocfg["beta1"], ocfg["beta2"]), eps=ocfg["eps"],
                                  fused=device_type == "cuda")
    scheduler = get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, num_warmup_steps=ocfg["warmup_steps"], num_training_steps=max_steps,
        min_lr_rate=ocfg["min_lr_ratio"])
    return optimizer, scheduler
