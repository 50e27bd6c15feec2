"""The registry API every backend offers (fsspec: file/s3/memory, and W&B).

    reg = open_registry(cfg)                      # cfg = env.toml [artifacts] table
    v = reg.publish("nano3-sft-data", "out/", metadata={...}, lineage=["nano3-pretrain-data:v2"])
    v = reg.resolve("nano3-sft-data:best")        # -> ArtifactVersion, pinned (v.ref == "nano3-sft-data:v4")
    reg.cache_key_part(v.ref)                     # "nano3-sft-data:v4@sha256:..." from the record only
    reg.list() / reg.show(ref) / reg.lineage(ref) / reg.set_alias(ref, "prod") / reg.verify(ref) / reg.gc()
    reg.local_copy(ref)                           # a local folder (the store's own, or a cached download)

Backends implement the storage-specific parts; resolving refs, listing, lineage trees
and cache keys are written once here on top of them.

Cache keys: `cache_key_part(ref)` resolves the ref and returns `"<name>:v<N>@<digest>"`.
The digest comes from the version record (its manifest digest, re-checked against the
manifest it sits in), so the cost is one small read plus O(files) hashing of manifest
lines - independent of the artifact's size.
"""

from __future__ import annotations

import builtins

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nemotron_core.errors import ArtifactError, did_you_mean

from .model import ArtifactVersion, LineageNode, check_metadata
from .refs import LATEST, Ref, check_alias, check_name, parse_ref

#: Staging areas (uploads no version record points to) younger than this are left alone
#: by gc unless their writer is known dead (same host, pid gone): another host may still
#: be uploading.
DEFAULT_STAGING_GRACE_S = 24 * 3600.0

Source = str | Path


@dataclass
class GcReport:
    """What gc removed (or would remove, with dry_run)."""

    dry_run: bool = False
    deleted_versions: list[str] = field(default_factory=list)  # refs
    removed_staging: list[str] = field(default_factory=list)  # URIs
    kept_versions: list[str] = field(default_factory=list)  # refs
    skipped_staging: list[str] = field(default_factory=list)  # in-flight / within grace

    def lines(self) -> list[str]:
        verb = "would delete" if self.dry_run else "deleted"
        out = [f"{verb} version {r}" for r in self.deleted_versions]
        out += [f"{'would remove' if self.dry_run else 'removed'} staging {u}" for u in self.removed_staging]
        out += [f"kept staging {u} (writer may be alive; younger than the grace period)" for u in self.skipped_staging]
        out.append(f"kept {len(self.kept_versions)} version(s) (aliased or referenced)")
        return out


@dataclass(frozen=True)
class VerifyResult:
    """One line of `verify_all`: a version (or a name whose folder/aliases are broken)."""

    ref: str
    version: ArtifactVersion | None
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None


class ArtifactRegistry(ABC):
    """Publish, resolve and manage artifact versions in one store."""

    backend: str = ""
    root_uri: str = ""

    def describe(self) -> str:
        return self.root_uri

    # ------------------------------------------------------------------ backend parts

    def publish(
        self,
        name: str,
        source_dir: Source,
        *,
        metadata: Mapping[str, Any] | None = None,
        lineage: Iterable[str | ArtifactVersion] = (),
        aliases: Iterable[str] = (LATEST,),
        move: bool = False,
    ) -> ArtifactVersion:
        """Publish the files under `source_dir` (a folder or one file; local or a URI) as
        the next version of `name`, atomically. `lineage` refs are pinned to "name:vN".
        `aliases` are moved to the new version (`latest` always follows the newest
        version and needs no write). `move=True` renames the folder into a local store
        (no copy); elsewhere it copies, then deletes the source.

        The checks every backend needs run here, once; the backend's `_publish` stores."""
        check_name(name)
        user_aliases = self.check_publish_aliases(aliases)
        meta = check_metadata(metadata, name)
        pinned = self.pin_lineage(lineage)
        return self._publish(name, source_dir, metadata=meta, lineage=pinned, aliases=user_aliases, move=move)

    @abstractmethod
    def _publish(self, name: str, source_dir: Source, *, metadata: dict[str, Any], lineage: tuple[str, ...],
                 aliases: builtins.list[str], move: bool) -> ArtifactVersion:
        """Store one checked version: `metadata` validated, `lineage` pinned, `aliases` checked."""

    @abstractmethod
    def names(self) -> list[str]:
        """Artifact names with at least one version record."""

    @abstractmethod
    def live_versions(self, name: str) -> list[int]:
        """Version numbers of `name` that are published and not deleted, ascending."""

    @abstractmethod
    def load(self, name: str, version: int) -> ArtifactVersion:
        """One version; ArtifactError when missing, deleted or corrupt."""

    @abstractmethod
    def aliases(self, name: str) -> dict[str, int]:
        """alias -> version for `name`, including the derived `latest`."""

    @abstractmethod
    def set_alias(self, ref: str, alias: str) -> ArtifactVersion:
        """Point `alias` at the version `ref` resolves to (one atomic write)."""

    @abstractmethod
    def remove_alias(self, name: str, alias: str) -> None: ...

    @abstractmethod
    def local_copy(self, ref: str) -> Path:
        """A local folder with the version's files: the store's own folder when it is
        local, else a verified download cached under <state>/cache/artifacts (atomic:
        downloaded to a temp folder, renamed into place)."""

    @abstractmethod
    def verify(self, ref: str) -> ArtifactVersion:
        """Re-read every file of the version and check sizes and hashes (O(size))."""

    @abstractmethod
    def gc(self, *, dry_run: bool = False, staging_grace_s: float = DEFAULT_STAGING_GRACE_S,
           keep: Iterable[str] = ()) -> GcReport:
        """Delete versions that no alias (latest included), `keep` ref, or kept version's
        lineage reaches, and staging areas of dead/abandoned writers."""

    # ------------------------------------------------------------------ common parts

    def resolve(self, ref: str | Ref) -> ArtifactVersion:
        """"name" / "name:vN" / "name:alias" -> the one version it means now."""
        r = ref if isinstance(ref, Ref) else parse_ref(ref)
        if r.version is not None:
            return self.load(r.name, r.version)
        if r.alias == LATEST:
            versions = self.live_versions(r.name)
            if not versions:
                raise self._missing_name(r.name)
            return self.load(r.name, versions[-1])  # a corrupt newest record is an error, not skipped
        table = self.aliases(r.name)
        if r.alias not in table:
            if not self.live_versions(r.name):
                raise self._missing_name(r.name)
            raise ArtifactError(f"artifact {r.name} has no alias {r.alias!r}{did_you_mean(r.alias or '', table)} "
                                f"(aliases: {', '.join(sorted(table)) or 'none'}); set it with "
                                f"`nemotron artifacts alias {r.name}:vN {r.alias}`")
        return self.load(r.name, table[r.alias])

    def _missing_name(self, name: str) -> ArtifactError:
        known = self.names()
        return ArtifactError(f"no artifact named {name!r} in {self.describe()}{did_you_mean(name, known)} "
                             f"(known: {', '.join(known) or 'none'}); publish or import it first")

    def cache_key_part(self, ref: str) -> str:
        """"name:vN@digest" for `ref`: from the record, never from the files (O(files))."""
        v = self.resolve(ref)
        return f"{v.ref}@{v.digest}"

    def list(self, name: str | None = None) -> list[ArtifactVersion]:
        """Live versions (with their aliases) of `name`, or of every artifact."""
        names = [check_name(name)] if name is not None else self.names()
        if name is not None and not self.live_versions(name):
            raise self._missing_name(name)
        out: list[ArtifactVersion] = []
        for n in names:
            try:
                table = self.aliases(n)
            except ArtifactError:  # a corrupt alias file hides no version (`verify` fails on it)
                table = {}
            by_version: dict[int, list[str]] = {}
            for alias, v in table.items():
                by_version.setdefault(v, []).append(alias)
            for v in self.live_versions(n):
                try:
                    av = self.load(n, v)
                except ArtifactError as exc:  # shown as corrupt, never hidden (`verify` fails on it)
                    av = ArtifactVersion.unreadable(n, v, str(exc), self.backend)
                out.append(_with_aliases(av, sorted(by_version.get(v, ()))))
        return out

    def verify_all(self) -> builtins.list[VerifyResult]:  # `list` here is the method above
        """Verify every live version and every alias file; one result per version (problem set
        when its record or files are corrupt/unreadable) plus one per broken name (its aliases
        or folder unreadable). Nothing is skipped: a registry passes only when all are ok."""
        results: list[VerifyResult] = []
        for name in self.names():
            try:
                self.aliases(name)
                versions = self.live_versions(name)
            except ArtifactError as exc:
                results.append(VerifyResult(name, None, str(exc)))
                continue
            for v in versions:
                ref = f"{name}:v{v}"
                try:
                    results.append(VerifyResult(ref, self.verify(ref), None))
                except ArtifactError as exc:
                    results.append(VerifyResult(ref, None, str(exc)))
        return results

    def show(self, ref: str) -> ArtifactVersion:
        """The version `ref` resolves to, with its aliases filled in."""
        v = self.resolve(ref)
        table = self.aliases(v.name)
        return _with_aliases(v, sorted(a for a, n in table.items() if n == v.version))

    def lineage(self, ref: str, *, max_depth: int = 32) -> LineageNode:
        """The tree of input versions, recursively (missing/deleted inputs are marked)."""
        root = self.resolve(ref)
        return self._lineage_node(root.ref, root, max_depth, set())

    def _lineage_node(self, ref: str, version: ArtifactVersion | None, depth: int, seen: set[str]) -> LineageNode:
        node = LineageNode(ref=ref, version=version)
        if version is None or depth <= 0 or ref in seen:
            return node
        seen = seen | {ref}
        for parent in version.lineage:
            try:
                pv = self.resolve(parent)
                node.parents.append(self._lineage_node(pv.ref, pv, depth - 1, seen))
            except ArtifactError as exc:
                node.parents.append(LineageNode(ref=parent, version=None, problem=str(exc)))
        return node

    def pin_lineage(self, lineage: Iterable[str | ArtifactVersion]) -> tuple[str, ...]:
        """Pinned refs for publish(lineage=...); every input must exist now."""
        if isinstance(lineage, (str, ArtifactVersion)):
            lineage = [lineage]
        out: list[str] = []
        for item in lineage:
            ref = item.ref if isinstance(item, ArtifactVersion) else item
            pinned = self.resolve(ref).ref
            if pinned not in out:
                out.append(pinned)
        return tuple(out)

    @staticmethod
    def check_publish_aliases(aliases: Iterable[str]) -> builtins.list[str]:
        if isinstance(aliases, str):
            aliases = [aliases]
        out = []
        for a in aliases:
            check_alias(a, allow_latest=True)
            if a != LATEST and a not in out:
                out.append(a)
        return out


def _with_aliases(v: ArtifactVersion, aliases: Iterable[str]) -> ArtifactVersion:
    return replace(v, aliases=tuple(aliases))
