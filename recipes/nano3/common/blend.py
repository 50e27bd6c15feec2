"""Blend weights: how much each source (and each shard's file) is sampled, per split.

The config gives each source a `weight`; the data folder's blend.json turns that into
per-file weights for every split: a file's weight is its source's share of the weights
(over the sources present in that split) times the file's share of its source's tokens.
Weights of a split add up to 1.

    blend.json = {"splits": {"train": {"paths": [...relative...], "weights": [...], "tokens": N}, ...}, ...}

Pretrain: paths are Megatron prefixes (megatron/train/<source>-<shard>, no extension),
ready for `BlendedMegatronDatasetConfig(blend_per_split=[(prefixes, weights), ...])`.
SFT: paths are Parquet files (splits/train/<source>-<shard>.parquet).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

SPLITS = ("train", "valid", "test")


def split_blend(weights: dict[str, float], jobs: list[dict], stats: list[dict],
                path_of: Callable[[dict, str], str], size_key: str = "tokens") -> dict:
    """{split: {"paths", "weights", "tokens"}} from each job's stats[size_key][split]."""
    out = {}
    for sp in SPLITS:
        per_source: dict[str, int] = {}
        for j, s in zip(jobs, stats):
            per_source[j["source"]] = per_source.get(j["source"], 0) + s[size_key][sp]
        present = sum(weights[n] for n, t in per_source.items() if t)
        paths, ws = [], []
        for j, s in zip(jobs, stats):
            if s[size_key][sp]:
                paths.append(path_of(j, sp))
                ws.append(weights[j["source"]] / present * s[size_key][sp] / per_source[j["source"]])
        out[sp] = {"paths": paths, "weights": ws, size_key: sum(per_source.values())}
    return out


def load_blend(folder: str | Path, split: str = "train") -> tuple[list[str], list[float]]:
    """(absolute paths, weights) for one split of a data folder's blend.json."""
    folder = Path(folder)
    entry = json.loads((folder / "blend.json").read_text())["splits"][split]
    return [str(folder / p) for p in entry["paths"]], list(entry["weights"])
