"""Shared data for the reliability tests: the real tiny data-prep outputs, built once per session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PREP = {"pretrain": REPO / "recipes/nano3/stage0_pretrain/data_prep.py",
        "sft": REPO / "recipes/nano3/stage1_sft/data_prep.py"}


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without a Ray address, torchrun ranks or secrets the tests did not choose."""
    from nemotron_core.secrets import is_secret_name

    env = {k: v for k, v in os.environ.items() if not is_secret_name(k)}
    for k in ("RAY_ADDRESS", "WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        env.pop(k, None)
    env.update(extra)
    return env


def prep(stage: str, out: Path, *overrides: str) -> Path:
    p = subprocess.run([sys.executable, str(PREP[stage]), "--config", "tiny", f"output_dir={out}", *overrides],
                       cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def reliability_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("reliability")


@pytest.fixture(scope="session")
def pretrain_data(reliability_dir) -> Path:
    return prep("pretrain", reliability_dir / "pretrain-data")


@pytest.fixture(scope="session")
def sft_data(reliability_dir, pretrain_data) -> Path:
    return prep("sft", reliability_dir / "sft-data", f"tokenizer_path={pretrain_data / 'tokenizer'}")
