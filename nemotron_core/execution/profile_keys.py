"""Reading execution keys out of an env.toml profile, shared by the executor builders
(executors.py for local/Slurm/Ray, docker_profile.py for Docker). Values are data: checked
here, one `error:` line naming the profile and key when they are wrong.
"""

from __future__ import annotations

from typing import Any, Iterable

from nemotron_core.errors import ProfileError, did_you_mean, one_of
from nemotron_core.execution.shellsafe import check_mount
from nemotron_core.profiles import Profile
from nemotron_core.runspec import Runspec


PACKAGERS = ("self-contained", "code", "git", "none")


def packager_choice(profile: Profile | None, spec: Runspec) -> str:
    """The profile's `packager`, else the runspec's default: "code" for Ray recipes (their workers
    import across the repo), else "self-contained". packaging.py builds the packager it names."""
    choice = profile.get("packager") if profile is not None else None
    if choice is None:
        choice = "code" if spec.run.launch == "ray" else "self-contained"
    choice = str(choice).replace("_", "-")
    if choice not in PACKAGERS:
        name = profile.name if profile else "local"
        raise ProfileError(f"profile '{name}': packager = {choice!r} is not one of {one_of(PACKAGERS)}"
                           f"{did_you_mean(choice, PACKAGERS)}")
    return choice


def get_startup_commands(profile: Profile | None) -> list[str]:
    """The profile's `startup_commands` (shell lines run in the job before the command)."""
    if profile is None:
        return []
    commands = profile.get("startup_commands")
    if not commands:
        return []
    if not isinstance(commands, list) or not all(isinstance(c, str) for c in commands):
        raise ProfileError(f"profile '{profile.name}': startup_commands = {commands!r} must be a list of shell lines")
    return list(commands)


def remote_cluster(profile: Profile | None) -> bool:
    """True when the job runs on another machine (SSH tunnel): this host's paths are not valid there."""
    return profile is not None and profile.get("tunnel", "local") == "ssh"


def image(profile: Profile, spec: Runspec | None) -> str | None:
    for key in ("container_image", "container"):
        if profile.get(key) is not None:
            return profile.get(key) or None  # "" = no container
    return getattr(spec, "image", None) or None


def int_key(profile: Profile, key: str, default: int | None) -> int | None:
    value = profile.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProfileError(f"profile '{profile.name}': {key} = {value!r} must be a non-negative integer")
    return value


def mounts(profile: Profile, image: str | None, extra: Iterable[str], job_config: Any) -> list[str]:
    """The profile's `mounts`, the caller's, and the `${auto_mount:SRC}` pairs job.yaml recorded (run.mounts)."""
    recorded: list[str] = []
    try:
        if job_config is not None and "run" in job_config and job_config.run.get("mounts"):
            recorded = [str(m) for m in job_config.run.mounts]
    except Exception:  # a job config without a run section
        recorded = []
    if recorded and not image:
        raise ProfileError(f"profile '{profile.name}': the config uses ${{auto_mount:...}} ({recorded[0]}), which "
                           f"needs a container to mount into; this profile has none (container_image = \"\"): "
                           f"write the host path itself instead")
    declared = profile.get("mounts") or []
    if not isinstance(declared, (list, tuple)):
        raise ProfileError(f"profile '{profile.name}': mounts = {declared!r} must be a list of \"host:container\"")
    out: list[str] = []
    for m in [*declared, *extra, *recorded]:
        m = check_mount(m, profile=profile.name)
        if m not in out:
            out.append(m)
    return out
