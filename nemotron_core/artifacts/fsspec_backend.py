"""The registry on a folder: local path / file://, s3:// (s3fs), memory:// (unit tests).

Layout under the root, per artifact name:

    <name>/uploads/<uid>/_upload.json   writer marker: host, pid, start time (written first);
                                        uid = <utc time>-<host hash>-<pid>-<random>
    <name>/uploads/<uid>/files/...      the version's files (immutable once published)
    <name>/versions/vN.json             the version record: manifest + digest + metadata +
                                        lineage + created + which upload (written LAST,
                                        create-if-absent: this *is* the publish)
    <name>/versions/vN.deleted          gc marker (vN.json then becomes a tombstone)
    <name>/aliases/<alias>.json         {"version": N}: one atomic write moves an alias

Publish: marker -> files (hashed while written, or renamed in with move=True) ->
version record (versioning.claim_version) -> user aliases. Readers only ever find
versions through records, so a writer killed anywhere leaves either nothing visible
(an unreferenced upload = a *staging area*, which gc removes) or a complete version.
Upload ids are unique per writer (time + random), so writers never share files, and
files never move after publish (S3 has no rename; nothing needs one).

`latest` is not stored: it is the highest live version, so two racing publishers can
never leave it pointing at the older one.

gc: mark every version reachable from an alias (latest included), from `keep` refs,
or from the lineage of a marked version (across names); delete the rest (marker,
tombstone, files); remove staging areas whose writer is dead (same host, pid gone) or
that are older than the grace period.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from nemotron_core.errors import ArtifactError

from .hashing import copy_hashing, parallel_map
from .model import (
    ArtifactVersion,
    VersionRecord,
    encode_record,
    encode_tombstone,
    now,
    version_from_record,
)
from .pathcheck import check_component
from .refs import LATEST, check_alias, check_name, parse_ref
from .registry import DEFAULT_STAGING_GRACE_S, ArtifactRegistry, GcReport, Source
from .storage import LocalStore, Store, open_store
from .transfer import check_source_vs_root, hash_stored, open_source, put_tree
from .versioning import claim_version, deleted_marker_path, record_path, scan_versions
from nemotron_core.paths import state_dir

MARKER = "_upload.json"


def _host_tag(host: str | None = None) -> str:
    return hashlib.sha1((host or socket.gethostname()).encode()).hexdigest()[:6]


def _pid_start(pid: int) -> str | None:
    """Process start time (clock ticks since boot) from /proc; guards against pid reuse."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


class FsspecRegistry(ArtifactRegistry):
    def __init__(self, root: str, storage_options: Mapping[str, Any] | None = None):
        self.store: Store = open_store(root, dict(storage_options or {}))
        self.storage_options = dict(storage_options or {})
        self.backend = self.store.scheme
        self.root_uri = self.store.root_uri

    def __repr__(self) -> str:
        return f"FsspecRegistry({self.root_uri!r})"

    def source_options(self, source: Source) -> dict[str, Any] | None:
        """Storage options for reading a source URI: ours when it uses our protocol (same
        endpoint/credentials, e.g. importing from the bucket the registry lives in)."""
        text = str(source)
        if "://" in text and text.split("://", 1)[0] == self.store.scheme:
            return self.storage_options
        return None

    # ---------------------------------------------------------------- paths / records

    def _upload_dir(self, name: str, uid: str) -> str:
        return f"{name}/uploads/{uid}"

    def _read_record(self, name: str, version: int) -> VersionRecord:
        """The validated record of name:vN (the only place records are parsed)."""
        rel = record_path(name, version)
        try:
            data = self.store.read(rel)
        except FileNotFoundError:
            raise self._missing_version(name, version) from None
        except OSError as exc:  # a folder, no permission, a link loop: unreadable, not missing
            raise ArtifactError(f"unreadable version record {self.store.uri(rel)} ({exc.strerror or exc}); "
                                f"fix its permissions, restore it or delete it") from None
        rec = VersionRecord.parse(data, self.store.uri(rel))
        if rec.name != name or rec.version != version:
            raise ArtifactError(f"corrupt version record {self.store.uri(rel)}: it says "
                                f"{rec.name}:v{rec.version}; restore it or delete it")
        return rec

    def _missing_version(self, name: str, version: int) -> ArtifactError:
        live = self.live_versions(name)
        if not live:
            return self._missing_name(name)
        return ArtifactError(f"artifact {name} has no version v{version} (live versions: "
                             f"{', '.join(f'v{v}' for v in live[-8:])}; latest is v{live[-1]})")

    def _version(self, rec: VersionRecord) -> ArtifactVersion:
        files_rel = f"{self._upload_dir(rec.name, rec.upload)}/files"
        return version_from_record(rec, uri=self.store.uri(files_rel), local_path=self.store.local_path(files_rel),
                                   backend=self.backend)

    # ---------------------------------------------------------------- reading

    def names(self) -> list[str]:
        out = []
        for entry in self.store.listdir(""):
            try:
                check_name(entry)
            except ArtifactError:
                continue
            try:
                has_versions = bool(self.store.listdir(f"{entry}/versions"))
            except ArtifactError:
                has_versions = True  # a folder that leads elsewhere: listed, so that reading it reports why
            if has_versions:
                out.append(entry)
        return out

    def live_versions(self, name: str) -> list[int]:
        check_name(name)
        numbers, deleted = scan_versions(self.store, name)
        return [v for v in numbers if v not in deleted]

    def load(self, name: str, version: int) -> ArtifactVersion:
        check_name(name)
        rec = self._read_record(name, version)
        if rec.deleted is not None:
            raise ArtifactError(f"artifact {name}:v{version} was deleted by gc on {rec.deleted[:19]}; "
                                f"use a live version (nemotron artifacts list {name})")
        return self._version(rec)

    def aliases(self, name: str) -> dict[str, int]:
        check_name(name)
        table: dict[str, int] = {}
        for entry in self.store.listdir(f"{name}/aliases"):
            if not entry.endswith(".json"):
                continue
            alias = entry[: -len(".json")]
            try:
                table[alias] = self._read_alias(name, alias)
            except FileNotFoundError:
                continue  # removed between listing and reading
        live = self.live_versions(name)
        if live:
            table[LATEST] = live[-1]
        return table

    def _read_alias(self, name: str, alias: str) -> int:
        rel = f"{name}/aliases/{alias}.json"
        data = self.store.read(rel)
        try:
            version = json.loads(data)["version"]
            if not isinstance(version, int) or isinstance(version, bool) or version < 1:
                raise ValueError
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise ArtifactError(f"corrupt alias file {self.store.uri(rel)}: expected {{\"version\": N}}; "
                                f"re-set it with `nemotron artifacts alias {name}:vN {alias}`") from None
        return version

    # ---------------------------------------------------------------- publishing

    def _publish(self, name: str, source_dir: Source, *, metadata: dict[str, Any], lineage: tuple[str, ...],
                 aliases: list[str], move: bool) -> ArtifactVersion:
        meta, pinned, user_aliases = metadata, lineage, aliases
        src = open_source(source_dir, self.source_options(source_dir))
        if isinstance(self.store, LocalStore):
            check_source_vs_root(src, self.store.root, move=move)

        uid = f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}-{_host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:10]}"
        upload = self._upload_dir(name, uid)
        marker = {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": _pid_start(os.getpid()),
                  "started": now().isoformat(), "source": src.display}
        self.store.write_atomic(f"{upload}/{MARKER}", json.dumps(marker).encode())
        renamed = False
        try:
            manifest, renamed = put_tree(self.store, f"{upload}/files", src, move=move)
            if not self.store.exists(f"{upload}/{MARKER}"):
                raise ArtifactError(f"publish {name}: the staging area {self.store.uri(upload)} was removed "
                                    f"(by gc?) while writing; publish again")
            created = now()

            def record(version: int) -> bytes:
                return encode_record(name=name, version=version, upload=uid, files=manifest,
                                     metadata=meta, lineage=pinned, created=created)

            version = claim_version(self.store, name, record)
        except BaseException:
            self._abandon(upload, src, renamed)
            raise
        for alias in user_aliases:
            self._write_alias(name, alias, version)
        return self.load(name, version)

    def _abandon(self, upload: str, src: Any, renamed: bool) -> None:
        """Undo a failed publish: hand a renamed folder back, remove the staging area."""
        try:
            if renamed and isinstance(self.store, LocalStore) and src.local is not None:
                files = self.store.local_path(f"{upload}/files")
                assert files is not None  # a LocalStore maps every key to a path
                back = files / src.local.name if src.single_file else files
                os.rename(back, src.local)
            self.store.remove_tree(upload)
        except Exception:  # noqa: BLE001 - best effort; gc removes what is left
            pass

    def _write_alias(self, name: str, alias: str, version: int) -> None:
        body = {"version": version, "set": now().isoformat()}
        self.store.write_atomic(f"{name}/aliases/{alias}.json", json.dumps(body).encode())

    def set_alias(self, ref: str, alias: str) -> ArtifactVersion:
        check_alias(alias)
        v = self.resolve(ref)
        self._write_alias(v.name, alias, v.version)  # type: ignore[arg-type]
        return v

    def remove_alias(self, name: str, alias: str) -> None:
        check_name(name)
        check_alias(alias)
        rel = f"{name}/aliases/{alias}.json"
        if not self.store.exists(rel):
            raise ArtifactError(f"artifact {name} has no alias {alias!r} "
                                f"(aliases: {', '.join(sorted(self.aliases(name))) or 'none'})")
        self.store.remove_tree(rel)

    # ---------------------------------------------------------------- local copies

    def local_copy(self, ref: str) -> Path:
        v = self.resolve(ref)
        if v.local_path is not None:
            return v.local_path

        dest = state_dir() / "cache" / "artifacts" / v.name / f"v{v.version}-{v.digest.split(':', 1)[1][:12]}"
        if dest.is_dir():
            return dest
        tmp = dest.with_name(f"{dest.name}.tmp-{uuid.uuid4().hex[:8]}")
        files_rel = v.uri[len(self.root_uri) + 1:]
        try:
            def fetch(f: Any) -> None:
                target = tmp / f.path
                target.parent.mkdir(parents=True, exist_ok=True)
                with self.store.open_read(f"{files_rel}/{f.path}") as fin, open(target, "wb") as fout:
                    size, digest = copy_hashing(fin, fout)
                if (size, digest) != (f.size, f.hash):
                    raise ArtifactError(f"download of {v.ref} file {f.path!r}: content does not match the "
                                        f"manifest; run `nemotron artifacts verify {v.ref}`")

            tmp.mkdir(parents=True)
            parallel_map(fetch, v.files)
            try:
                os.rename(tmp, dest)
            except OSError:
                if not dest.is_dir():  # another process won the race: use its copy
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return dest

    # ---------------------------------------------------------------- verify

    def verify(self, ref: str) -> ArtifactVersion:
        v = self.resolve(ref)
        rec = self._read_record(v.name, v.version)  # type: ignore[arg-type]
        files_rel = f"{self._upload_dir(v.name, rec.upload)}/files"
        present = dict(self.store.walk_files(files_rel))
        for f in v.files:
            if f.path not in present:
                raise ArtifactError(f"verify {v.ref} file {f.path!r} ({self.store.uri(files_rel + '/' + f.path)}): "
                                    f"missing; restore it or re-publish the artifact")
        hashed = parallel_map(lambda f: hash_stored(self.store, f"{files_rel}/{f.path}"), v.files)
        for f, (size, digest) in zip(v.files, hashed):
            where = f"{v.ref} file {f.path!r} ({self.store.uri(files_rel + '/' + f.path)})"
            if size != f.size:
                raise ArtifactError(f"verify {where}: size {size} != manifest {f.size}; the stored bytes "
                                    f"changed - restore them or re-publish")
            if digest != f.hash:
                raise ArtifactError(f"verify {where}: hash mismatch ({digest[:23]}... != manifest "
                                    f"{f.hash[:23]}...); the stored bytes changed - restore them or re-publish")
        extra = sorted(set(present) - {f.path for f in v.files})
        if extra:
            raise ArtifactError(f"verify {v.ref}: unexpected file {extra[0]!r} in {self.store.uri(files_rel)} "
                                f"(not in the manifest); remove it or re-publish")
        return v

    # ---------------------------------------------------------------- gc

    def gc(self, *, dry_run: bool = False, staging_grace_s: float = DEFAULT_STAGING_GRACE_S,
           keep: Iterable[str] = ()) -> GcReport:
        report = GcReport(dry_run=dry_run)
        all_names = [e for e in self.store.listdir("") if _valid_name(e)]
        records: dict[str, dict[int, VersionRecord]] = {}
        dead_uploads: dict[str, set[str]] = {}
        for name in all_names:
            numbers, deleted = scan_versions(self.store, name)
            records[name] = {}
            dead_uploads[name] = set()
            for v in numbers:
                rec = self._read_record(name, v)  # corrupt -> error before anything is deleted: gc never guesses
                if v in deleted or rec.deleted is not None:
                    dead_uploads[name].add(rec.upload)
                    if v in deleted and rec.deleted is None and not dry_run:
                        self._finish_delete(name, v, rec)  # a previous gc was interrupted
                else:
                    records[name][v] = rec

        # mark
        roots: list[tuple[str, int]] = []
        for name in records:
            if records[name]:
                for v in self.aliases(name).values():
                    roots.append((name, v))
        for ref in keep:
            kv = self.resolve(ref)
            roots.append((kv.name, kv.version))  # type: ignore[arg-type]
        marked: set[tuple[str, int]] = set()
        while roots:
            node = roots.pop()
            if node in marked or node[1] not in records.get(node[0], {}):
                continue
            marked.add(node)
            for parent in records[node[0]][node[1]].lineage:
                pr = parse_ref(parent)  # pinned: checked when the record was read
                roots.append((pr.name, pr.version))  # type: ignore[arg-type]

        # sweep versions
        for name, by_version in records.items():
            for v, rec in sorted(by_version.items()):
                if (name, v) in marked:
                    report.kept_versions.append(f"{name}:v{v}")
                    continue
                report.deleted_versions.append(f"{name}:v{v}")
                dead_uploads[name].add(rec.upload)
                if not dry_run:
                    self.store.write_atomic(deleted_marker_path(name, v), now().isoformat().encode())
                    self._finish_delete(name, v, rec)

        # sweep staging areas
        host = socket.gethostname()
        for name in all_names:
            live_uploads = {rec.upload for v, rec in records[name].items() if (name, v) in marked}
            for uid in self.store.listdir(f"{name}/uploads"):
                if uid in live_uploads or not _plain(uid):
                    continue  # a name we never write (control characters...): not ours to judge
                upload = self._upload_dir(name, uid)
                try:
                    stale = uid in dead_uploads[name] or self._stale(upload, host, staging_grace_s)
                except ArtifactError:
                    stale = True  # a link planted in uploads/: removed itself, its target untouched
                if stale:
                    report.removed_staging.append(self.store.uri(upload))
                    if not dry_run:
                        self.store.remove_tree(upload)
                else:
                    report.skipped_staging.append(self.store.uri(upload))
        return report

    def _finish_delete(self, name: str, version: int, rec: VersionRecord) -> None:
        self.store.write_atomic(record_path(name, version), encode_tombstone(rec, now()))
        self.store.remove_tree(self._upload_dir(name, rec.upload))

    def _stale(self, upload: str, host: str, grace_s: float) -> bool:
        """Is this staging area abandoned? Dead writer on this host, or older than grace."""
        try:
            marker = json.loads(self.store.read(f"{upload}/{MARKER}"))
            started = dt.datetime.fromisoformat(marker["started"]).timestamp()
        except FileNotFoundError:
            # killed before (or while) writing the marker: the upload id names host and pid
            local = self.store.local_path(upload)
            if local is None:
                return True  # on object stores the marker is the first object an upload writes
            try:
                started = local.stat().st_mtime
            except FileNotFoundError:
                return False
            parts = upload.rsplit("/", 1)[-1].split("-")
            marker = {"host": host, "pid": int(parts[2])} if len(parts) == 4 and parts[1] == _host_tag(host) \
                and parts[2].isdigit() else {}
        except (ValueError, KeyError, TypeError):
            return True
        if time.time() - started >= grace_s:
            return True
        if marker.get("host") == host and isinstance(marker.get("pid"), int):
            start = _pid_start(marker["pid"])
            if start is None or (marker.get("pid_start") and start != marker["pid_start"]):
                return True  # writer process is gone (or the pid was reused)
        return False


def _plain(entry: str) -> bool:
    try:
        check_component(entry, "upload")
        return True
    except ArtifactError:
        return False


def _valid_name(entry: str) -> bool:
    try:
        check_name(entry)
        return True
    except ArtifactError:
        return False
