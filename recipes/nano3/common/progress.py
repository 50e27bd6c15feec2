"""How far a job is: `output_dir/progress.json`, replaced atomically whenever the job moves on.

    {"step": 120, "total": 600, "loss": 2.31, "elapsed": 41.5}        (a trainer, per logged step)
    {"shards_done": 3, "shards_total": 8}                             (a data prep, per finished shard)

The job writes it (training/metrics.py, common/shards.py); whoever waits on the job reads it while
polling (tasks/progress.py turns it into the Prefect progress artifact that `nemotron nano3 pipe`
and scripts/quickstart show). It is a hint for watching, never an input: a missing, half-read or
foreign file reads as None. A data prep's record holds no times, so its output stays the same bytes
from run to run.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .outputs import write_json

PROGRESS_FILE = "progress.json"
MAX_BYTES = 4096  # a record is ~100 bytes; anything larger is not ours


@dataclass(frozen=True)
class Progress:
    step: int | None = None
    total: int | None = None  # steps the run will take (train.max_steps)
    loss: float | None = None  # the latest logged training loss
    elapsed: float | None = None  # training seconds so far (continues across resumes)
    shards_done: int | None = None
    shards_total: int | None = None

    def fraction(self) -> float | None:
        """0..1, or None when the record says nothing countable."""
        for done, total in ((self.step, self.total), (self.shards_done, self.shards_total)):
            if done is not None and total:
                return min(1.0, max(0.0, done / total))
        return None

    def eta(self) -> float | None:
        """Seconds left at the pace so far (training only: data prep records no times)."""
        if self.step and self.total and self.elapsed is not None and self.step <= self.total:
            return self.elapsed / self.step * (self.total - self.step)
        return None


def write_progress(output_dir: Path, progress: Progress) -> None:
    write_json(Path(output_dir) / PROGRESS_FILE, {k: v for k, v in asdict(progress).items() if v is not None})


def read_progress(output_dir: Path) -> Progress | None:
    path = Path(output_dir) / PROGRESS_FILE
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    kept = {}
    for f in fields(Progress):
        value = data.get(f.name)
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if number:
            kept[f.name] = float(value) if f.name in ("loss", "elapsed") else int(value)
    return Progress(**kept)
