"""Put a source folder (or file) into a store, building the manifest on the way.

Sources are a local path or an fsspec URI (s3://...). Copying streams each file once
and hashes the same chunks it writes. `move=True` into a local store renames the whole
folder (no copy; a 10 GB checkpoint costs one rename plus one hashing read); otherwise
it copies and then deletes the source.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemotron_core.errors import ArtifactError

from .hashing import copy_hashing, hash_stream, parallel_map
from .model import ArtifactFile
from .storage import Store


@dataclass
class SourceTree:
    """The files of a publish/import source."""

    display: str
    files: list[tuple[str, int]]  # (relative posix path, size); rel "" never occurs
    local: Path | None = None  # set for local sources
    fs: Any = None  # fsspec filesystem for remote sources
    path: str = ""  # fsspec path (remote) of the folder, or of the single file
    single_file: bool = False

    def open(self, rel: str):
        if self.local is not None:
            return open(self.local / rel if not self.single_file else self.local, "rb")
        return self.fs.open(self.path if self.single_file else f"{self.path}/{rel}", "rb")

    def remove(self) -> None:
        if self.local is not None:
            if self.single_file:
                self.local.unlink(missing_ok=True)
            else:
                shutil.rmtree(self.local, ignore_errors=True)
        else:
            self.fs.rm(self.path, recursive=not self.single_file)


def open_source(source: str | os.PathLike, storage_options: dict[str, Any] | None = None) -> SourceTree:
    """List a source; ArtifactError when it is missing or holds no files."""
    text = os.fspath(source) if not isinstance(source, str) else source
    if "://" in text and not text.startswith("file://"):
        return _remote_source(text, storage_options)
    if text.startswith("file://"):
        from urllib.parse import unquote, urlparse

        text = unquote(urlparse(text).path)
    local = Path(text).expanduser().resolve()
    if not local.exists():
        raise ArtifactError(f"source {text} does not exist; pass an existing folder or file")
    if local.is_file():
        return SourceTree(str(local), [(local.name, local.stat().st_size)], local=local, single_file=True)
    files: list[tuple[str, int]] = []
    for dirpath, dirnames, filenames in os.walk(local):
        dirnames.sort()
        for fn in sorted(filenames):
            full = Path(dirpath) / fn
            if full.is_file():
                files.append((full.relative_to(local).as_posix(), full.stat().st_size))
    if not files:
        raise ArtifactError(f"source {local} holds no files; nothing to publish")
    return SourceTree(str(local), files, local=local)


def _remote_source(uri: str, storage_options: dict[str, Any] | None) -> SourceTree:
    from fsspec.core import url_to_fs

    try:
        fs, path = url_to_fs(uri, **(storage_options or {}))
    except (ImportError, ValueError, TypeError) as exc:
        raise ArtifactError(f"source {uri}: cannot open ({exc}); check the URI and storage options") from None
    path = path.rstrip("/")
    try:
        fs.invalidate_cache(path)
    except Exception:  # noqa: BLE001 - optional API
        pass
    if fs.isfile(path):
        size = int(fs.info(path).get("size") or 0)
        return SourceTree(uri, [(path.rsplit("/", 1)[-1], size)], fs=fs, path=path, single_file=True)
    try:
        found = fs.find(path, detail=True)
    except FileNotFoundError:
        found = {}
    files = sorted(
        (p[len(path):].lstrip("/"), int(info.get("size") or 0))
        for p, info in found.items()
        if info.get("type") != "directory" and p.startswith(path + "/")
    )
    if not files:
        raise ArtifactError(f"source {uri} does not exist or holds no files; pass an existing folder")
    return SourceTree(uri, files, fs=fs, path=path)


def put_tree(store: Store, dest: str, src: SourceTree, *, move: bool) -> tuple[list[ArtifactFile], bool]:
    """Write `src` under `dest`; return (manifest, renamed) - renamed: the source folder
    itself now lives at `dest` (the caller renames it back if publishing fails)."""
    if move and src.local is not None:
        target = f"{dest}/{src.local.name}" if src.single_file else dest
        if store.move_in(src.local, target):
            stored = store.walk_files(dest)

            def hash_one(item: tuple[str, int]) -> ArtifactFile:
                rel, _ = item
                size, digest = store.hash_in_place(f"{dest}/{rel}")  # type: ignore[misc]
                return ArtifactFile(rel, size, digest)

            return parallel_map(hash_one, stored), True

    def copy_one(item: tuple[str, int]) -> ArtifactFile:
        rel, _ = item
        with src.open(rel) as fin, store.open_write(f"{dest}/{rel}") as fout:
            size, digest = copy_hashing(fin, fout)
        return ArtifactFile(rel, size, digest)

    manifest = parallel_map(copy_one, src.files)
    if move:
        src.remove()
    return manifest, False


def hash_stored(store: Store, rel: str) -> tuple[int, str]:
    """(size, hash) of a stored file: in place when local, else streamed once."""
    local = store.hash_in_place(rel)
    if local is not None:
        return local
    with store.open_read(rel) as f:
        return hash_stream(f)
