"""How far a job is: `output_dir/progress.json`, replaced atomically whenever the job moves on.

    {"step": 120, "total": 600, "loss": 2.31, "elapsed": 41.5}        (a trainer, per logged step)
    {"done": 3, "of": 8, "unit": "shards"}                            (a Ray data prep, per finished shard)
    {"done": 240, "of": 1650, "unit": "rows"}                         (the RL data prep, per split)
    {"done": 1, "of": 5, "unit": "tasks", "task": "heldout_qa",
     "task_done": 64, "task_of": 212}                                 (the eval: its tasks, questions of the running one)

The job writes it (training/metrics.py, common/shards.py, stage2_rl/data_prep.py, stage3_eval/eval.py
through `Counter`); whoever waits on the job reads it while polling (tasks/progress.py turns it into
the Prefect progress artifact that `nemotron nano3 pipe`, `nemotron nano3 watch` and scripts/quickstart
show). It is a hint for watching, never an input: a missing, half-read or foreign file reads as None,
and its words are checked (`unit` one of UNITS, `task` a plain name) before they reach a display.
A data prep's record holds no times, so its output stays the same bytes from run to run.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .outputs import write_json

PROGRESS_FILE = "progress.json"
MAX_BYTES = 4096  # a record is ~100 bytes; anything larger is not ours
UNITS = ("shards", "rows", "tasks")  # what a counted job counts (the artifact's field is named by it)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # a task name as the eval config allows it
_FLOATS = ("loss", "elapsed")
_WORDS = {"unit": lambda v: v in UNITS, "task": lambda v: bool(_NAME.match(v))}


@dataclass(frozen=True)
class Progress:
    step: int | None = None
    total: int | None = None  # steps the run will take (train.max_steps)
    loss: float | None = None  # the latest logged training loss
    elapsed: float | None = None  # training seconds so far (continues across resumes)
    done: int | None = None  # counted work (data prep, eval): units finished
    of: int | None = None  # ... of this many
    unit: str | None = None  # one of UNITS
    task: str | None = None  # the part running now (the eval's task)
    task_done: int | None = None  # its items (questions) finished
    task_of: int | None = None

    def fraction(self) -> float | None:
        """0..1, or None when the record says nothing countable (a running task counts by its share)."""
        if self.step is not None and self.total:
            return min(1.0, max(0.0, self.step / self.total))
        if self.done is not None and self.of:
            part = self.task_done / self.task_of if self.task_done is not None and self.task_of else 0.0
            return min(1.0, max(0.0, (self.done + min(1.0, part)) / self.of))
        return None

    def eta(self) -> float | None:
        """Seconds left at the pace so far (training only: counted jobs record no times)."""
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
    kept: dict = {}
    for f in fields(Progress):
        value = data.get(f.name)
        if f.name in _WORDS:
            if isinstance(value, str) and _WORDS[f.name](value):
                kept[f.name] = value
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if number:
            kept[f.name] = float(value) if f.name in _FLOATS else int(value)
    return Progress(**kept)


class Counter:
    """Counted work's record: `done` of `of` units, and the part running now with its items.

        track = Counter(out, 3, "tasks")        # writes 0/3 at once
        track.begin("heldout_qa")               # 0/3, heldout_qa running
        track.items(64, 212)                    # ... 64 of its 212 questions answered
        track.finish()                          # 1/3
    """

    def __init__(self, output_dir: Path, of: int, unit: str) -> None:
        if unit not in UNITS:
            raise ValueError(f"progress unit {unit!r}: one of {', '.join(UNITS)}")
        self.output_dir, self.of, self.unit, self.done = Path(output_dir), of, unit, 0
        self.task: str | None = None
        self._write()

    def begin(self, task: str) -> None:
        self.task = task
        self._write()

    def items(self, done: int, of: int) -> None:
        self._write(done, of)

    def finish(self, n: int = 1) -> None:
        self.done, self.task = min(self.of, self.done + n), None
        self._write()

    def _write(self, task_done: int | None = None, task_of: int | None = None) -> None:
        write_progress(self.output_dir, Progress(done=self.done, of=self.of, unit=self.unit, task=self.task,
                                                 task_done=task_done if self.task else None,
                                                 task_of=task_of if self.task else None))
