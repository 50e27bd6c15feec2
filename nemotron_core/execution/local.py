"""Running a planned job locally and attached: the `--run local`-style direct execution.

The child gets the CLI's environment plus the state-folder variables (so caches and
homes stay in the project), the job's non-secret env, and this checkout first on its
PYTHONPATH (code_root.py: the recipe scripts import `recipes.*` through it). Its output is streamed to the
terminal and appended to `<job dir>/job.log`. Ctrl-C or SIGTERM stops the whole process
group (torchrun's workers included) before we return.

This is the attached, in-process path (the CLI waits on the child it started). Detached
local jobs that another process can find, poll and cancel go through
`backends/local.py` (`submit` on a local profile).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

from nemotron_core.execution.code_root import with_code_root
from nemotron_core.launch import Plan
from nemotron_core.paths import PACKAGE_ROOT, state_env


def job_environment(plan_env: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    for k, v in state_env().items():
        env.setdefault(k, v)
    env.update(plan_env)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return with_code_root(env, str(PACKAGE_ROOT))


def execute_local(plan: Plan, job_dir: Path, *, echo: IO[str] | None = None) -> int:
    """Run `plan.command` in `job_dir`; return its exit code (128+N when killed by signal N)."""
    echo = echo or sys.stdout
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    env = job_environment(plan.env)
    for key in ("TMPDIR", "HF_HOME", "TORCHINDUCTOR_CACHE_DIR", "RAY_TMPDIR"):
        Path(env[key]).mkdir(parents=True, exist_ok=True) if key in env else None
    with open(job_dir / "job.log", "ab") as log:
        proc = subprocess.Popen(plan.command, cwd=job_dir, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        previous = signal.signal(signal.SIGTERM, lambda *_: _stop(proc))
        try:
            assert proc.stdout is not None  # stdout=PIPE
            for line in iter(proc.stdout.readline, b""):
                log.write(line)
                echo.write(line.decode(errors="replace"))
                echo.flush()
            code = proc.wait()
        except KeyboardInterrupt:
            _stop(proc)
            code = proc.wait()
        finally:
            signal.signal(signal.SIGTERM, previous)
    return code if code >= 0 else 128 - code


def _stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the job's process group (trainers checkpoint on it), SIGKILL after a grace period."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
