"""What both trainers' data have in common: blend.json, the blend sampler, the Batch.

A data folder's blend.json lists, per split, the datasets (Megatron prefixes or Parquet
files, relative to the folder) and their sampling weights. `BlendSampler` maps a
*global sample index* to (dataset, item) as a pure function of (sizes, weights, seed):

- the dataset of sample i is drawn from the weights with a counter-based RNG
  (chunks of 65536 samples, each seeded by (seed, chunk));
- within a dataset, items are visited in a seeded random permutation per epoch
  (no item repeats before the dataset is exhausted, like Megatron's shuffled epochs).

So the data position is one integer (samples consumed): resuming at sample N yields
exactly the batches an uninterrupted run would have seen, whatever the world size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recipes.nano3.common.errors import DataError

IGNORE = -100  # target id that carries no loss
SPLIT_NAMES = {"train": ("train", "training"), "valid": ("valid", "validation", "val", "dev"), "test": ("test",)}


@dataclass
class Batch:
    """One micro-batch: targets[b, t] is the token to predict after input_ids[b, :t+1] (IGNORE = no loss)."""

    input_ids: "torch.Tensor"  # noqa: F821  [B, S] int64
    targets: "torch.Tensor"  # noqa: F821  [B, S] int64
    position_ids: "torch.Tensor | None" = None  # noqa: F821  [B, S]; restarts at 0 per packed sequence

    def to(self, device: str) -> "Batch":
        if device == "cpu":
            return self
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.input_ids), move(self.targets), move(self.position_ids))

    @property
    def tokens(self) -> int:
        return self.input_ids.numel()

    def num_targets(self) -> int:
        return int((self.targets != IGNORE).sum())


# ---- blend.json -------------------------------------------------------------------------------
def _entry(blend, split: str):
    """The part of a blend.json describing `split` (None when the split is absent)."""
    if isinstance(blend, dict) and isinstance(blend.get("splits"), dict):
        blend = blend["splits"]
    if isinstance(blend, dict):
        for name in SPLIT_NAMES[split]:
            if name in blend:
                return blend[name]
        if any(n in blend for names in SPLIT_NAMES.values() for n in names):
            return None
    return blend if split == "train" else None  # a plain blend (no splits) is the train split


def _paths_weights(entry, where: str) -> tuple[list[str], list[float]]:
    if isinstance(entry, dict):
        paths = entry.get("paths", entry.get("prefixes"))
        weights = entry.get("weights") or [1.0] * (len(paths) if isinstance(paths, list) else 0)
    elif isinstance(entry, list) and entry and len(entry) % 2 == 0 and all(
            isinstance(w, (int, float)) or _is_number(w) for w in entry[0::2]):
        paths, weights = entry[1::2], [float(w) for w in entry[0::2]]  # Megatron ["0.7", "a", "0.3", "b"]
    elif isinstance(entry, list):
        paths, weights = entry, [1.0] * len(entry)
    else:
        paths, weights = None, None
    if (not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths)
            or not isinstance(weights, list) or len(weights) != len(paths) or not all(map(_is_number, weights))):
        raise DataError(f"{where}: expected {{'paths': [...], 'weights': [...]}} or [weight, prefix, ...]")
    return list(paths), [float(w) for w in weights]


def _is_number(x) -> bool:
    try:
        float(x)
        return True
    except (TypeError, ValueError):
        return False


def read_blend(folder: Path, split: str, key: str = "data_path") -> tuple[list[Path], list[float]] | None:
    """(absolute dataset paths, weights) of one split of `folder/blend.json`; None if the split is absent."""
    f = Path(folder) / "blend.json"
    if not Path(folder).is_dir():
        raise DataError(f"config key '{key}': {folder} does not exist; point it at the data prep output")
    if not f.is_file():
        raise DataError(f"config key '{key}': {f} is missing; is {folder} the data prep stage's output?")
    try:
        blend = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{f}: not valid JSON ({e})") from None
    entry = _entry(blend, split)
    if entry is None:
        return None
    paths, weights = _paths_weights(entry, f"{f} split '{split}'")
    if any(not 0 <= w < float("inf") for w in weights) or sum(weights) <= 0:  # also NaN
        raise DataError(f"{f} split '{split}': weights must be >= 0 and not all 0")
    return [Path(folder) / p for p in paths], weights


# ---- the sampler ------------------------------------------------------------------------------
class BlendSampler:
    """Global sample index -> (dataset, item); see the module doc. Pure: no state but caches."""

    CHUNK = 1 << 16

    def __init__(self, sizes: list[int], weights: list[float], seed: int):
        self.sizes = np.asarray(sizes, dtype=np.int64)
        w = np.where(self.sizes > 0, np.asarray(weights, dtype=np.float64), 0.0)
        if w.sum() <= 0:
            raise DataError("every dataset of the blend is empty (or too short for one sample)")
        self.cum = np.cumsum(w / w.sum())
        self.seed = seed
        self._starts = [np.zeros(len(sizes), dtype=np.int64)]  # per-dataset counts before each chunk
        self._chunk: tuple[int, np.ndarray, np.ndarray] | None = None
        self._perms: dict[int, tuple[int, np.ndarray]] = {}

    def _datasets(self, c: int) -> np.ndarray:
        if len(self.sizes) == 1:
            return np.zeros(self.CHUNK, dtype=np.int64)
        u = np.random.default_rng([self.seed, 0xB1E4D, c]).random(self.CHUNK)
        return np.minimum(np.searchsorted(self.cum, u, side="right"), len(self.sizes) - 1)

    def _load_chunk(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        if self._chunk is None or self._chunk[0] != c:
            while len(self._starts) <= c:
                k = len(self._starts) - 1
                self._starts.append(self._starts[k] + np.bincount(self._datasets(k), minlength=len(self.sizes)))
            d = self._datasets(c)
            order = np.argsort(d, kind="stable")
            sorted_d = d[order]
            within = np.empty(self.CHUNK, dtype=np.int64)
            within[order] = np.arange(self.CHUNK) - np.searchsorted(sorted_d, sorted_d, side="left")
            self._chunk = (c, d, self._starts[c][d] + within)
        return self._chunk[1], self._chunk[2]

    def _item(self, d: int, j: int) -> int:
        size = int(self.sizes[d])
        epoch, k = divmod(j, size)
        cached = self._perms.get(d)
        if cached is None or cached[0] != epoch:
            cached = (epoch, np.random.default_rng([self.seed, 0x9E7, d, epoch]).permutation(size))
            self._perms[d] = cached
        return int(cached[1][k])

    def take(self, start: int, n: int) -> list[tuple[int, int]]:
        """[(dataset, item)] of samples start .. start + n - 1."""
        out = []
        for i in range(start, start + n):
            c, r = divmod(i, self.CHUNK)
            d, j = self._load_chunk(c)
            out.append((int(d[r]), self._item(int(d[r]), int(j[r]))))
        return out


def has_split(folder: str | Path, split: str) -> bool:
    return read_blend(Path(folder), split) is not None
