"""SIGKILL the pretrain trainer at a random step, rerun it, compare with an uninterrupted run.

Shared by tests/reliability/test_kill_resume.py (a few kills) and benchmarks/kill_resume.py (20).
The trainer runs as the job runs it (`python train.py --config tiny ...`, resume: auto). It logs
every step (log.interval=1), so the kill lands right after the chosen step: anywhere between two
checkpoints, in a checkpoint save, or while metrics are written. A trial passes when the rerun's
final train and valid loss, and every logged row, equal the reference's bit for bit.
`ranks` > 1 runs it under torchrun (the global batch of 8 split over the ranks) with
`parallelism.data` = ddp or fsdp; the kill goes to torchrun and every rank at once (`kill_tree`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TRAIN = REPO / "recipes/nano3/stage0_pretrain/train.py"
STEPS, CHECKPOINT = 30, 5  # short and small (seq 32 x batch 8): this checks resuming, not learning
SHORT = [f"train.max_steps={STEPS}", f"checkpoint.interval={CHECKPOINT}", "eval.interval=15", "eval.batches=2",
         "log.interval=1", "log.wandb.mode=disabled", "train.seq_length=32", "train.micro_batch_size=8",
         "train.global_batch_size=8"]


def command(data: Path, out: Path, parallelism: str | None = None, ranks: int = 1) -> list[str]:
    script = [str(TRAIN), "--config", "tiny", f"output_dir={out}", f"data_path={data}", *SHORT]
    if parallelism is not None:
        script.append(f"parallelism.data={parallelism}")
    if ranks == 1:
        return [sys.executable, *script]
    return [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc-per-node", str(ranks), *script,
            f"train.micro_batch_size={8 // ranks}", "runtime.threads=1"]


def run(cmd: list[str], env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"rc={p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    return p


def rows(out: Path) -> list[tuple]:
    """(step, loss, lr, valid_loss, grad_norm) of every metrics row."""
    return [(r["step"], r.get("loss"), r.get("lr"), r.get("valid_loss"), r.get("grad_norm"))
            for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())]


def final(out: Path) -> tuple[float, float]:
    m = json.loads((out / "RESULT.json").read_text())["metrics"]
    return m["final_loss"], m["final_valid_loss"]


def logged_step(out: Path) -> int:
    """The newest step in metrics.jsonl (0 before the first row; a half-written last row is skipped)."""
    try:
        lines = (out / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError):
            continue
    return 0


def descendants(pid: int) -> list[int]:
    """The processes below `pid` (from /proc: ppid is the field after the command name)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the trainer and everything it started, as a lost node would: torchrun starts each
    rank in a session of its own, so a kill of torchrun's process group leaves the ranks running."""
    for pid in [*descendants(proc.pid), proc.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


@dataclass
class Trial:
    kill_at: int  # the step chosen
    killed_after: int  # the newest logged step when SIGKILL went out
    resumed_from: int  # the checkpoint step the rerun started from (0: from scratch)
    same: bool  # final losses and every metrics row equal the reference's
    detail: str = ""


def reference(data: Path, out: Path, env: dict[str, str], parallelism: str | None = None, ranks: int = 1) -> Path:
    run(command(data, out, parallelism, ranks), env)
    return out


def trial(data: Path, out: Path, ref: Path, kill_at: int, env: dict[str, str], timeout: float = 600,
          parallelism: str | None = None, ranks: int = 1) -> Trial:
    cmd = command(data, out, parallelism, ranks)
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while logged_step(out) < kill_at:
            if proc.poll() is not None:
                raise AssertionError(f"the trainer ended (rc={proc.returncode}) before step {kill_at}")
            if time.monotonic() > deadline:
                raise AssertionError(f"step {kill_at} not reached within {timeout:.0f} s")
            time.sleep(0.01)
        kill_tree(proc)
        killed_after = logged_step(out)
    finally:
        if proc.poll() is None:
            kill_tree(proc)
    if (out / "RESULT.json").exists():
        raise AssertionError(f"the run finished before the kill at step {kill_at}")
    p = run(cmd, env)
    resumed = json.loads((out / "RESULT.json").read_text())["metrics"].get("resumed_from_step") or 0
    same_final = final(out) == final(ref)
    same_rows = rows(out) == rows(ref)
    detail = "" if same_final and same_rows else (f"final {final(out)} vs {final(ref)}; rows equal: {same_rows}; "
                                                  f"{p.stdout[-500:]}")
    return Trial(kill_at, killed_after, resumed, same_final and same_rows, detail)
