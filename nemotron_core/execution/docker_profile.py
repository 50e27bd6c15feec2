"""`executor = "docker"` profiles → nemo-run's `DockerExecutor` (run by backends/docker.py).

    [docker]
    executor = "docker"
    container_image = "nemotron-test:0123abcd"   # required (or `container`, or the runspec's image)
    python = "/opt/venv/bin/python"              # the interpreter inside the image (default "python")
    mounts = ["/data:/data:ro"]                  # docker -v binds, besides the state folder and job dir
    gpus_per_node = 2                            # --gpus 2 (0/absent: no GPU; the runspec's count otherwise)
    shm_size = "16g"                             # --shm-size
    network = "none"                             # none (default: loopback only) or host; never a bridge
    ipc_mode = "host"                            # --ipc
    ulimits = ["memlock=-1:-1"]                  # --ulimit
    runtime = "nvidia"                           # --runtime
    docker_host = "unix:///run/docker.sock"      # default $DOCKER_HOST, else the client's default

One node only (nemo-run's DockerExecutor has no multi-node): nodes > 1 is refused here, before
anything is written. Values are data: they become single argv words of `docker run`, checked for
control characters; bind mounts must be "host:container[:ro|rw]" with absolute paths.
"""

from __future__ import annotations

import os
from typing import Any, Iterable

from nemotron_core.compat import nemo_run
from nemotron_core.errors import ProfileError
from nemotron_core.execution.options import JobOptions, attach
from nemotron_core.execution.profile_keys import image as profile_image, mounts as profile_mounts
from nemotron_core.execution.shellsafe import check_mount, check_value
from nemotron_core.launch import resources
from nemotron_core.profiles import Profile
from nemotron_core.runspec import Runspec

NETWORKS = ("none", "host")


def _text(profile: Profile, key: str) -> str | None:
    value = profile.get(key)
    return None if value in (None, "") else check_value(value, profile=profile.name, key=key)


def _bind(profile: Profile, mount: object) -> str:
    text = check_mount(mount, profile=profile.name)
    parts = text.split(":")
    mode_ok = len(parts) == 2 or (len(parts) == 3 and parts[2] in ("ro", "rw"))
    if not mode_ok or not all(p.startswith("/") for p in parts[:2]):
        raise ProfileError(f"profile '{profile.name}': mounts entry {text!r} must be \"/host/path:/container/path\" "
                           f"or with \":ro\"/\":rw\" (absolute paths, no other ':')")
    return text


def docker_executor(profile: Profile, spec: Runspec, *, env: dict[str, str], base: dict[str, Any],
                    nodes: int | None, gpus_per_node: int | None, mounts: Iterable[str], job_config: Any) -> Any:
    """nemo-run's DockerExecutor (untyped: Any) for a docker profile, with its JobOptions attached."""
    name = profile.name
    image = profile_image(profile, spec)
    if not image:
        raise ProfileError(f"profile '{name}': executor = 'docker' needs container_image = \"IMAGE:TAG\" "
                           f"(an image the daemon has: `docker images`)")
    check_value(image, profile=name, key="container_image")
    n, g = resources(spec, profile, nodes, gpus_per_node)
    if n > 1:
        raise ProfileError(f"profile '{name}': executor = 'docker' runs one container on one host, but {n} nodes are "
                           f"asked (runspec/profile/--nodes); use a Slurm profile for multi-node jobs")
    network = profile.get("network") or "none"
    if network not in NETWORKS:
        raise ProfileError(f"profile '{name}': network = {network!r}: docker jobs run with network = \"none\" "
                           f"(loopback only) or \"host\"; bridges are not used here")
    ulimits = profile.get("ulimits") or []
    if not isinstance(ulimits, list):
        raise ProfileError(f"profile '{name}': ulimits = {ulimits!r} must be a list such as [\"memlock=-1:-1\"]")
    volumes = [_bind(profile, m) for m in profile_mounts(profile, image, mounts, job_config)]
    run = nemo_run()
    ex = run.DockerExecutor(
        container_image=image, num_gpus=g or None, ntasks_per_node=g or 1, shm_size=_text(profile, "shm_size"),
        ipc_mode=_text(profile, "ipc_mode"), runtime=_text(profile, "runtime"), network=network,
        ulimits=[check_value(u, profile=name, key="ulimits") for u in ulimits], volumes=volumes, env_vars=env,
        packager=run.Packager(), retries=0)
    host = _text(profile, "docker_host") or os.environ.get("DOCKER_HOST") or None
    python = _text(profile, "python") or "python"
    return attach(ex, JobOptions(**base, python=python, docker_host=host))
