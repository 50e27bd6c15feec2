"""The command a cloud job (DGX Cloud, Lepton, SkyPilot) runs: this machine's paths rewritten to the job's.

Shared by cloud_render.py and skypilot_profile.py (one leaf, so neither imports the other for it).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from nemotron_core.execution.code_root import run_with_code_root
from nemotron_core.execution.options import job_options
from nemotron_core.launch import Plan
from nemotron_core.paths import PACKAGE_ROOT


def job_command(executor: Any, plan: Plan, job_dir: str | Path, remote_dir: str) -> list[str]:
    """plan.command as the job runs it: the image's python, code under /nemo_run/code (first on PYTHONPATH),
    the job dir remote."""
    python = job_options(executor).python
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    code, local_dir = str(PACKAGE_ROOT), str(Path(job_dir).resolve())
    out = []
    for word in plan.command:
        if word == sys.executable:
            word = python
        elif word == torchrun:
            word = "torchrun"
        word = word.replace(local_dir, remote_dir)
        if word == code or word.startswith(code + "/"):
            word = "/nemo_run/code" + word[len(code):]
        out.append(word)
    return run_with_code_root("/nemo_run/code", out)
