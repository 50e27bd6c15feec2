"""`parse_env(ctx)`: the env.toml profile an invocation names, the seed's way.

    env = parse_env(cfg.ctx)        # None without --run/--batch (a local run), else the Profile

A thin layer over profiles.py (`load_env(...).profile(name)`): the same file lookup
($NEMOTRON_ENV_FILE, else env.toml walking up to the project root), `extends` chains and
checks, with one-line errors naming the file and key. The seed returns an OmegaConf
DictConfig; here it is the `Profile` every toolkit function takes (`env.get("partition")`,
`env.executor`, `env.name` read the same way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nemotron_core.profiles import Profile, find_env_file, load_env

__all__ = ["find_env_file", "parse_env"]


def parse_env(ctx: Any, *, config_path: Path | None = None) -> Profile | None:
    """The profile `ctx.profile` names (from --run/--batch), or None when it names none."""
    name = getattr(ctx, "profile", None)
    if not name:
        return None
    return load_env(config_path).profile(name)
