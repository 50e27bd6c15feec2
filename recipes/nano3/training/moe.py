"""Mixture-of-experts bookkeeping: the router load-balancing loss and per-expert token counts.

transformers' NemotronH computes no auxiliary loss (its `router_logits` output is only the
raw logits), so forward hooks on the top-k routers capture (logits, top-k indices) of every
MoE layer during the training forward. From them:

- `aux_loss()`: the Switch-Transformer load-balancing loss as Megatron-Core computes it for a
  sigmoid router (`switch_load_balancing_loss_func`): per layer, with T tokens, E experts,
  k active, p_t = sigmoid(logits_t) / sum(sigmoid(logits_t)) and f_i = tokens routed to
  expert i / (T k):  E * sum_i f_i * mean_t p_ti  (1.0 when balanced, E/k when collapsed);
  the mean over the MoE layers. The trainer adds `train.moe_aux_loss_coef` times it.
- `take_counts()`: tokens routed to each expert of each MoE layer since the last call (a
  collapsed router shows as a few experts taking everything); logged as `expert_tokens`.

Models without routers (Llama) get an inert `RouterStats` (`active` is False).
"""

from __future__ import annotations

from typing import Any


def routers(model) -> list:
    """The top-k router modules in layer order (NemotronH's `NemotronHTopkRouter`, by duck type)."""
    return [m for m in model.modules()
            if type(m).__name__.endswith("TopkRouter") and hasattr(m, "top_k") and hasattr(m, "num_experts")]


class RouterStats:
    """Hooks on a model's routers; `active` tells whether it has any."""

    def __init__(self, model) -> None:
        self.routers = routers(model)
        self.active = bool(self.routers)
        self.captured: list[tuple[Any, Any, int]] = []  # (router logits [T, E], top-k indices [T, k], E)
        self.counts: list[Any] = [None] * len(self.routers)
        self.recording = False
        self._handles = [r.register_forward_hook(self._hook(i)) for i, r in enumerate(self.routers)]

    def _hook(self, index: int):
        def hook(module, _inputs, output) -> None:
            if not self.recording:
                return
            logits, _weights, topk = output
            self.captured.append((logits, topk, module.num_experts))
            import torch

            with torch.no_grad():
                counts = torch.bincount(topk.flatten(), minlength=module.num_experts)
                self.counts[index] = counts if self.counts[index] is None else self.counts[index] + counts
        return hook

    def aux_loss(self):
        """The mean load-balancing loss over the layers captured since the last call (then forgotten)."""
        import torch

        losses = []
        for logits, topk, experts in self.captured:
            scores = torch.sigmoid(logits.float())
            probs = scores / (scores.sum(dim=-1, keepdim=True) + 1e-20)
            tokens = torch.bincount(topk.flatten(), minlength=experts).to(probs.dtype)
            frac = tokens / max(1, topk.numel())
            losses.append(experts * (frac * probs.mean(dim=0)).sum())
        self.captured.clear()
        return torch.stack(losses).mean() if losses else None

    def discard(self) -> None:
        self.captured.clear()

    def take_counts(self) -> list[list[int]]:
        """Tokens per expert per MoE layer since the last call (this rank); resets them."""
        out = [c.tolist() if c is not None else [0] * r.num_experts for c, r in zip(self.counts, self.routers)]
        self.counts = [None] * len(self.routers)
        return out

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def imbalance(counts: list[list[float]]) -> float | None:
    """max over layers of (busiest expert's tokens / the mean per expert): 1.0 balanced, E/k collapsed."""
    worst = None
    for layer in counts:
        total = sum(layer)
        if total:
            ratio = max(layer) / (total / len(layer))
            worst = ratio if worst is None else max(worst, ratio)
    return None if worst is None else round(worst, 4)
