"""SFT batches: packed Parquet rows (the SFT data prep's splits/<split>/*.parquet).

A row holds whole conversations back to back, then <|pad|>: `input_ids` (seq_length),
`loss_mask` (1 = predict input_ids[t], on assistant content and its <|im_end|>),
`boundaries` ([0, end of conv 1, ..., num_tokens], cu_seqlens style).

- targets[t] = input_ids[t+1] where loss_mask[t+1] == 1, else IGNORE: the loss counts
  assistant tokens only (never user/system text, roles or padding);
- position_ids restart at 0 for every conversation (and for the padding), so HF
  models build a block-diagonal causal mask (transformers' packed-sequence detection:
  attention_mask=None, use_cache=False): a conversation never attends to the previous one.

Rows are read into memory once per process (fine for SFT-sized data; a file's rows must
all have the same length). Which row a sample is comes from `data.BlendSampler`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recipes.nano3.common.errors import DataError

from .data import IGNORE, Batch, BlendSampler, read_blend

COLUMNS = ("input_ids", "loss_mask", "boundaries")


class _Rows:
    """One Parquet file's rows as flat numpy arrays."""

    def __init__(self, path: Path):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path, columns=list(COLUMNS))
        except (OSError, pa.ArrowInvalid, KeyError) as e:
            raise DataError(f"{path}: not an SFT Parquet file with columns {', '.join(COLUMNS)} "
                            f"({str(e).splitlines()[0]})") from None
        self.n = table.num_rows
        cols = {c: table.column(c).combine_chunks() for c in COLUMNS}
        lengths = np.diff(np.asarray(cols["input_ids"].offsets)) if self.n else np.zeros(0, np.int64)
        if self.n and (lengths.min() != lengths.max()):
            raise DataError(f"{path}: rows have different lengths ({lengths.min()}..{lengths.max()}); "
                            f"expected packed rows of one seq_length")
        self.seq_length = int(lengths[0]) if self.n else 0
        self.ids = np.asarray(cols["input_ids"].values, dtype=np.int64).reshape(self.n, self.seq_length)
        self.mask = np.asarray(cols["loss_mask"].values, dtype=np.int8).reshape(self.n, self.seq_length)
        self.bounds = np.asarray(cols["boundaries"].values, dtype=np.int64)
        self.bound_offsets = np.asarray(cols["boundaries"].offsets, dtype=np.int64)

    def positions(self, r: int) -> np.ndarray:
        """0, 1, ... restarting at each conversation start (and at the padding)."""
        S = self.seq_length
        starts = self.bounds[self.bound_offsets[r]:self.bound_offsets[r + 1]]
        starts = starts[starts < S]  # the last boundary is num_tokens: the padding's start (if any)
        is_start = np.zeros(S, dtype=bool)
        is_start[starts] = True
        is_start[0] = True
        ar = np.arange(S)
        return ar - np.maximum.accumulate(np.where(is_start, ar, 0))


class PackedData:
    def __init__(self, folder: str | Path, split: str, seed: int, vocab_size: int):
        folder = Path(folder)
        blend = read_blend(folder, split)
        if blend is None:
            raise DataError(f"{folder}/blend.json has no '{split}' split")
        paths, weights = blend
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise DataError(f"{folder}/blend.json names {missing[0]}, which does not exist; regenerate the data")
        self.files = [_Rows(p) for p in paths]
        lengths = {f.seq_length for f in self.files if f.n}
        if not lengths:
            raise DataError(f"{folder}: split '{split}' has no rows")
        if len(lengths) > 1:
            raise DataError(f"{folder}: split '{split}' mixes row lengths {sorted(lengths)}; pack with one seq_length")
        self.seq_length = lengths.pop()
        self.rows = sum(f.n for f in self.files)
        top = max(int(f.ids.max()) for f in self.files if f.n)
        if top >= vocab_size:
            raise DataError(f"token id {top} in {folder} split '{split}' is >= the model's vocabulary ({vocab_size}): "
                            f"the data was tokenized with another tokenizer")
        self.sampler = BlendSampler([f.n for f in self.files], weights, seed)

    def batch(self, start: int, n: int) -> Batch:
        import torch

        S = self.seq_length
        ids = np.empty((n, S), dtype=np.int64)
        targets = np.full((n, S), IGNORE, dtype=np.int64)
        pos = np.empty((n, S), dtype=np.int64)
        for row, (d, k) in enumerate(self.sampler.take(start, n)):
            f = self.files[d]
            ids[row] = f.ids[k]
            targets[row, :-1] = np.where(f.mask[k, 1:] == 1, f.ids[k, 1:], IGNORE)
            pos[row] = f.positions(k)
        return Batch(torch.from_numpy(ids), torch.from_numpy(targets), torch.from_numpy(pos))
