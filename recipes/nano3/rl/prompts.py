"""The RL data (artifact nano3-rl-data, written by stage2_rl/data_prep.py): prompts with references.

    data_path/manifest.json          {"files": {split: "split.jsonl"}, ...}
    data_path/{train,valid,test}.jsonl  {"id", "task", "prompt", "prompt_ids", "reference", "weight", ...}
    data_path/tokenizer/             the tokenizer the prompt_ids were made with

`Prompts.sample(step, n)` draws the prompts of GRPO step `step` by their `weight` with an
RNG seeded by (seed, step): a pure function of the step, so a resumed run draws exactly
the prompts an uninterrupted run would have.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from recipes.nano3.common.errors import DataError

FIELDS = ("id", "prompt_ids", "reference")


def manifest(folder: str | Path, key: str = "data_path") -> dict:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"config key '{key}': {folder} does not exist; point it at the RL data prep output")
    path = folder / "manifest.json"
    if not path.is_file():
        raise DataError(f"config key '{key}': {path} is missing; is {folder} the RL data prep's output "
                        f"(nano3-rl-data)?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None


class Prompts:
    """One split of the RL data, in file order."""

    def __init__(self, folder: str | Path, split: str, *, vocab_size: int, key: str = "data_path"):
        folder = Path(folder)
        files = manifest(folder, key).get("files", {})
        if split not in files:
            raise DataError(f"{folder}/manifest.json has no '{split}' split (has: {', '.join(sorted(files)) or 'none'})")
        path = folder / files[split]
        if not path.is_file():
            raise DataError(f"{folder}/manifest.json names {path}, which does not exist; regenerate the RL data")
        self.split, self.rows = split, []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{n}: not valid JSON ({e})") from None
            missing = [f for f in FIELDS if f not in row]
            if missing or not row["prompt_ids"]:
                raise DataError(f"{path}:{n}: missing or empty field(s) {', '.join(missing) or 'prompt_ids'}; "
                                f"regenerate the RL data")
            if max(row["prompt_ids"]) >= vocab_size:
                raise DataError(f"{path}:{n}: token id {max(row['prompt_ids'])} >= the model's vocabulary "
                                f"({vocab_size}): the data was tokenized with another tokenizer")
            self.rows.append(row)
        self.weights = [float(r.get("weight", 1.0)) for r in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def max_prompt_tokens(self) -> int:
        return max((len(r["prompt_ids"]) for r in self.rows), default=0)

    def sample(self, seed: int, step: int, n: int) -> list[dict]:
        """The n prompts of step `step` (drawn by weight, with replacement)."""
        return random.Random(f"rl-prompts:{seed}:{step}").choices(self.rows, weights=self.weights, k=n)

    def head(self, n: int) -> list[dict]:
        """The first n prompts (0: all): the held-out set evaluated every time."""
        return self.rows[:n] if n else list(self.rows)
