"""A recipe config's own `run:` section, in the seed's layout.

    run:
      data: nano3-sft-data:latest          # an artifact alias: ${art:data,path}, ${art:data,pack_size}
      model: nano3-pretrain-model:best
      env:                                 # overrides the profile for this recipe
        container: nvcr.io/nvidia/nemo:25.11.nemotron_3_nano
        mounts: [/lustre:/lustre]
        startup_commands: ["pip list"]

The section is input: job.yaml keeps it as the user wrote it (resolved) and the toolkit's
provenance (mode, profile, cli, ...) is written beside it under `run`, so those names are
reserved; the aliases pin like any `${art:}` ref (run.artifacts records "nano3-sft-data:latest"
-> "nano3-sft-data:v3"). train.yaml drops `run` as before: every `${art:data,...}` and
`${run.x}` is resolved by then. `run.wandb.project|entity` default to env.toml's `[wandb]`
(`fill_run_wandb`), as the seed's configs expect (`wandb_project: ${run.wandb.project}`).

`run.env` is a profile table (the env.toml schema checks it, unknown keys refused with a hint):
its values override the profile's, lists of `mounts` and `startup_commands` are added after the
profile's, `env`/`env_vars` tables merge; a null leaves the profile's value; `executor` and
`extends` are the profile's alone (the `--run` choice says where a job runs, not the config).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nemotron_core.errors import ConfigError
from nemotron_core.profiles import BUILTIN_LOCAL, Profile

#: Keys the toolkit writes under job.yaml's `run` (job.py): a config's `run:` may not use them.
PROVENANCE_KEYS = ("mode", "profile", "cli", "recipe", "git", "artifacts", "mounts", "repos", "pending", "created",
                   "version")
#: run.env keys that never come from a config.
PROFILE_ONLY = ("executor", "extends")
#: Lists a config's run.env adds to the profile's rather than replacing.
APPENDED = ("mounts", "startup_commands")
MERGED = ("env", "env_vars")


def user_run(train: DictConfig) -> dict[str, Any]:
    """The config's `run:` section as written (unresolved), checked; {} when there is none."""
    if "run" not in train:
        return {}
    node = train._get_node("run")
    if not isinstance(node, DictConfig):
        raise ConfigError("config key 'run' must be a section: artifact aliases (data: nano3-sft-data:latest) "
                          "and env (container, mounts, startup_commands)")
    raw = OmegaConf.to_container(node, resolve=False)
    assert isinstance(raw, dict)
    for key in raw:
        if key in PROVENANCE_KEYS:
            raise ConfigError(f"config key 'run.{key}' is reserved: job.yaml's run.{key} is written by the toolkit "
                              f"({', '.join(PROVENANCE_KEYS)}); rename it (run: holds artifact aliases and env)")
    if "env" in raw and raw["env"] is not None and not isinstance(raw["env"], dict):
        raise ConfigError("config key 'run.env' must be a section of profile keys (container, mounts, "
                          "startup_commands, ...), as in env.toml")
    return {str(k): v for k, v in raw.items()}


def aliases(run: dict[str, Any]) -> dict[str, str]:
    """`run.KEY: ref` entries usable as `${art:KEY,FIELD}` (every text value outside env)."""
    return {str(k): v for k, v in run.items() if k != "env" and isinstance(v, str) and v}


def fill_run_wandb(train: DictConfig, wandb: Any) -> None:
    """`run.wandb.project` / `run.wandb.entity` from env.toml's `[wandb]` where the config leaves them unset,
    so seed configs' `${run.wandb.project}` resolve (a value the config sets wins)."""
    values = {k: wandb.get(k) for k in ("project", "entity")} if isinstance(wandb, dict) else {}
    if not any(v is not None for v in values.values()):
        return
    node = train._get_node("run") if "run" in train else None
    if node is not None and not isinstance(node, DictConfig):
        return  # not a section: user_run() says so in one line
    raw = OmegaConf.to_container(node, resolve=False) if node is not None else {}  # read as written, nothing resolved
    current = raw.get("wandb", {}) if isinstance(raw, dict) else {}
    if not isinstance(current, dict):
        return
    for key, value in values.items():
        if value is not None and current.get(key) is None:
            OmegaConf.update(train, f"run.wandb.{key}", value, force_add=True)


def apply_run_env(profile: Any, env: Any, where: str = "config") -> Any:
    """The profile with a config's resolved `run.env` laid over it (module docstring); `profile` if none."""
    if not env:
        return profile
    from nemotron_core.profile_schema import validate_env  # lazy: pulls in pydantic, importlib.metadata

    table = {str(k): v for k, v in dict(env).items() if v is not None}
    validate_env({"run.env": table}, where, ())
    base = dict(profile.data) if profile is not None else dict(BUILTIN_LOCAL)
    for key, value in table.items():
        if key in PROFILE_ONLY:
            continue
        if key in APPENDED and isinstance(base.get(key), list):
            base[key] = [*base[key], *[v for v in value if v not in base[key]]]
        elif key in MERGED and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    if "container" in table:  # the seed's name; this project's executors read container_image first
        base["container_image"] = table["container"]
    if profile is None:
        return Profile(name="local", data=base, chain=("local",), source=None)
    return dataclasses.replace(profile, data=base)
