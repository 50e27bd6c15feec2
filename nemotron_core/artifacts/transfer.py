"""Put a source folder (or file) into a store, building the manifest on the way.

Sources are a local path or an fsspec URI (s3://...). Copying streams each file once
and hashes the same chunks it writes. `move=True` into a local store renames the whole
folder (no copy; a 10 GB checkpoint costs one rename plus one hashing read); otherwise
it copies and then deletes the source.

A source is untrusted input (it may be someone else's folder): inside it, a symlink is
copied as its content only when its target is inside the source too. A link to anything
outside (a private key, another user's data), a link loop, a link to a folder and special
files (a fifo would block, a device never ends) are refused with one line naming them.
The source path itself may be a link (the user named it), but never the filesystem root.
Copies keep the source's permission bits (never more readable; exec bits dropped), and
the umask applies on top (see nemotron_core.paths.private_umask).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlparse

from nemotron_core.errors import ArtifactError

from .hashing import copy_hashing, hash_stream, parallel_map
from .model import ArtifactFile
from .pathcheck import check_rel_path
from .storage import Store, remote_error


@dataclass
class SourceTree:
    """The files of a publish/import source."""

    display: str
    files: list[tuple[str, int]]  # (relative posix path, size); rel "" never occurs
    local: Path | None = None  # set for local sources
    fs: Any = None  # fsspec filesystem for remote sources
    path: str = ""  # fsspec path (remote) of the folder, or of the single file
    single_file: bool = False
    real: dict[str, Path] = field(default_factory=dict)  # local: rel -> the file to read (a link's target)

    def _local_file(self, rel: str) -> Path:
        assert self.local is not None
        return self.real.get(rel) or (self.local if self.single_file else self.local / rel)

    def open(self, rel: str) -> BinaryIO:
        if self.local is not None:
            # O_NOFOLLOW: a file swapped for a link after the listing is refused, never followed
            fd = os.open(self._local_file(rel), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            return open(fd, "rb")
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
    """List a source; ArtifactError (one line) when it is missing, empty or unsafe to copy."""
    text = os.fspath(source) if not isinstance(source, str) else source
    if "://" in text and not text.startswith("file://"):
        return _remote_source(text, storage_options)
    if text.startswith("file://"):
        text = unquote(urlparse(text).path)
    return _local_source(text)


def _local_source(text: str) -> SourceTree:
    given = Path(text).expanduser()
    try:
        local = Path(os.path.realpath(given, strict=True))
    except FileNotFoundError:
        raise ArtifactError(f"source {text} does not exist; pass an existing folder or file") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ArtifactError(f"source {text} is a symlink loop; pass the real folder") from None
        raise ArtifactError(f"source {text}: cannot read it ({exc.strerror}); check its permissions") from None
    if local == Path(local.anchor):
        raise ArtifactError(f"source {text} is the filesystem root; pass the folder that holds the data")
    if local.is_file():
        return SourceTree(str(local), [(local.name, local.stat().st_size)], local=local, single_file=True)
    if not local.is_dir():
        raise ArtifactError(f"source {text} is not a regular file or folder; pass a folder")
    files: list[tuple[str, int]] = []
    real: dict[str, Path] = {}
    stack = [local]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            raise ArtifactError(f"source {folder}: cannot list it ({exc.strerror}); check its permissions") from None
        for entry in entries:
            path = Path(entry.path)
            rel = check_rel_path(path.relative_to(local).as_posix(), f"source {local}")  # no control chars
            try:
                if entry.is_symlink():
                    target = _link_target(path, local)
                    real[rel] = target
                    st = target.stat()
                    if stat.S_ISDIR(st.st_mode):
                        raise ArtifactError(f"source {local}: {rel} is a symlink to the folder {target}; replace "
                                            f"it with the folder itself or remove it")
                else:
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(path)
                        continue
            except FileNotFoundError:
                continue  # removed while listing: not part of the source
            if not stat.S_ISREG(st.st_mode):
                raise ArtifactError(f"source {local}: {rel} is not a regular file (a fifo, socket or device); "
                                    f"remove it from the folder")
            if not os.access(real.get(rel, path), os.R_OK):
                raise ArtifactError(f"source {local}: {rel} is not readable; fix its permissions")
            files.append((rel, st.st_size))
    if not files:
        raise ArtifactError(f"source {local} holds no files; nothing to publish")
    return SourceTree(str(local), sorted(files), local=local, real=real)


def _link_target(link: Path, root: Path) -> Path:
    """The resolved target of a link inside the source `root`; refused unless it is inside too."""
    rel = link.relative_to(root).as_posix()
    try:
        target = Path(os.path.realpath(link, strict=True))
    except FileNotFoundError:
        raise ArtifactError(f"source {root}: {rel} is a dangling symlink; remove it") from None
    except OSError as exc:
        why = "is a symlink loop" if exc.errno == errno.ELOOP else f"cannot be read ({exc.strerror})"
        raise ArtifactError(f"source {root}: {rel} {why}; remove it") from None
    if target != root and not str(target).startswith(str(root).rstrip(os.sep) + os.sep):
        raise ArtifactError(f"source {root}: {rel} is a symlink to {target}, outside the source; links are only "
                            f"followed inside it - copy the file in, or import the folder it points into")
    return target


def _remote_source(uri: str, storage_options: dict[str, Any] | None) -> SourceTree:
    from fsspec.core import url_to_fs  # lazy: fsspec.core is a heavy import

    try:
        fs, path = url_to_fs(uri, **(storage_options or {}))
    except (ImportError, ValueError, TypeError) as exc:
        raise ArtifactError(f"source {uri}: cannot open ({exc}); check the URI and storage options") from None
    path = path.rstrip("/")
    try:
        fs.invalidate_cache(path)
    except Exception:  # noqa: BLE001 - optional API
        pass
    try:
        if fs.isfile(path):
            size = int(fs.info(path).get("size") or 0)
            return SourceTree(uri, [(path.rsplit("/", 1)[-1], size)], fs=fs, path=path, single_file=True)
        try:
            found = fs.find(path, detail=True)
        except FileNotFoundError:
            found = {}
    except Exception as exc:  # noqa: BLE001 - no credentials, access denied, endpoint down
        raise remote_error(f"source {uri}", "listing", exc) from None
    files = sorted(
        (check_rel_path(p[len(path):].lstrip("/"), f"source {uri}"), int(info.get("size") or 0))
        for p, info in found.items()
        if info.get("type") != "directory" and p.startswith(path + "/")
    )
    if not files:
        raise ArtifactError(f"source {uri} does not exist or holds no files; pass an existing folder")
    return SourceTree(uri, files, fs=fs, path=path)


def check_source_vs_root(src: SourceTree, root: Path, *, move: bool) -> None:
    """Refuse a local source that holds the artifact root (it would copy the registry into itself)
    and a move of anything inside the root (a published version's files would vanish from it)."""
    if src.local is None:
        return
    inside = str(src.local) == str(root) or str(src.local).startswith(str(root).rstrip(os.sep) + os.sep)
    if move and inside:
        raise ArtifactError(f"source {src.display} is inside the artifact root {root}; it cannot be moved (that "
                            f"would take files away from the registry) - import it without --move")
    if not src.single_file and str(root).startswith(str(src.local).rstrip(os.sep) + os.sep):
        raise ArtifactError(f"source {src.display} contains the artifact root {root}; pass the folder that holds "
                            f"only the data")


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
        fin = _open_source_file(src, rel)
        mode = stat.S_IMODE(os.fstat(fin.fileno()).st_mode) & 0o666 if src.local is not None else 0o666
        with fin, store.open_write(f"{dest}/{rel}", mode) as fout:
            size, digest = copy_hashing(fin, fout)
        return ArtifactFile(rel, size, digest)

    manifest = parallel_map(copy_one, src.files)
    if move:
        src.remove()
    return manifest, False


def _open_source_file(src: SourceTree, rel: str) -> Any:
    """Open one listed source file; one that vanished or became a link since the listing is a
    one-line error (the caller's publish then removes its staging area: nothing half-written)."""
    try:
        return src.open(rel)
    except FileNotFoundError:
        raise ArtifactError(f"source {src.display}: {rel} vanished during the copy; nothing was published - "
                            f"import again once the folder is complete") from None
    except OSError as exc:
        if src.local is None:
            raise remote_error(f"source {src.display}", f"reading {rel}", exc) from None
        why = "was replaced by a symlink" if exc.errno == errno.ELOOP else f"cannot be read ({exc.strerror})"
        raise ArtifactError(f"source {src.display}: {rel} {why} during the copy; nothing was published") from None
    except Exception as exc:  # noqa: BLE001 - remote: credentials, endpoint
        raise remote_error(f"source {src.display}", f"reading {rel}", exc) from None


def hash_stored(store: Store, rel: str) -> tuple[int, str]:
    """(size, hash) of a stored file: in place when local, else streamed once."""
    local = store.hash_in_place(rel)
    if local is not None:
        return local
    with store.open_read(rel) as f:
        return hash_stream(f)
