"""Training metrics: one JSON line per log step in output_dir/metrics.jsonl, and W&B.

A row: {"step", "loss", "lr", "tokens_per_s", "elapsed", "grad_norm", "tokens", ...};
eval rows add "valid_loss". `elapsed` is wall seconds of training since the run first
started (it continues across resumes). On resume, rows after the checkpoint's step
(written by the killed attempt) are dropped first, so the file reads like one run.

W&B runs offline unless WANDB_API_KEY is set (log.wandb.mode: auto), with its files under
$WANDB_DIR (the state folder, see nemotron_core.paths); only rank 0 logs.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from recipes.nano3.common.outputs import write_bytes


def truncate(path: Path, after_step: int | None) -> None:
    """Keep only rows with step <= after_step (None: start a new file)."""
    if not path.is_file():
        return
    if after_step is None:
        path.unlink()
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:  # a line cut by the kill
            continue
        if row.get("step", 0) <= after_step:
            keep.append(line + "\n")
    write_bytes(path, "".join(keep).encode())


def wandb_mode(mode: str) -> str:
    if mode == "auto":
        return "online" if os.environ.get("WANDB_API_KEY") else "offline"
    return mode


class Metrics:
    def __init__(self, path: Path, *, enabled: bool, wcfg: dict, run_name: str, config: dict,
                 resume_step: int | None, wandb_id: str | None):
        self.path, self.enabled, self.run = path, enabled, None
        self.wandb_id = wandb_id
        if not enabled:
            return
        truncate(path, resume_step)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "a", encoding="utf-8")
        mode = wandb_mode(wcfg["mode"])
        if mode != "disabled":
            import wandb

            folder = Path(os.environ.get("WANDB_DIR") or path.parent)
            folder.mkdir(parents=True, exist_ok=True)
            self.wandb_id = wandb_id or secrets.token_hex(4)
            self.run = wandb.init(mode=mode, project=wcfg["project"], entity=wcfg["entity"],
                                  name=wcfg["name"] or run_name, id=self.wandb_id, resume="allow", dir=str(folder),
                                  config=config, settings=wandb.Settings(console="off", quiet=True))

    def log(self, row: dict) -> None:
        if not self.enabled:
            return
        self.file.write(json.dumps(row, sort_keys=True) + "\n")
        self.file.flush()
        if self.run is not None:
            self.run.log({k: v for k, v in row.items() if k != "step"}, step=row["step"])

    def summary(self, values: dict) -> None:
        if self.run is not None:
            self.run.summary.update(values)

    def close(self, exit_code: int = 0) -> None:
        if not self.enabled:
            return
        self.file.close()
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None
