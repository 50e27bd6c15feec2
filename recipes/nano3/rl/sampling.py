"""Batched generation from token-id prompts: n completions per prompt, each cut at its first stop token.

    completions(model, [[2, 87, ...], ...], n=8, max_new_tokens=16, pad_id=1, stop_ids=[0, 3], seed=7)
      -> [[45, 3], [45, 9, 3], ...]   prompt-major: out[i * n + j] is sample j of prompt i

Prompts are left-padded (with an attention mask, so positions start at 0 on each real
token); a completion keeps its stop token (<|im_end|> or <|endoftext|>) when it has one,
and is max_new_tokens long without. Sampling draws from the full distribution (no top-k)
at `temperature` with nucleus `top_p`; `greedy` takes the argmax. The torch RNG is seeded
with `seed` first, so the same weights, prompts and seed give the same completions.
Used by the rollout actors (sampling) and by evaluation (greedy).
"""

from __future__ import annotations


def completions(model, prompts: list[list[int]], *, n: int, max_new_tokens: int, pad_id: int, stop_ids: list[int],
                temperature: float = 1.0, top_p: float = 1.0, greedy: bool = False, seed: int = 0,
                batch_size: int = 64) -> list[list[int]]:
    import torch

    torch.manual_seed(seed)
    device = next(model.parameters()).device
    stops = set(stop_ids)
    sampling = {"do_sample": False} if greedy else {"do_sample": True, "temperature": temperature, "top_k": 0,
                                                     "top_p": top_p}
    out: list[list[int]] = []
    for i in range(0, len(prompts), batch_size):
        chunk = prompts[i:i + batch_size]
        width = max(len(p) for p in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, p in enumerate(chunk):
            ids[row, width - len(p):] = torch.tensor(p, dtype=torch.long)
            mask[row, width - len(p):] = 1
        with torch.no_grad():
            seqs = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new_tokens,
                                  min_new_tokens=1, num_return_sequences=n, pad_token_id=pad_id, eos_token_id=list(stop_ids),
                                  **sampling)
        for new in seqs[:, width:].tolist():
            cut = next((k + 1 for k, t in enumerate(new) if t in stops), len(new))
            out.append(new[:cut])
    return out
