"""OmegaConf resolvers: `${art:...}` and `${auto_mount:...}`.

`${art:NAME[:VERSION|ALIAS],FIELD}` asks the artifact lookup for one field of one
artifact version and records the version it pinned, e.g.
`${art:nano3-pretrain-model,path}` → the model dir of `nano3-pretrain-model:v3`, and
job.yaml records `run.artifacts["nano3-pretrain-model"] = "nano3-pretrain-model:v3"`.
The lookup is pluggable (`set_artifact_lookup`) so that the config pipeline does not
depend on a registry backend; with none set, `${art:}` fails with a clear error.

`${auto_mount:SRC[,DEST]}` makes a host path available inside a containerized job: it
returns SRC for local runs and DEST (default `/nemo_run/mounts/<basename>`) for remote
ones, and records `SRC:DEST` so the executor adds the mount.

Resolution happens inside `resolution_scope()`, which collects what was pinned/mounted.
"""

from __future__ import annotations

import contextlib
import contextvars
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf

from nemotron_core.errors import ArtifactError, ConfigError

#: (ref "name[:version|alias]", field) -> (value, pinned ref "name:vN")
ArtifactLookup = Callable[[str, str], tuple[Any, str]]

_lookup: ArtifactLookup | None = None


@dataclass
class Resolution:
    """What one resolution pass pinned and mounted."""

    remote: bool = False
    artifacts: dict[str, str] = field(default_factory=dict)  # ref as written -> pinned ref
    mounts: list[str] = field(default_factory=list)  # "SRC:DEST"
    pins: dict[str, str] = field(default_factory=dict)  # ref as written -> pinned (cache for one pass)


_current: contextvars.ContextVar[Resolution | None] = contextvars.ContextVar("nemotron_resolution", default=None)


def set_artifact_lookup(fn: ArtifactLookup | None) -> None:
    """Install the function `${art:}` uses (None removes it)."""
    global _lookup
    _lookup = fn


@contextlib.contextmanager
def resolution_scope(remote: bool = False):
    """Collect pinned artifact versions and mounts while resolving one config."""
    register_resolvers()
    res = Resolution(remote=remote)
    token = _current.set(res)
    try:
        yield res
    finally:
        _current.reset(token)


def _art(ref: str, fld: str | None = None) -> Any:
    if not isinstance(ref, str) or not ref or fld is None:
        raise ConfigError(f"${{art:{ref}}}: expected ${{art:NAME[:VERSION],FIELD}}, e.g. ${{art:nano3-sft-model,path}}")
    if _lookup is None:
        raise ArtifactError(f"${{art:{ref},{fld}}}: no artifact registry is configured for this run; "
                            f"set [artifacts] in env.toml or pass the value directly")
    res = _current.get()
    # Within one resolution pass, every mention of the same ref pins the same version.
    pinned_ref = res.pins.get(ref) if res else None
    value, pinned = _lookup(pinned_ref or ref, fld)
    if res is not None:
        res.pins.setdefault(ref, pinned)
        res.artifacts[ref] = pinned
    return value


def _auto_mount(src: str, dest: str | None = None) -> str:
    if not isinstance(src, str) or not src.startswith("/"):
        raise ConfigError(f"${{auto_mount:{src}}}: the source must be an absolute host path")
    res = _current.get()
    target = dest or posixpath.join("/nemo_run/mounts", posixpath.basename(src.rstrip("/")) or "root")
    if res is None or not res.remote:
        return src
    mount = f"{src}:{target}"
    if mount not in res.mounts:
        res.mounts.append(mount)
    return target


def register_resolvers() -> None:
    """Register `art` and `auto_mount` with OmegaConf (idempotent)."""
    if not OmegaConf.has_resolver("art"):
        OmegaConf.register_resolver("art", _art, use_cache=False, annotation_validation="off")
    if not OmegaConf.has_resolver("auto_mount"):
        OmegaConf.register_resolver("auto_mount", _auto_mount, use_cache=False, annotation_validation="off")
