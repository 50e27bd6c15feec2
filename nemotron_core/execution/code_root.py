"""The job's code root goes first on its PYTHONPATH.

Every job the toolkit launches imports the project's packages (`recipes.*`, `nemotron_core`)
from the code it runs, so a recipe script needs no `sys.path` lines of its own. The code
root is where that code is as the job sees it: this checkout (local jobs, a Ray head or a
Docker container on this host), the shipped `<job dir>/code` on a Slurm cluster
(`/nemo_run/code` inside a pyxis container), `/nemo_run/code` on the clouds (DGX Cloud, Lepton,
SkyPilot: their command goes through `run_with_code_root`). It is put first; what the job's own
environment already holds (a container image's entries) stays after it, expanded where the
job runs, so nothing of this host's environment is added to it.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping


def pythonpath_line(code_root: str) -> str:
    """The shell line for a job script: the root is data (quoted), the `${PYTHONPATH:+...}` tail code."""
    return f'export PYTHONPATH={shlex.quote(code_root)}"${{PYTHONPATH:+:$PYTHONPATH}}"'


def run_with_code_root(code_root: str, command: list[str]) -> list[str]:
    """`command` as argv words that set PYTHONPATH first, for a job whose launch script is not ours."""
    return ["bash", "-c", f'{pythonpath_line(code_root)} && exec "$@"', "nemotron-job", *command]


def with_code_root(env: Mapping[str, str], code_root: str) -> dict[str, str]:
    """A child environment built in Python: `env` with the code root first on its PYTHONPATH."""
    rest = env.get("PYTHONPATH")
    return {**env, "PYTHONPATH": code_root + (os.pathsep + rest if rest else "")}
