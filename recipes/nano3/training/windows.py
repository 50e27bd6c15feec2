"""Pretrain batches: windows of the Megatron indexed datasets (.bin/.idx) named in blend.json.

Each prefix's .bin is memory-mapped (common/indexed.py reads the megatron-core format
without importing megatron) and seen as one token stream (documents end with
<|endoftext|>). Item k of a prefix is the window tokens[k*S : k*S + S + 1]: inputs are
the first S tokens, targets the last S (next-token prediction on every position).
Which window a sample is comes from `data.BlendSampler` (blend weights, shuffled epochs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recipes.nano3.common import indexed
from recipes.nano3.common.errors import DataError

from .data import Batch, BlendSampler, read_blend


class WindowData:
    def __init__(self, folder: str | Path, split: str, seq_length: int, seed: int, vocab_size: int):
        blend = read_blend(Path(folder), split)
        if blend is None:
            raise DataError(f"{folder}/blend.json has no '{split}' split")
        prefixes, weights = blend
        self.seq_length, self.vocab_size, self.split = seq_length, vocab_size, split
        self.tokens = []
        for prefix in prefixes:
            if not Path(f"{prefix}.idx").is_file() or not Path(f"{prefix}.bin").is_file():
                raise DataError(f"{folder}/blend.json names {prefix} but its .bin/.idx is missing; "
                                f"regenerate the data")
            try:
                tokens, _ = indexed.read_indexed(prefix)
            except (AssertionError, KeyError, ValueError) as e:
                raise DataError(f"{prefix}: not a valid Megatron indexed dataset ({e or 'bad header'}); "
                                f"regenerate the data") from None
            self.tokens.append(tokens)
        sizes = [max(0, (len(t) - 1) // seq_length) for t in self.tokens]
        if not any(sizes):
            raise DataError(f"{folder}: split '{split}' has fewer than seq_length + 1 = {seq_length + 1} tokens "
                            f"in every dataset; lower train.seq_length or add data")
        self.windows = sum(sizes)
        self.sampler = BlendSampler(sizes, weights, seed)

    def batch(self, start: int, n: int) -> Batch:
        """Samples start .. start + n - 1 of the blend."""
        import torch

        S = self.seq_length
        x = np.empty((n, S + 1), dtype=np.int64)
        for row, (d, k) in enumerate(self.sampler.take(start, n)):
            x[row] = self.tokens[d][k * S:k * S + S + 1]
        if x.max() >= self.vocab_size:
            raise DataError(f"token id {int(x.max())} in the '{self.split}' data is >= the model's vocabulary "
                            f"({self.vocab_size}): the data was tokenized with another tokenizer")
        t = torch.from_numpy(x)
        return Batch(input_ids=t[:, :-1].contiguous(), targets=t[:, 1:].contiguous())
