"""The tiny pretrain and SFT data the reliability benchmarks read, built once under <state>/bench/reliability/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nemotron_core.paths import state_dir, state_env  # noqa: E402


def bench_env() -> dict[str, str]:
    """This environment plus the state folder's cache/home variables, without a Ray address."""
    env = {**os.environ, **{k: v for k, v in state_env().items() if k not in os.environ}}
    env.pop("RAY_ADDRESS", None)
    return env


def data(stage: str) -> Path:
    root = state_dir() / "bench" / "reliability"
    out = root / f"{stage}-data"
    if not (out / "RESULT.json").is_file():
        extra = [f"tokenizer_path={data('pretrain') / 'tokenizer'}"] if stage == "sft" else []
        script = REPO / "recipes/nano3" / ("stage0_pretrain" if stage == "pretrain" else "stage1_sft") / "data_prep.py"
        subprocess.run([sys.executable, str(script), "--config", "tiny", f"output_dir={out}", *extra], check=True,
                       env=bench_env(), stdout=subprocess.DEVNULL)
    return out


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"
