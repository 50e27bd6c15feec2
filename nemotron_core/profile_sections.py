"""The special sections of env.toml in the seed's shapes, read into this project's.

- `[wandb]` (project, entity, mode, api_key_env) at the top is every profile's W&B default: a
  profile's own `[p.wandb]` keys win over it (profiles.resolve_profile merges it in), so every job
  gets WANDB_PROJECT / WANDB_ENTITY.
- `[artifacts]`: ours is `root` (+ storage_options) or `backend = "wandb"`; the seed also writes
  `[artifacts.manifest] root = ...` (a file registry at that root) and `wandb = true` (artifacts
  on W&B, project/entity from `[wandb]`). Both read as ours; with both, the manifest root is the
  registry (one registry per env.toml here).
- `[cli] theme`: the Pygments style of the config panel the CLI prints (display.py).
"""

from __future__ import annotations

import importlib
from typing import Any

from nemotron_core.errors import ProfileError, did_you_mean

_MANIFEST_KEYS = ("root", "storage_options")


def artifacts_section(raw: dict[str, Any], wandb: dict[str, Any], source: str) -> dict[str, Any]:
    """`[artifacts]` in this project's shape (the seed's `manifest` / `wandb = true` translated)."""
    out = {k: v for k, v in raw.items() if k not in ("manifest", "wandb")}
    manifest = raw.get("manifest")
    if manifest is not None:
        if not isinstance(manifest, dict):
            raise ProfileError(f"{source}: [artifacts] manifest = {manifest!r}: must be a table, "
                               f"e.g. [artifacts.manifest] root = \"/lustre/team/artifacts\"")
        unknown = [k for k in manifest if k not in _MANIFEST_KEYS]
        if unknown:
            raise ProfileError(f"{source}: [artifacts.manifest] unknown key '{unknown[0]}'"
                               f"{did_you_mean(unknown[0], _MANIFEST_KEYS)}; allowed: {', '.join(_MANIFEST_KEYS)}")
        for key in _MANIFEST_KEYS:
            if key in manifest and key in out and out[key] != manifest[key]:
                raise ProfileError(f"{source}: [artifacts] {key} and [artifacts.manifest] {key} differ; keep one")
            if key in manifest:
                out[key] = manifest[key]
    flag = raw.get("wandb")
    if flag is not None and not isinstance(flag, bool):
        raise ProfileError(f"{source}: [artifacts] wandb = {flag!r}: must be true or false")
    if flag and "root" not in out and out.get("backend", "wandb") == "wandb":
        out["backend"] = "wandb"
        for key in ("project", "entity", "mode", "api_key_env"):
            if key in wandb and key not in out:
                out[key] = wandb[key]
    return out


#: rich's own ANSI themes, usable beside the Pygments styles.
_RICH_THEMES = ("ansi_dark", "ansi_light")


def cli_theme(cli: dict[str, Any], source: str) -> str | None:
    """`[cli] theme`: the style it names, or None (the default) when it is unset or names no style
    rich knows — the seed's guide writes `github-light`, which rich also shows in its default style."""
    theme = cli.get("theme")
    if theme is None:
        return None
    if not isinstance(theme, str):
        raise ProfileError(f"{source}: [cli] theme = {theme!r}: must be a string (a Pygments style, e.g. \"monokai\")")

    styles = importlib.import_module("pygments.styles")  # rich's highlighter (untyped: no stubs installed)
    return theme if theme in _RICH_THEMES or theme in set(styles.get_all_styles()) else None
