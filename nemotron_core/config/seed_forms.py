"""`parse_config` and `build_job_config` taking the seed's arguments as well as this project's.

The seed (NVIDIA's `nemo_runspec.config`) calls them with the invocation's context:

    train = parse_config(cfg.ctx, SPEC.config_dir, SPEC.config.default)
    job = build_job_config(train, cfg.ctx, SPEC.name, SCRIPT_PATH, cfg.argv, env_profile=env)

Here the same names also take this project's form (`parse_config(config_dir, name, overrides)`,
`build_job_config(train, spec=..., mode=..., profile=...)`), which the pipeline uses. The form is
told by the arguments (a context object first, or positional arguments after the config), and
the seed form is translated into a call of the one implementation (loader.py, job.py): same
checks, same pinned artifacts, same secret scan.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from nemotron_core.config import job as _job
from nemotron_core.config import loader as _loader
from nemotron_core.errors import ConfigError
from nemotron_core.profiles import Profile
from nemotron_core.runspec import parse


def parse_config(*args: Any, **kwargs: Any) -> DictConfig:
    """`parse_config(ctx, config_dir, default_config)` (seed) or `parse_config(config_dir, name, overrides)`."""
    first = args[0] if args else kwargs.get("ctx", kwargs.get("config_dir"))
    if "ctx" not in kwargs and isinstance(first, (str, os.PathLike)):
        return _loader.parse_config(*args, **kwargs)
    return _seed_parse_config(*args, **kwargs)


def _seed_parse_config(ctx: Any, config_dir: str | Path, default_config: str = "default") -> DictConfig:
    return _loader.parse_config(Path(config_dir), getattr(ctx, "config", None), list(getattr(ctx, "dotlist", [])),
                                default=default_config)


def build_job_config(train_config: DictConfig, *args: Any, **kwargs: Any) -> DictConfig:
    """`build_job_config(train, ctx, recipe_name, script_path, argv, env_profile=...)` (seed)
    or `build_job_config(train, spec=..., mode=..., profile=...)`."""
    if not args and "ctx" not in kwargs:
        return _job.build_job_config(train_config, **kwargs)
    return _seed_build_job_config(train_config, *args, **kwargs)


def _seed_build_job_config(train_config: DictConfig, ctx: Any, recipe_name: str, script_path: str | Path,
                           argv: Sequence[str] = (), *, env_profile: Any = None) -> DictConfig:
    if env_profile is not None and not isinstance(env_profile, Profile):
        raise ConfigError(f"build_job_config: env_profile must be the profile parse_env() returned, "
                          f"got {type(env_profile).__name__}")
    spec = parse(script_path)
    if recipe_name and recipe_name != spec.name:  # the caller's name is what job.yaml records
        spec = dataclasses.replace(spec, name=recipe_name)
    return _job.build_job_config(
        train_config, spec=spec, mode=getattr(ctx, "mode", "local"), profile=env_profile, argv=list(argv),
        dotlist=list(getattr(ctx, "dotlist", [])), passthrough=list(getattr(ctx, "passthrough", [])),
        config_name=getattr(ctx, "config", None))
