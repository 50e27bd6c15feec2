"""`executor = "skypilot"` profiles → nemo-run's `SkypilotExecutor` (optional extra: pip install '.[skypilot]').

    [sky]
    executor = "skypilot"
    cloud = "aws"                          # or infra = "k8s/my-context" (not both)
    region = "us-east-1"
    accelerators = "H100"                  # the GPU type; gpus_per_node gives the count
    gpus_per_node = 8
    nodes = 2                              # SkyPilot's num_nodes
    disk_size = 500                        # GB
    use_spot = true
    container_image = "nvcr.io/nvidia/nemo:25.09"   # SkyPilot gets image_id "docker:nvcr.io/..."
    file_mounts = {"/data" = "/lustre/data"}   # REMOTE = LOCAL
    cluster_name = "nemotron"

`--dry-run` prints the task nemo-run builds (`SkypilotExecutor.to_task`) as SkyPilot's YAML, after
SkyPilot re-reads it (`Task.from_yaml_config`: its own schema check). SkyPilot's launch dry-run
(credential check, optimizer, provisioner) is not part of `--dry-run`: it needs the cloud's API and
SkyPilot's catalogs; tests/execution/test_cloud_executors.py runs it against a local AWS API.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from nemotron_core.compat import nemo_run
from nemotron_core.errors import ProfileError
from nemotron_core.execution.backends.cloud_command import job_command
from nemotron_core.execution.options import JobOptions, attach as _attach
from nemotron_core.execution.shellsafe import check_value
from nemotron_core.launch import Plan, resources
from nemotron_core.profiles import Profile
from nemotron_core.runspec import Runspec


def _text(profile: Profile, key: str) -> str | None:
    value = profile.get(key)
    return None if value in (None, "") else check_value(value, profile=profile.name, key=key)


def skypilot_executor(profile: Profile, spec: Runspec, *, env: dict[str, str], base: dict[str, Any],
                      nodes: int | None, gpus_per_node: int | None) -> Any:
    run = nemo_run()
    from nemo_run.core.execution import skypilot as module  # lazy: nemo_run.core.execution is a heavy import

    if not getattr(module, "_SKYPILOT_AVAILABLE", False):
        raise ProfileError(f"profile '{profile.name}': executor = 'skypilot' needs SkyPilot, an optional extra: "
                           f"pip install -e '.[skypilot]'")
    if profile.get("infra") and any(profile.get(k) for k in ("cloud", "region", "zone")):
        raise ProfileError(f"profile '{profile.name}': infra and cloud/region/zone exclude each other; use one")
    mounts = profile.get("file_mounts") or {}
    if not isinstance(mounts, dict) or not all(str(k).startswith("/") for k in mounts):
        raise ProfileError(f"profile '{profile.name}': file_mounts = {mounts!r} must be a table of "
                           f"\"/remote/path\" = \"local path\"")
    n, g = resources(spec, profile, nodes, gpus_per_node)
    accelerators = _text(profile, "accelerators")
    if g and not accelerators:
        raise ProfileError(f"profile '{profile.name}': {g} GPUs per node asked, but no accelerators = \"H100\" "
                           f"(the GPU type SkyPilot should provision)")
    disk = profile.get("disk_size")
    image = _text(profile, "container_image") or _text(profile, "container") or getattr(spec, "image", None)
    # nemo-run passes container_image through as SkyPilot's image_id, which SkyPilot reads as a VM image
    # (an AMI on AWS: its launch dry-run looks it up and fails) unless it starts with "docker:".
    if image and not image.startswith("docker:"):
        image = f"docker:{image}"
    ex = module.SkypilotExecutor(
        cloud=_text(profile, "cloud"), region=_text(profile, "region"), zone=_text(profile, "zone"),
        infra=_text(profile, "infra"), gpus=accelerators if g else None, gpus_per_node=g or None,
        num_nodes=max(n, 1), disk_size=disk, use_spot=profile.get("use_spot"),
        container_image=image,
        file_mounts={check_value(k, profile=profile.name, key="file_mounts"):
                     check_value(v, profile=profile.name, key="file_mounts") for k, v in mounts.items()} or None,
        cluster_name=_text(profile, "cluster_name"), env_vars=env, packager=run.GitArchivePackager(), retries=0)
    return _attach(ex, JobOptions(**base, python=_text(profile, "python") or "python"))


def task_name(recipe: str) -> str:
    """SkyPilot's task names allow letters, digits, '_', '.', '-' (its launch refuses 'nano3/data/prep')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", recipe).strip("_.-") or "nemotron"


def render_task(executor: Any, plan: Plan, job_dir: str | Path) -> str:
    """The task nemo-run would launch, as SkyPilot YAML, validated by SkyPilot's own schema."""
    from sky.task import Task  # optional extra (skypilot)

    from sky.utils import yaml_utils  # optional extra (skypilot, pinned at 0.14.1: yaml_utils since 0.10.3)

    ex = copy.copy(executor)
    ex.file_mounts = dict(executor.file_mounts or {})
    ex.job_dir = str(job_dir)  # to_task mounts it at /nemo_run
    task = ex.to_task(task_name(plan.recipe), job_command(executor, plan, job_dir, "/nemo_run"))
    config = task.to_yaml_config()
    text = yaml_utils.dump_yaml_str(config)
    Task.from_yaml_config(copy.deepcopy(config))  # SkyPilot's schema check (it consumes the dict it reads)
    return text
