"""What runs where: the launch plan for one recipe job.

`plan_job(spec, profile, train_path, ...)` decides the executor (from the profile), the
launcher (from the runspec), nodes × GPUs (runspec `[resources]`, overridden by the
profile, overridden by the CLI) and the exact command line. `--dry-run` prints it; the
executors run it. Locally the command uses this interpreter's python/torchrun, so a
job sees the same environment as the CLI.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from nemotron_core.errors import ProfileError

if TYPE_CHECKING:
    from nemotron_core.profiles import Profile
    from nemotron_core.runspec import Runspec


@dataclass(frozen=True)
class Plan:
    recipe: str
    executor: str  # local | slurm | ray | docker | ...
    launcher: str  # torchrun | ray | direct
    nodes: int
    gpus_per_node: int
    nproc_per_node: int  # processes per node (torchrun workers)
    command: list[str]
    script: Path
    train_path: Path
    env: dict[str, str] = field(default_factory=dict)  # non-secret env for the job
    notes: list[str] = field(default_factory=list)

    @property
    def command_line(self) -> str:
        return shlex.join(self.command)


def local_gpu_count() -> int:
    """GPUs on this machine, without importing torch (the NVIDIA driver lists them in /proc)."""
    gpus = Path("/proc/driver/nvidia/gpus")
    count = len(list(gpus.iterdir())) if gpus.is_dir() else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        count = min(count, len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"]))
    return count


def _int(profile: Profile, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProfileError(f"profile '{profile.name}': {key} = {value!r} must be a non-negative integer")
    return value


def resources(spec: Runspec, profile: Profile | None, nodes: int | None = None,
              gpus_per_node: int | None = None) -> tuple[int, int]:
    """(nodes, gpus_per_node): runspec, then profile, then CLI."""
    n, g = spec.resources.nodes, spec.resources.gpus_per_node
    if profile is not None:
        n = _int(profile, "nodes", profile.get("nodes", n))
        g = _int(profile, "gpus_per_node", profile.get("gpus_per_node", g))
    return (nodes if nodes is not None else n), (gpus_per_node if gpus_per_node is not None else g)


def script_command(spec: Runspec, config_path: str, *, python: str | None = None,
                   passthrough: Sequence[str] = ()) -> list[str]:
    """The runspec's `cmd` template filled in, or `python SCRIPT --config CONFIG`.

    The template is code by design (the recipe author wrote it as a shell line); the paths
    put into it are data, quoted before the line is split into words (a space stays inside).
    """
    if spec.run.cmd:
        words = shlex.split(spec.run.cmd.format(script=shlex.quote(str(spec.script_path)),
                                                config=shlex.quote(str(config_path))))
    else:
        words = [python or sys.executable, str(spec.script_path), "--config", config_path]
    if words and words[0] == "python" and python:
        words[0] = python
    return [*words, *passthrough]


def plan_job(spec: Runspec, profile: Profile | None, train_path: Path, *, passthrough: Sequence[str] = (),
             nodes: int | None = None,
             gpus_per_node: int | None = None) -> Plan:
    executor = profile.executor if profile is not None else "local"
    n, g = resources(spec, profile, nodes, gpus_per_node)
    notes: list[str] = []
    if executor == "local":
        # No GPUs here is normal: the profile says how many CPU workers to start instead.
        nproc = _int(profile, "nproc_per_node", profile.get("nproc_per_node", 1)) if profile else 1
        available = local_gpu_count()
        if g > available:
            notes.append(f"local executor: the recipe asks for {g} GPU(s), this machine has {available}; "
                         f"running {nproc} process(es) (profile nproc_per_node)")
            g = available
        n = 1
    else:  # slurm and the others: executor != "local" means a profile
        assert profile is not None
        nproc = g or _int(profile, "nproc_per_node", profile.get("nproc_per_node", 1))
    python = sys.executable
    if spec.run.launch == "torchrun" and not spec.run.cmd:
        torchrun = str(Path(python).with_name("torchrun"))
        rdzv = ["--standalone"] if n == 1 else ["--nnodes", str(n)]
        command = [torchrun, *rdzv, "--nproc-per-node", str(nproc), str(spec.script_path),
                   "--config", str(train_path), *passthrough]
    else:
        command = script_command(spec, str(train_path), python=python, passthrough=passthrough)
    env = {k: v for k, v in spec.env.items()}
    if profile is not None:
        env.update({k: str(v) for k, v in (profile.get("env") or {}).items()})
    return Plan(recipe=spec.name, executor=executor, launcher=spec.run.launch, nodes=n, gpus_per_node=g,
                nproc_per_node=nproc, command=command, script=spec.script_path, train_path=Path(train_path),
                env=env, notes=notes)
