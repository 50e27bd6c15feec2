"""Container images as enroot squash files on a Slurm cluster (`nemotron kit squash IMAGE`).

pyxis starts containers much faster from a local `.sqsh` file than from a registry, so a
profile can point `container_image` at one. `ensure_squashed_image(profile, image)`:

1. the file is `<squash_dir>/<image name with : and / made safe>.sqsh`, where
   squash_dir = the profile's `squash_dir`, else `<remote_job_dir>/images` (SSH
   clusters), else `<state>/images` (a cluster on this host);
2. if that file exists (and not `force`) nothing runs: its path is returned;
3. else one Slurm step on a compute node (login nodes are too small for an import)
   checks for enroot — a clear error when it is absent — and runs
   `enroot import --output <file>.partial docker://IMAGE`, then renames the file
   (an interrupted import never leaves a file that passes step 2). enroot's cache and
   data dirs are under squash_dir/.enroot, not $HOME.

`dry_run=True` returns the plan (the commands) without running anything. The step
uses the profile's account/partition/time (`squash_time`, default 01:00:00).
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from typing import Any, Callable

from nemotron_core.errors import NemotronError, ProfileError
from nemotron_core.execution.backends.slurm_shell import SlurmShell, remote_job_dir
from nemotron_core.execution.ssh import ssh_cluster
from nemotron_core.paths import state_dir
from nemotron_core.profiles import Profile

MISSING_ENROOT_RC = 127
_MISSING = "nemotron-squash: enroot not found"


class SquashError(NemotronError):
    """The enroot import could not run or failed."""


@dataclass(frozen=True)
class SquashPlan:
    image: str
    path: str  # the .sqsh file on the cluster's filesystem
    check: list[str]  # argv: does the file exist?
    srun: list[str]  # argv: the import step

    def commands(self) -> list[str]:
        return [shlex.join(self.check), shlex.join(self.srun)]


def squash_name(image: str) -> str:
    """nvcr.io/nvidia/nemo:25.11 → nvcr.io+nvidia+nemo+25.11.sqsh (unique per image reference)."""
    ref = image.split("://", 1)[-1]
    return re.sub(r"[^A-Za-z0-9._-]+", "+", ref).strip("+") + ".sqsh"


def squash_dir(profile: Profile) -> str:
    if profile.get("squash_dir"):
        return str(profile.get("squash_dir")).rstrip("/")
    if profile.get("tunnel", "local") == "ssh":
        return f"{remote_job_dir(profile)}/images"
    return str(state_dir() / "images")


def plan_squash(profile: Profile | None, image: str) -> SquashPlan:
    if profile is None or profile.executor != "slurm":
        name = getattr(profile, "name", "local")
        raise ProfileError(f"squashing needs a Slurm profile (executor = \"slurm\"); '{name}' is "
                           f"{getattr(profile, 'executor', 'local')}: pass --run <slurm profile>")
    if not image or image.startswith("-"):
        raise SquashError(f"image {image!r}: give a container image, e.g. nvcr.io/nvidia/nemo:25.11")
    folder = squash_dir(profile)
    path = f"{folder}/{squash_name(image)}"
    enroot = f"{folder}/.enroot"
    source = image if "://" in image else f"docker://{image}"
    body = (f"command -v enroot >/dev/null 2>&1 || {{ echo \"{_MISSING} on $(hostname)\" >&2; "
            f"exit {MISSING_ENROOT_RC}; }}; "
            f"export ENROOT_RUNTIME_PATH={shlex.quote(enroot)}/runtime ENROOT_CACHE_PATH={shlex.quote(enroot)}/cache "
            f"ENROOT_DATA_PATH={shlex.quote(enroot)}/data; "
            f"mkdir -p {shlex.quote(folder)} \"$ENROOT_RUNTIME_PATH\" \"$ENROOT_CACHE_PATH\" \"$ENROOT_DATA_PATH\" && "
            f"rm -f {shlex.quote(path)}.partial && "
            f"enroot import --output {shlex.quote(path)}.partial {shlex.quote(source)} && "
            f"mv -f {shlex.quote(path)}.partial {shlex.quote(path)}")
    args = ["srun", "--nodes=1", "--ntasks=1", f"--time={profile.get('squash_time', '01:00:00')}",
            "--job-name=nemotron-squash"]
    if profile.get("account"):
        args.append(f"--account={profile.get('account')}")
    partition = profile.get("run_partition") or profile.get("partition")
    if partition:
        args.append(f"--partition={partition}")
    return SquashPlan(image=image, path=path, check=["test", "-f", path], srun=[*args, "bash", "-c", body])


def ensure_squashed_image(profile: Profile, image: str, *, force: bool = False, dry_run: bool = False,
                          echo: Callable[[str], Any] = print) -> str:
    """The path of IMAGE's squash file on the profile's cluster, importing it first when missing."""
    plan = plan_squash(profile, image)
    if dry_run:
        echo(f"# squash {image} on profile '{profile.name}' (dry run: nothing runs)")
        for command in plan.commands():
            echo(command)
        return plan.path
    if profile.get("tunnel", "local") == "ssh":
        cluster = ssh_cluster(profile)
    else:
        cluster = {"tunnel": "local", "slurm_conf": profile.get("slurm_conf") or os.environ.get("SLURM_CONF")}
    shell = SlurmShell(cluster)
    if not force and shell.run(plan.check).returncode == 0:
        echo(f"squash file exists, skipping the import: {plan.path}")
        return plan.path
    echo(f"importing {image} → {plan.path} (one Slurm step; this can take a while)")
    out = shell.run(plan.srun, timeout=6 * 3600)
    if out.returncode != 0:
        text = (out.stderr or "") + (out.stdout or "")
        missing = re.search(re.escape(_MISSING) + r" on (\S+)", text)
        if missing:
            host = missing[1]
            raise SquashError(f"enroot is not installed on the compute node ({host}) of profile '{profile.name}': "
                              f"install enroot (and pyxis) there, or use a profile whose nodes have it")
        last = " ".join(text.strip().splitlines()[-1:]) or f"exit code {out.returncode}"
        raise SquashError(f"enroot import of {image} failed (srun exit {out.returncode}): {last}")
    echo(f"squashed {image} → {plan.path}")
    return plan.path
