"""Megatron indexed datasets (.bin + .idx) and the blend.json that lists them.

The writer produces exactly what megatron-core's `IndexedDatasetBuilder` writes (and
its `IndexedDataset(prefix)` reads), without importing megatron (3+ s per process):

    .bin  the tokens of every document back to back (uint16 when vocab < 65500, else int32)
    .idx  b"MMIDIDX\\x00\\x00", <Q version=1, <B dtype code, <Q sequence count,
          <Q document count (+1), int32 sequence lengths, int64 byte pointers,
          int64 document indices [0, 1, ..., n] (one sequence per document)

The pretrain data's blend.json lists these prefixes with their weights (common/blend.py).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from .outputs import tmp_path

HEADER = b"MMIDIDX\x00\x00"
DTYPE_CODES = {np.dtype(np.uint8): 1, np.dtype(np.int8): 2, np.dtype(np.int16): 3, np.dtype(np.int32): 4,
               np.dtype(np.int64): 5, np.dtype(np.float64): 6, np.dtype(np.float32): 7, np.dtype(np.uint16): 8}


def token_dtype(vocab_size: int) -> np.dtype:
    """megatron's DType.optimal_dtype."""
    return np.dtype(np.uint16) if vocab_size < 65500 else np.dtype(np.int32)


def write_indexed(prefix: Path, tokens: np.ndarray, lengths: np.ndarray) -> None:
    """Write `prefix`.bin/.idx: documents of `lengths` tokens, concatenated in `tokens`.

    Both files go to temp names first; .idx is renamed last (a prefix with an .idx is complete).
    """
    tokens, lengths = np.ascontiguousarray(tokens), np.asarray(lengths, dtype=np.int32)
    assert int(lengths.sum()) == tokens.size, "lengths must add up to the token count"
    prefix.parent.mkdir(parents=True, exist_ok=True)
    bin_path, idx_path = Path(f"{prefix}.bin"), Path(f"{prefix}.idx")
    pointers = np.zeros(lengths.size, dtype=np.int64)
    np.cumsum(lengths[:-1].astype(np.int64) * tokens.dtype.itemsize, out=pointers[1:])
    doc_index = np.arange(lengths.size + 1, dtype=np.int64)
    tmp_bin, tmp_idx = tmp_path(bin_path), tmp_path(idx_path)
    tmp_bin.write_bytes(tokens.tobytes(order="C"))
    with open(tmp_idx, "wb") as f:
        f.write(HEADER)
        f.write(struct.pack("<Q", 1))
        f.write(struct.pack("<B", DTYPE_CODES[tokens.dtype]))
        f.write(struct.pack("<Q", lengths.size))
        f.write(struct.pack("<Q", doc_index.size))
        f.write(lengths.tobytes(order="C"))
        f.write(pointers.tobytes(order="C"))
        f.write(doc_index.tobytes(order="C"))
    os.replace(tmp_bin, bin_path)
    os.replace(tmp_idx, idx_path)


def read_indexed(prefix: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(tokens memmap, document lengths) of a prefix, without megatron (for small tools and tests).

    ValueError when the pair does not describe itself consistently (a truncated, padded or
    corrupted .idx/.bin): the sizes in the header must match both files' sizes exactly.
    """
    idx = Path(f"{prefix}.idx").read_bytes()
    if idx[:9] != HEADER or len(idx) < 34:
        raise ValueError(f"{prefix}.idx: not a Megatron index (bad header)")
    version, = struct.unpack_from("<Q", idx, 9)
    code, = struct.unpack_from("<B", idx, 17)
    n_seq, n_doc = struct.unpack_from("<QQ", idx, 18)
    if version != 1 or code not in DTYPE_CODES.values():
        raise ValueError(f"{prefix}.idx: unsupported version {version} or dtype code {code}")
    if len(idx) != 34 + n_seq * 12 + n_doc * 8:
        raise ValueError(f"{prefix}.idx: {len(idx)} bytes, but its header describes {n_seq} sequences and "
                         f"{n_doc} document offsets (truncated or corrupted)")
    lengths = np.frombuffer(idx, dtype=np.int32, count=n_seq, offset=34)
    dtype = {v: k for k, v in DTYPE_CODES.items()}[code]
    expected = int(lengths.astype(np.int64).sum()) * dtype.itemsize
    actual = Path(f"{prefix}.bin").stat().st_size
    if (lengths < 0).any() or actual != expected:
        raise ValueError(f"{prefix}.bin: {actual} bytes, but {prefix}.idx describes {expected} (truncated or corrupted)")
    tokens = np.memmap(f"{prefix}.bin", dtype=dtype, mode="r") if expected else np.zeros(0, dtype)
    return tokens, lengths
