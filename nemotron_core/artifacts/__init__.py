"""Artifacts: how stages hand each other data and models, with versions and lineage.

    from nemotron_core.artifacts import open_registry, config_lookup
    reg = open_registry(env.section("artifacts"))   # None/{} -> <state_dir>/artifacts
    v = reg.publish("nano3-sft-data", out_dir, metadata={"producer": "data_prep.sft"},
                    lineage=["nano3-pretrain-data:v2"])
    reg.resolve("nano3-sft-data:latest").path

Modules (one job each):
    refs            ref/name/alias parsing and validation
    model           ArtifactVersion / ArtifactFile, version records, manifest digest
    hashing         hash-while-copying
    storage         atomic primitives per store (local folder, s3, memory)
    versioning      version allocation by create-if-absent of the version record
    transfer        putting a source folder into a store (copy or rename)
    registry        the backend-independent API (resolve/list/show/lineage/cache keys)
    fsspec_backend  the registry on file://, s3://, memory://
    wandb_backend   the registry on W&B Artifacts (see its docstring for offline limits)
    layouts         layout checks for `nemotron nano3 data|model import`
    lookup          the `${art:...}` lookup for the config pipeline

Nothing heavy is imported here (fsspec/s3fs/wandb load on first use).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .fsspec_backend import FsspecRegistry
from nemotron_core.errors import ArtifactError

from .lookup import config_lookup
from .model import ArtifactFile, ArtifactVersion, LineageNode
from .refs import LATEST, Ref, check_no_secret, parse_ref
from .registry import ArtifactRegistry, GcReport, VerifyResult
from .wandb_backend import WandbRegistry
from nemotron_core.paths import private_umask, state_dir

__all__ = [
    "LATEST",
    "ArtifactFile",
    "ArtifactRegistry",
    "ArtifactVersion",
    "GcReport",
    "VerifyResult",
    "LineageNode",
    "Ref",
    "config_lookup",
    "default_root",
    "open_registry",
    "parse_ref",
]

_CFG_KEYS = {"root", "storage_options", "backend", "project", "entity", "mode", "api_key_env"}


def default_root() -> str:
    """The local artifact root: <state_dir>/artifacts."""
    return str(state_dir() / "artifacts")


def open_registry(artifacts_cfg: Mapping[str, Any] | None = None) -> ArtifactRegistry:
    """A registry for the env.toml `[artifacts]` table.

    {"root": "s3://bucket/prefix", "storage_options": {...}}   fsspec (file://, s3://, memory://)
    {"root": "/abs/path"} or {}/None                            local folder (default $NEMOTRON_ARTIFACTS_ROOT,
                                                                else <state>/artifacts)
    {"backend": "wandb", "project": "...", "entity": ..., "mode": "online"|"offline"}
    """
    private_umask()  # what the registry writes is private by default, whatever root it has
    cfg = dict(artifacts_cfg or {})
    unknown = sorted(set(cfg) - _CFG_KEYS)
    if unknown:
        raise ArtifactError(f"[artifacts] has unknown key {unknown[0]!r}; allowed: {', '.join(sorted(_CFG_KEYS))}")
    backend = cfg.get("backend", "fsspec")
    if backend == "wandb":
        return WandbRegistry(cfg)
    if backend not in ("fsspec", "file", "s3", "memory"):
        raise ArtifactError(f"[artifacts] backend = {backend!r}: use fsspec (default; file/s3 root) or wandb")

    root = cfg.get("root") or os.environ.get("NEMOTRON_ARTIFACTS_ROOT") or default_root()
    check_no_secret("artifact root", str(root))
    options = cfg.get("storage_options") or {}
    if not isinstance(options, Mapping):
        raise ArtifactError("[artifacts] storage_options must be a table, e.g. {anon = false}")
    return FsspecRegistry(str(root), options)
