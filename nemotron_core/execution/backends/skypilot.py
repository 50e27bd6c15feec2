"""Submitting to SkyPilot: SkyPilot's own credential check (`sky check <cloud>`) first, then a one-line stop.

No cloud is reachable from this repository's machines, so launching and tracking SkyPilot clusters is
not built: what is built and tested is the task (`--dry-run`, skypilot_profile.render_task; SkyPilot's
launch dry-run in tests/execution/test_cloud_executors.py) and this refusal, naming the profile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nemotron_core.errors import NemotronError, ProfileError
from nemotron_core.execution.backends.cloud import CloudBackend
from nemotron_core.execution.options import job_options
from nemotron_core.execution.refs import JobRef
from nemotron_core.launch import Plan


def task_cloud(executor: Any) -> str | None:
    """The cloud the profile names: `cloud = "aws"`, or the first part of `infra = "k8s/context"`."""
    return executor.cloud or (executor.infra or "").split("/", 1)[0] or None


def sky_check(cloud: str | None) -> tuple[str, list[str]]:
    """SkyPilot's `sky check` for one cloud (all when None), in this process: (the cloud's name as
    SkyPilot spells it, the clouds it enables)."""
    from sky import check, sky_logging  # optional extra (skypilot)
    from sky.clouds import cloud as sky_cloud  # optional extra (skypilot)
    from sky.utils import registry  # optional extra (skypilot)

    name = str(registry.CLOUD_REGISTRY.from_str(cloud)) if cloud else "any cloud"  # "k8s" -> "Kubernetes"
    try:
        with sky_logging.silent():  # in-process, SkyPilot prints its API server's encoded spinners
            found = check.check_capability(sky_cloud.CloudCapability.COMPUTE, quiet=True,
                                           clouds=[cloud] if cloud else None)
    except SystemExit:  # SkyPilot's check exits when no cloud is enabled
        return name, []
    return name, [n for names in found.values() for n in names]


class SkyPilotBackend(CloudBackend):
    kind = "skypilot"

    def submit(self, executor: Any, plan: Plan, ref: JobRef, secrets_path: Path | None) -> JobRef:
        opts = job_options(executor)
        cloud = task_cloud(executor)
        name, enabled = sky_check(cloud)
        if not enabled or (cloud and name not in enabled):
            raise ProfileError(f"profile '{opts.profile}': SkyPilot has no access to {name} (`sky check "
                               f"{(cloud or '').lower()}` says what is missing); `--dry-run` shows the task without it")
        raise NemotronError(f"profile '{opts.profile}': SkyPilot can reach {name if cloud else ', '.join(enabled)}, "
                            f"but launching and tracking its clusters is not built in this repository (rendered "
                            f"only: use --dry-run)")
