"""Perplexity on the pretrain data's valid split, with the pretrain trainer's own data and loss.

Windows of `seq_length + 1` tokens of the valid blend (training/windows.py), the mean
next-token loss over them (training/loop.evaluate), perplexity = exp(loss). The windows
are the same for every model, so numbers compare across model versions.
"""

from __future__ import annotations

import math
from pathlib import Path

from recipes.nano3.common.errors import DataError
from recipes.nano3.training.loop import evaluate
from recipes.nano3.training.windows import WindowData


def perplexity(model, data_path: str | Path, *, rt, seq_length: int, micro: int, batches: int, seed: int) -> dict:
    """{"valid_loss", "perplexity", "tokens"} over `batches` micro-batches (0: every window once)."""
    data = WindowData(data_path, "valid", seq_length, seed, model.config.vocab_size)
    if data.windows < micro:
        raise DataError(f"config key 'perplexity.micro_batch_size': the valid split of {data_path} has only "
                        f"{data.windows} windows of {seq_length} tokens; lower it")
    n = batches or data.windows // micro
    loss = evaluate(model, data, rt=rt, batches=n, micro=micro)
    return {"valid_loss": loss, "perplexity": math.exp(loss), "tokens": n * micro * seq_length}
