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
from typing import IO, Mapping

from nemotron_core.execution.code_root import with_code_root
from nemotron_core.launch import Plan
from nemotron_core.paths import PACKAGE_ROOT, state_env
from nemotron_core.secrets import hf_token_files


def job_environment(plan_env: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    for k, v in state_env().items():
        env.setdefault(k, v)
    env.update(plan_env)
    env.setdefault("PYTHONUNBUFFERED", "1")
    token_file = _hf_login_file(os.environ)
    if token_file is not None and not any(env.get(k) for k in _HF_TOKEN_SOURCES):
        env["HF_TOKEN_PATH"] = str(token_file)  # the file's path; its token stays in the file
    return with_code_root(env, str(PACKAGE_ROOT))


#: Variables through which huggingface_hub gets a token without reading $HF_HOME/token.
_HF_TOKEN_SOURCES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH")


def _hf_login_file(environ: Mapping[str, str]) -> Path | None:
    """The `huggingface-cli login` file this environment points at (HF_TOKEN_PATH, $HF_HOME/token or
    ~/.cache/huggingface/token). The job's HF_HOME is the state folder's, where no login is, so the
    job would not find a token that only exists in that file."""
    return next((path for path in hf_token_files(environ) if path.is_file()), None)


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
