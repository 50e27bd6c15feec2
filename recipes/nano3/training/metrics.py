"""Training metrics: one JSON line per log step in output_dir/metrics.jsonl, W&B, a progress line and
output_dir/progress.json (common/progress.py: step k/N, loss, for whoever watches the job).

A row: {"step", "loss", "lr", "tokens_per_s", "elapsed", "grad_norm", "tokens", ...};
eval rows add "valid_loss"; a mixture-of-experts model adds "expert_tokens" (tokens per expert
per MoE layer in the window), "expert_imbalance" and "moe_aux_loss". `elapsed` is wall seconds of training since the run first
started (it continues across resumes). On resume, rows after the checkpoint's step
(written by the killed attempt) are dropped first, so the file reads like one run.

W&B runs offline unless WANDB_API_KEY is set (log.wandb.mode: auto), with its files under
$WANDB_DIR (the state folder, see nemotron_core.paths); only rank 0 logs. Each row is also printed
as one short line on stdout (nanoGPT style), which the task streams into the Prefect run's logs.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from recipes.nano3.common.outputs import write_bytes
from recipes.nano3.common.progress import Progress, write_progress


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


def init_wandb(wandb, retries: int = 5, **kwargs):
    """wandb.init, or None: W&B is for watching a run, never a reason for training to fail.

    A run resumed right after a SIGKILL finds its run id still held by the killed attempt's W&B
    service ("run ID ... is in use") until that service notices and exits: wait for it (up to 30 s).
    Any other W&B failure: one warning line, and the metrics go on in metrics.jsonl only.
    """
    import time

    for attempt in range(retries + 1):
        try:
            return wandb.init(**kwargs)
        except Exception as e:  # noqa: BLE001 - wandb raises many types; none may stop training
            if "in use" in str(e) and attempt < retries:
                time.sleep(2 * (attempt + 1))
                continue
            print(f"warning: W&B off for this run ({type(e).__name__}: {e}); metrics stay in the metrics file",
                  flush=True)
            return None


def progress_line(row: dict) -> str:
    """'step 580: loss 0.8371 valid_loss 0.91 lr 2.44e-03 1028 tok/s 508s' (the fields the row has)."""
    parts = [f"step {row.get('step')}:"]
    for key in ("loss", "valid_loss", "reward", "accuracy", "kl"):
        if isinstance(row.get(key), (int, float)):
            parts.append(f"{key} {row[key]:.4f}")
    if isinstance(row.get("lr"), (int, float)):
        parts.append(f"lr {row['lr']:.2e}")
    if isinstance(row.get("tokens_per_s"), (int, float)):
        parts.append(f"{row['tokens_per_s']:.0f} tok/s")
    if isinstance(row.get("elapsed"), (int, float)):
        parts.append(f"{row['elapsed']:.0f}s")
    return " ".join(parts)


class Metrics:
    def __init__(self, path: Path, *, enabled: bool, wcfg: dict, run_name: str, config: dict,
                 resume_step: int | None, wandb_id: str | None):
        self.path, self.enabled, self.run = path, enabled, None
        self.wandb_id = wandb_id
        self.total = (config.get("train") or {}).get("max_steps")  # for progress.json's step k/N
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
            self.run = init_wandb(wandb, mode=mode, project=wcfg["project"], entity=wcfg["entity"],
                                  name=wcfg["name"] or run_name, id=self.wandb_id, resume="allow", dir=str(folder),
                                  config=config, settings=wandb.Settings(console="off", quiet=True))

    def log(self, row: dict) -> None:
        if not self.enabled:
            return
        self.file.write(json.dumps(row, sort_keys=True) + "\n")
        self.file.flush()
        print(progress_line(row), flush=True)
        write_progress(self.path.parent, Progress(step=row.get("step"), total=self.total, loss=row.get("loss"),
                                                  elapsed=row.get("elapsed")))
        if self.run is not None:
            # scalars only: per-expert token lists (MoE) stay in metrics.jsonl and the run report's plot
            self.run.log({k: v for k, v in row.items() if k != "step" and not isinstance(v, (list, dict))},
                         step=row["step"])

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
