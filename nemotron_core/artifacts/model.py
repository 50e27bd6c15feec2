"""What an artifact version is, and its on-store record (JSON), with validation.

A version record (`<name>/versions/vN.json` in the fsspec backend) holds everything
about one immutable version: name, version number, the upload folder holding its
files, the file manifest (path, size, sha256 of each file, computed while the bytes
were written), the manifest digest, user metadata, lineage (pinned refs of the input
versions) and the creation time. The digest is sha256 over the sorted manifest lines
`path\\tsize\\tsha256`, so it identifies the content and can be recomputed from the
record alone (O(files), never O(bytes)); a record whose digest does not match its own
manifest is reported as corrupt.

A garbage-collected version keeps a *tombstone* record (`"deleted": <time>`) so that
its number is never handed out again: versions are monotonic and never reused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemotron_core.errors import ArtifactError

from .pathcheck import check_component, check_rel_path
from .refs import check_name, parse_ref, pinned_ref

SCHEMA = 1


@dataclass(frozen=True)
class ArtifactFile:
    """One file of a version: path relative to the version's root, size, content hash.

    `hash` is "sha256:<hex>" for the fsspec backends, "md5:<base64>" for W&B (its
    manifest's own digest).
    """

    path: str
    size: int
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "hash": self.hash}


def manifest_digest(files: Iterable[ArtifactFile]) -> str:
    """sha256 over the sorted manifest lines; identifies the content of a version."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        h.update(f"{f.path}\t{f.size}\t{f.hash}\n".encode())
    return "sha256:" + h.hexdigest()


@dataclass(frozen=True)
class ArtifactVersion:
    """One immutable, published version of an artifact.

    `version` is an int (1, 2, ...). The only exception is a W&B *offline* publish,
    where W&B assigns the number when the run is synced: `version` is None,
    `pending` is True and `ref` is "NAME:pending" (it cannot be resolved).
    """

    name: str
    version: int | None
    digest: str
    uri: str  # where the files are (folder URI)
    local_path: Path | None = None  # the folder on this machine, when the store is local
    metadata: Mapping[str, Any] = field(default_factory=dict)
    lineage: tuple[str, ...] = ()  # pinned refs "name:vN" of the inputs
    files: tuple[ArtifactFile, ...] = ()
    created: dt.datetime | None = None
    aliases: tuple[str, ...] = ()  # filled by list/show; not part of the identity
    backend: str = ""  # "file", "s3", "memory", "wandb"
    problem: str | None = None  # set (by list) for a version whose record cannot be read: not usable

    @classmethod
    def unreadable(cls, name: str, version: int, problem: str, backend: str = "") -> ArtifactVersion:
        """A listing entry for a version whose record is corrupt or unreadable (shown, never used)."""
        return cls(name=name, version=version, digest="corrupt", uri="", backend=backend, problem=problem)

    @property
    def pending(self) -> bool:
        return self.version is None

    @property
    def ref(self) -> str:
        return pinned_ref(self.name, self.version) if self.version is not None else f"{self.name}:pending"

    @property
    def path(self) -> str:
        """The local folder when the store is local, else the URI."""
        return str(self.local_path) if self.local_path is not None else self.uri

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def field(self, dotted: str) -> Any:
        """A value for `${art:NAME,FIELD}`: path, uri, version, ref, digest, name, created,
        size, metadata, metadata.KEY.SUBKEY..., or a metadata KEY[.SUBKEY] itself (`pack_size`, as in the seed)."""
        if not isinstance(dotted, str) or not dotted:
            raise ArtifactError(f"artifact {self.ref}: empty field name; use one of {', '.join(FIELDS)} or metadata.KEY")
        head, _, rest = dotted.partition(".")
        if head not in FIELDS and head != "metadata" and head in self.metadata:
            head, rest = "metadata", dotted  # a key of the version's metadata
        if head == "metadata":
            value: Any = dict(self.metadata)
            for part in rest.split(".") if rest else ():
                if isinstance(value, Mapping) and part in value:
                    value = value[part]
                else:
                    keys = ", ".join(sorted(map(str, value))) if isinstance(value, Mapping) else "none"
                    raise ArtifactError(f"artifact {self.ref} has no field {dotted!r} (keys there: {keys or 'none'})")
            return value
        if rest or head not in FIELDS:
            keys = ", ".join(sorted(map(str, self.metadata))) or "none"
            raise ArtifactError(f"artifact {self.ref} has no field {dotted!r}; use one of "
                                f"{', '.join(FIELDS)} or a key of its metadata ({keys})")
        if head == "version":
            if self.version is None:
                raise ArtifactError(f"artifact {self.name} was published offline to W&B and has no version "
                                    f"number until `wandb sync`; sync it, then resolve it online")
            return self.version
        if head == "created":
            return self.created.isoformat() if self.created else None
        return getattr(self, head)

    def summary(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "digest": self.digest,
            "uri": self.uri,
            "path": self.path,
            "created": self.created.isoformat() if self.created else None,
            "aliases": list(self.aliases),
            "size": self.size,
            "files": len(self.files),
            "lineage": list(self.lineage),
            "metadata": dict(self.metadata),
            **({"problem": self.problem} if self.problem else {}),
        }


FIELDS = ("path", "uri", "version", "ref", "digest", "name", "created", "size")


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# ---------------------------------------------------------------- record (de)serialization


def encode_record(
    *,
    name: str,
    version: int,
    upload: str,
    files: Iterable[ArtifactFile],
    metadata: Mapping[str, Any],
    lineage: Iterable[str],
    created: dt.datetime,
) -> bytes:
    files = sorted(files, key=lambda f: f.path)
    record = {
        "schema": SCHEMA,
        "name": name,
        "version": version,
        "upload": upload,
        "digest": manifest_digest(files),
        "created": created.isoformat(),
        "lineage": list(lineage),
        "metadata": dict(metadata),
        "files": [f.to_json() for f in files],
    }
    return json.dumps(record, indent=1, sort_keys=False).encode()


def encode_tombstone(record: VersionRecord, deleted: dt.datetime) -> bytes:
    stone = record.to_json()
    stone["deleted"] = deleted.isoformat()
    return json.dumps(stone, indent=1).encode()


@dataclass(frozen=True)
class VersionRecord:
    """A parsed, validated version record (`<name>/versions/vN.json`), or its tombstone.

    Records live in a shared store that any writer can edit, so every field is checked
    here, once, before anything reads, copies or deletes through it: `upload` is one plain
    folder name (never a path), every manifest path stays below the version's folder,
    lineage entries are pinned refs, and the digest matches the manifest.
    """

    name: str
    version: int
    upload: str
    digest: str
    created: dt.datetime
    files: tuple[ArtifactFile, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    lineage: tuple[str, ...] = ()
    deleted: str | None = None  # gc time, for a tombstone

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "name": self.name, "version": self.version, "upload": self.upload,
                "digest": self.digest, "created": self.created.isoformat()}

    @classmethod
    def parse(cls, data: bytes, where: str) -> VersionRecord:
        """Parse and validate a record; ArtifactError (one line) names the file and the field."""
        fix = "restore it from a backup, or delete it to drop that version"

        def bad(why: str) -> ArtifactError:
            return ArtifactError(f"corrupt version record {where}: {why}; {fix}")

        try:
            rec = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise bad(f"not JSON ({getattr(exc, 'msg', exc)})") from None
        if not isinstance(rec, dict):
            raise bad("expected a JSON object")
        for key, typ in (("name", str), ("version", int), ("upload", str), ("digest", str), ("created", str)):
            if not isinstance(rec.get(key), typ) or isinstance(rec.get(key), bool):
                raise bad(f"field {key!r} missing or not a {typ.__name__}")
        try:
            check_name(rec["name"])
            check_component(rec["upload"], "field 'upload'")
        except ArtifactError as exc:
            raise bad(str(exc)) from None
        if rec["version"] < 1:
            raise bad(f"field 'version' = {rec['version']} (versions start at 1)")
        try:
            created = dt.datetime.fromisoformat(rec["created"])
        except ValueError:
            raise bad(f"field 'created' = {rec['created'][:40]!r} is not an ISO time") from None
        common = {"name": rec["name"], "version": rec["version"], "upload": rec["upload"],
                  "digest": rec["digest"], "created": created}
        if "deleted" in rec:
            if not isinstance(rec["deleted"], str):
                raise bad("field 'deleted' is not a string")
            return cls(**common, deleted=rec["deleted"])
        if not isinstance(rec.get("metadata"), dict):
            raise bad("field 'metadata' missing or not an object")
        if not isinstance(rec.get("lineage"), list):
            raise bad("field 'lineage' missing or not a list")
        lineage = []
        for item in rec["lineage"]:
            try:
                ref = parse_ref(item)
            except ArtifactError:
                raise bad(f"field 'lineage' holds {str(item)[:60]!r}, not a pinned ref NAME:vN") from None
            if ref.version is None:
                raise bad(f"field 'lineage' holds {item!r}, not a pinned ref NAME:vN")
            lineage.append(str(ref))
        if not isinstance(rec.get("files"), list):
            raise bad("field 'files' missing or not a list")
        files = []
        for entry in rec["files"]:
            if not isinstance(entry, dict) or not isinstance(entry.get("hash"), str) \
                    or not isinstance(entry.get("size"), int) or isinstance(entry.get("size"), bool) \
                    or entry["size"] < 0:
                raise bad("field 'files' has an entry without path/size/hash")
            try:
                path = check_rel_path(entry.get("path"), "field 'files'")
            except ArtifactError as exc:
                raise bad(str(exc)) from None
            files.append(ArtifactFile(path, entry["size"], entry["hash"]))
        if len({f.path for f in files}) != len(files):
            raise bad("field 'files' lists a path twice")
        if manifest_digest(files) != rec["digest"]:
            raise ArtifactError(f"corrupt manifest in {where}: field 'digest' does not match its file list; {fix}")
        return cls(**common, files=tuple(sorted(files, key=lambda f: f.path)), metadata=rec["metadata"],
                   lineage=tuple(lineage))


def version_from_record(rec: VersionRecord, *, uri: str, local_path: Path | None, backend: str,
                        aliases: Iterable[str] = ()) -> ArtifactVersion:
    return ArtifactVersion(
        name=rec.name,
        version=rec.version,
        digest=rec.digest,
        uri=uri,
        local_path=local_path,
        metadata=rec.metadata,
        lineage=rec.lineage,
        files=rec.files,
        created=rec.created,
        aliases=tuple(aliases),
        backend=backend,
    )


def check_metadata(metadata: Mapping[str, Any] | None, name: str) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise ArtifactError(f"publish {name}: metadata must be a mapping, got {type(metadata).__name__}")
    try:
        return json.loads(json.dumps(dict(metadata), default=_no_json))
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"publish {name}: metadata is not JSON-serializable ({exc}); pass plain "
                            f"dicts/lists/str/numbers") from None


def _no_json(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, dt.datetime):
        return obj.isoformat()
    raise TypeError(f"{type(obj).__name__} value {obj!r}")


@dataclass
class LineageNode:
    """A node of a lineage tree: the version (None when gone) and its inputs."""

    ref: str
    version: ArtifactVersion | None
    parents: list[LineageNode] = field(default_factory=list)
    problem: str | None = None  # why `version` is None (deleted, missing, corrupt)

    def render(self, indent: str = "") -> list[str]:
        label = self.ref
        if self.version is not None:
            label += f"  {self.version.digest[:19]}"
            producer = self.version.metadata.get("producer") if isinstance(self.version.metadata, Mapping) else None
            if producer:
                label += f"  (producer: {producer})"
        if self.problem:
            label += f"  [{self.problem}]"
        lines = [indent + label]
        for i, parent in enumerate(self.parents):
            last = i == len(self.parents) - 1
            sub = parent.render("")
            lines.append(indent + ("└── " if last else "├── ") + sub[0])
            for line in sub[1:]:
                lines.append(indent + ("    " if last else "│   ") + line)
        return lines
