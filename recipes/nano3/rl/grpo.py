"""GRPO: group-normalized advantages, clipped policy-ratio loss, KL to a frozen reference.

For prompt i with G sampled completions and rewards r_i1..r_iG:

    A_ij = (r_ij - mean_j r_ij) / (std_j r_ij + eps)          (0 for a group whose rewards are all equal)

and for every completion token t of sample ij (policy pi, pi_old = the policy that sampled
it, i.e. before this step's updates; pi_ref = the frozen SFT model):

    ratio = pi(t) / pi_old(t)
    kl    = pi_ref(t) / pi(t) - log(pi_ref(t) / pi(t)) - 1          (k3 estimator, >= 0)
    loss  = -[min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A) - beta * kl]

averaged over all completion tokens of the minibatch. Sequences are [prompt | completion]
right-padded (causal attention: padding after a sequence never changes it), so positions
are 0..len-1 exactly as in left-padded generation with an attention mask.
"""

from __future__ import annotations

from dataclasses import dataclass


def advantages(rewards, group: int, eps: float = 1e-6):
    """[N] rewards in groups of `group` consecutive samples -> [N] normalized advantages."""
    r = rewards.view(-1, group)
    mean, std = r.mean(dim=1, keepdim=True), r.std(dim=1, unbiased=False, keepdim=True)
    return ((r - mean) / (std + eps)).view(-1)


@dataclass
class Batch:
    """Sequences of one rollout batch, ready for the model."""

    input_ids: "torch.Tensor"  # noqa: F821  [N, S] prompt + completion, right-padded
    mask: "torch.Tensor"  # noqa: F821  [N, S-1] 1 where target input_ids[:, t+1] is a completion token
    advantages: "torch.Tensor"  # noqa: F821  [N]

    def rows(self, idx) -> "Batch":
        return Batch(self.input_ids[idx], self.mask[idx], self.advantages[idx])

    def to(self, device: str) -> "Batch":
        return self if device == "cpu" else Batch(self.input_ids.to(device), self.mask.to(device),
                                                  self.advantages.to(device))

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def make_batch(prompts: list[list[int]], completions: list[list[int]], advantages, pad_id: int) -> Batch:
    import torch

    width = max(len(p) + len(c) for p, c in zip(prompts, completions))
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width - 1), dtype=torch.float32)
    for row, (p, c) in enumerate(zip(prompts, completions)):
        ids[row, :len(p) + len(c)] = torch.tensor(p + c, dtype=torch.long)
        mask[row, len(p) - 1:len(p) - 1 + len(c)] = 1.0
    return Batch(ids, mask, advantages.float())


def token_logprobs(model, input_ids):
    """[N, S-1]: log pi(input_ids[:, t+1] | input_ids[:, :t+1]) in fp32."""
    import torch

    logits = model(input_ids=input_ids, use_cache=False).logits[:, :-1].float()
    return torch.log_softmax(logits, dim=-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)


def no_grad_logprobs(model, batch: Batch, micro: int):
    import torch

    with torch.no_grad():
        return torch.cat([token_logprobs(model, batch.input_ids[i:i + micro]) for i in range(0, len(batch), micro)])


def loss_terms(logp, old_logp, ref_logp, adv, mask, *, clip_eps: float, kl_coef: float):
    """(summed token loss, summed token KL, number of clipped tokens) over the masked tokens."""
    import torch

    ratio = torch.exp(logp - old_logp)
    a = adv[:, None]
    surrogate = torch.minimum(ratio * a, ratio.clamp(1 - clip_eps, 1 + clip_eps) * a)
    d = ref_logp - logp
    kl = torch.exp(d) - d - 1
    loss = -((surrogate - kl_coef * kl) * mask).sum()
    clipped = (((ratio - 1).abs() > clip_eps).float() * mask).sum()
    return loss, (kl.detach() * mask).sum(), clipped.detach()


def update(model, reference, batch: Batch, *, optimizer, scheduler, rt, micro: int, minibatches: int,
           clip_eps: float, kl_coef: float, grad_clip: float) -> dict:
    """The GRPO update of one rollout batch: `minibatches` optimizer steps over consecutive slices
    (whole groups). Returns the batch's mean token loss and KL, clip fraction, last grad norm."""
    import torch

    from recipes.nano3.training.runtime import autocast

    with autocast(rt):
        ref_logp = no_grad_logprobs(reference, batch, micro)
        old_logp = no_grad_logprobs(model, batch, micro) if minibatches > 1 else None  # else logp.detach()
    size = len(batch) // minibatches
    totals = {"loss": 0.0, "kl": 0.0, "clipped": 0.0, "tokens": float(batch.mask.sum())}
    norm = None
    for m in range(minibatches):
        lo, hi = m * size, (m + 1) * size
        tokens = max(1.0, float(batch.mask[lo:hi].sum()))
        for i in range(lo, hi, micro):
            j = min(i + micro, hi)
            mb = batch.rows(slice(i, j))
            with autocast(rt):
                logp = token_logprobs(model, mb.input_ids)
            old = logp.detach() if old_logp is None else old_logp[i:j]
            loss, kl, clipped = loss_terms(logp, old, ref_logp[i:j], mb.advantages, mb.mask, clip_eps=clip_eps,
                                           kl_coef=kl_coef)
            (loss / tokens).backward()
            totals["loss"] += float(loss.detach())
            totals["kl"] += float(kl)
            totals["clipped"] += float(clipped)
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip) if grad_clip > 0 else None
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    n = max(1.0, totals["tokens"])
    return {"loss": totals["loss"] / n, "kl": totals["kl"] / n, "clip_frac": totals["clipped"] / n,
            "grad_norm": None if norm is None else float(norm)}
