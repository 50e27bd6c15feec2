"""The few storage primitives the registry needs, for a local folder and for fsspec.

What each store relies on (the whole concurrency story rests on `create_exclusive`
and `write_atomic`):

* `LocalStore` (file:// and plain paths, POSIX):
  - `create_exclusive`: the record is written and fsynced to a private temp file, then
    `os.link(tmp, final)`; link(2) fails with EEXIST when `final` exists, and the new
    name appears with its full content at once (an `O_EXCL` create would expose an
    empty/partial file to readers). Needs a filesystem with hard links (ext4, xfs,
    btrfs, NFS, Lustre); otherwise the error says so.
  - `write_atomic`: temp file + fsync + `os.replace` (rename(2) is atomic).
  - `move_in`: `os.rename` of a whole folder (no copy) when it is on the same
    filesystem; the caller falls back to copy+delete on EXDEV.
* `FsspecStore` for s3:// (s3fs):
  - `create_exclusive`: `pipe_file(mode="create")`, i.e. one PutObject with
    `If-None-Match: *`: S3 creates the object only if the key does not exist, atomically,
    and a PUT becomes visible whole or not at all (S3 conditional writes, 2024; s3fs
    maps the 412 to FileExistsError). moto implements the same header.
  - `write_atomic`: a single PutObject (records are small, never multipart).
  - listings bypass s3fs's listing cache (other processes write the same prefixes).
* `FsspecStore` for memory:// (unit tests only, one process): exclusivity via a lock.

Other fsspec protocols are refused: they give no atomic create-if-absent.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import stat
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlparse

from .hashing import hash_file
from nemotron_core.errors import ArtifactError

from .pathcheck import check_rel_path, under_root

_MEMORY_LOCK = threading.Lock()


class Store(ABC):
    """Byte storage under one root; paths are '/'-separated and relative to the root."""

    scheme: str = ""
    root_uri: str = ""

    @abstractmethod
    def uri(self, rel: str) -> str: ...

    def local_path(self, rel: str) -> Path | None:
        return None

    @abstractmethod
    def read(self, rel: str) -> bytes:
        """The whole object; FileNotFoundError when absent."""

    @abstractmethod
    def write_atomic(self, rel: str, data: bytes) -> None:
        """Create or replace `rel` so that readers see the old or the new bytes, never a mix."""

    @abstractmethod
    def create_exclusive(self, rel: str, data: bytes) -> bool:
        """Create `rel` with `data` only if absent (atomically); False if it existed."""

    @abstractmethod
    def listdir(self, rel: str) -> list[str]:
        """Basenames directly under `rel` ([] when absent); skips our temp files."""

    @abstractmethod
    def exists(self, rel: str) -> bool: ...

    @abstractmethod
    def remove_tree(self, rel: str) -> None:
        """Remove `rel` and everything below it; absent is fine."""

    @abstractmethod
    def open_write(self, rel: str, mode: int = 0o666) -> contextlib.AbstractContextManager[BinaryIO]:
        """A new file (never an existing one, never through a symlink); `mode` where the store has modes."""

    @abstractmethod
    def open_read(self, rel: str) -> contextlib.AbstractContextManager[BinaryIO]: ...

    @abstractmethod
    def walk_files(self, rel: str) -> list[tuple[str, int]]:
        """(path relative to `rel`, size) of every file below `rel`."""

    def move_in(self, src: Path, rel: str) -> bool:
        """Rename a local file/folder to `rel` without copying; False when not possible."""
        return False

    def hash_in_place(self, rel: str) -> tuple[int, str] | None:
        """(size, hash) by reading a stored file locally, or None if not local."""
        return None


# ----------------------------------------------------------------------------- local


class LocalStore(Store):
    scheme = "file"

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()
        self.root_uri = self.root.as_uri()

    def _p(self, rel: str, *, follow_last: bool = True) -> Path:
        """root/rel, refused unless it stays under the root with every symlink resolved (the
        registry's folders are shared: a planted link must not make us read or delete elsewhere)."""
        if not rel:
            return self.root
        path = self.root / check_rel_path(rel, f"artifact store {self.root_uri}")
        if not under_root(self.root, path, follow_last=follow_last):
            raise ArtifactError(f"{path} leads outside the artifact root {self.root} through a symlink; "
                                f"registry folders must be real folders - remove the link")
        return path

    def uri(self, rel: str) -> str:
        return self._p(rel).as_uri()

    def local_path(self, rel: str) -> Path | None:
        return self._p(rel)

    def read(self, rel: str) -> bytes:
        path = self._p(rel)
        # O_NONBLOCK: a fifo put where a record belongs must not hang every reader of the registry.
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if stat.S_ISDIR(mode):
                raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
            if not stat.S_ISREG(mode):
                raise OSError(errno.EINVAL, "not a regular file (a fifo, socket or device)", str(path))
            return f.read()

    def _tmp_write(self, final: Path, data: bytes) -> Path:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return tmp

    def _fsync_dir(self, path: Path) -> None:
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def write_atomic(self, rel: str, data: bytes) -> None:
        final = self._p(rel)
        tmp = self._tmp_write(final, data)
        try:
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._fsync_dir(final.parent)

    def create_exclusive(self, rel: str, data: bytes) -> bool:
        final = self._p(rel)
        tmp = self._tmp_write(final, data)
        try:
            os.link(tmp, final)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise ArtifactError(
                    f"artifact store {self.root_uri} does not support hard links ({exc.strerror}), which "
                    f"version allocation relies on; put the [artifacts] root on ext4/xfs/NFS or use s3://"
                ) from None
            raise
        finally:
            tmp.unlink(missing_ok=True)
        self._fsync_dir(final.parent)
        return True

    def listdir(self, rel: str) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self._p(rel)) if not n.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def exists(self, rel: str) -> bool:
        return self._p(rel).exists()

    def remove_tree(self, rel: str) -> None:
        p = self._p(rel, follow_last=False)  # a link is removed, never followed
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=False, onerror=_ignore_missing)
        else:
            p.unlink(missing_ok=True)

    @contextlib.contextmanager
    def open_write(self, rel: str, mode: int = 0o666) -> Iterator[BinaryIO]:
        p = self._p(rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode & 0o666)
        with open(fd, "wb") as f:
            yield f

    @contextlib.contextmanager
    def open_read(self, rel: str) -> Iterator[BinaryIO]:
        with open(self._p(rel), "rb") as f:
            yield f

    def walk_files(self, rel: str) -> list[tuple[str, int]]:
        base = self._p(rel)
        if base.is_file():
            return [("", base.stat().st_size)]
        out: list[tuple[str, int]] = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for fn in sorted(filenames):
                full = Path(dirpath) / fn
                rel_file = full.relative_to(self.root).as_posix()
                try:
                    size = self._p(rel_file).stat().st_size
                except OSError as exc:
                    raise ArtifactError(f"{full}: cannot read ({exc.strerror}); restore the file or re-publish") from None
                out.append((full.relative_to(base).as_posix(), size))
        return out

    def move_in(self, src: Path, rel: str) -> bool:
        dest = self._p(rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(src, dest)
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                return False
            raise
        return True

    def hash_in_place(self, rel: str) -> tuple[int, str] | None:
        return hash_file(self._p(rel))


def _ignore_missing(func: Any, path: str, exc_info: Any) -> None:
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]


# ---------------------------------------------------------------------------- fsspec


# What fsspec may raise that the registry's logic handles itself (absent, exists, ...).
_PASS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, ArtifactError)


def remote_error(where: str, what: str, exc: BaseException) -> ArtifactError:
    """One line for a failure of an object store (no credentials, access denied, endpoint down)."""
    detail = (str(exc).strip().splitlines() or [""])[0][:200]
    return ArtifactError(f"{where}: {what} failed ({type(exc).__name__}: {detail}); check the credentials "
                         f"(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or [artifacts].storage_options) and the endpoint")


def _translated(method: Any) -> Any:
    """Turn an object-store failure inside `method` into a one-line ArtifactError."""
    @functools.wraps(method)
    def wrapper(self: FsspecStore, rel: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, rel, *args, **kwargs)
        except _PASS:
            raise
        except Exception as exc:  # noqa: BLE001 - botocore/aiohttp raise many unrelated types
            raise remote_error(f"artifact store {self.root_uri}", f"{method.__name__} {rel or '/'}", exc) from None

    return wrapper


class FsspecStore(Store):
    """s3:// (and memory:// for unit tests) through an fsspec filesystem."""

    SUPPORTED = ("s3", "memory")

    def __init__(self, root: str, storage_options: dict[str, Any] | None = None):
        import fsspec  # lazy: fsspec is a heavy import

        opts = dict(storage_options or {})
        protocol = root.split("://", 1)[0]
        if protocol in ("s3a", "s3n"):
            protocol = "s3"
        if protocol not in self.SUPPORTED:
            raise ArtifactError(
                f"artifact root {root!r}: protocol {protocol!r} is not supported (it has no atomic "
                f"create-if-absent); use file://, s3:// or memory:// (tests)"
            )
        if protocol == "s3":
            opts.setdefault("use_listings_cache", False)
        try:
            self.fs = fsspec.filesystem(protocol, **opts)
        except (ImportError, TypeError, ValueError) as exc:
            raise ArtifactError(f"artifact root {root!r}: cannot open the {protocol} filesystem ({exc}); "
                                f"check [artifacts].storage_options") from None
        self.scheme = protocol
        self.base = self.fs._strip_protocol(root).rstrip("/")
        if not self.base.strip("/"):
            raise ArtifactError(f"artifact root {root!r} names no bucket/folder; use e.g. s3://bucket/prefix")
        self.root_uri = self.fs.unstrip_protocol(self.base)

    def _p(self, rel: str) -> str:
        return f"{self.base}/{check_rel_path(rel, f'artifact store {self.root_uri}')}" if rel else self.base

    def uri(self, rel: str) -> str:
        return self.fs.unstrip_protocol(self._p(rel))

    def _fresh(self, path: str) -> None:
        with contextlib.suppress(Exception):
            self.fs.invalidate_cache(path)

    @_translated
    def read(self, rel: str) -> bytes:
        try:
            return self.fs.cat_file(self._p(rel))
        except FileNotFoundError:
            raise
        except IsADirectoryError:
            raise FileNotFoundError(self._p(rel)) from None

    @_translated
    def write_atomic(self, rel: str, data: bytes) -> None:
        self.fs.pipe_file(self._p(rel), data)

    @_translated
    def create_exclusive(self, rel: str, data: bytes) -> bool:
        path = self._p(rel)
        if self.scheme == "memory":
            with _MEMORY_LOCK:
                if self.fs.exists(path):
                    return False
                self.fs.pipe_file(path, data)
                return True
        try:
            self.fs.pipe_file(path, data, mode="create")
        except FileExistsError:
            return False
        finally:
            self._fresh(path)
        return True

    @_translated
    def listdir(self, rel: str) -> list[str]:
        path = self._p(rel)
        self._fresh(path)
        try:
            entries = self.fs.ls(path, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        names = {e.rstrip("/").rsplit("/", 1)[-1] for e in entries}
        return sorted(n for n in names if n and not n.startswith("."))

    @_translated
    def exists(self, rel: str) -> bool:
        path = self._p(rel)
        self._fresh(path)
        return self.fs.exists(path)

    @_translated
    def remove_tree(self, rel: str) -> None:
        path = self._p(rel)
        self._fresh(path)
        with contextlib.suppress(FileNotFoundError):
            if self.fs.isdir(path):
                self.fs.rm(path, recursive=True)
            elif self.fs.exists(path):
                self.fs.rm(path)
        self._fresh(path)

    @contextlib.contextmanager
    def open_write(self, rel: str, mode: int = 0o666) -> Iterator[BinaryIO]:
        with self._remote_errors("write", rel), self.fs.open(self._p(rel), "wb") as f:  # no modes on object stores
            yield f

    @contextlib.contextmanager
    def open_read(self, rel: str) -> Iterator[BinaryIO]:
        with self._remote_errors("read", rel), self.fs.open(self._p(rel), "rb") as f:
            yield f

    @contextlib.contextmanager
    def _remote_errors(self, what: str, rel: str) -> Iterator[None]:
        try:
            yield
        except _PASS:
            raise
        except Exception as exc:  # noqa: BLE001 - see _translated
            raise remote_error(f"artifact store {self.root_uri}", f"{what} {rel}", exc) from None

    @_translated
    def walk_files(self, rel: str) -> list[tuple[str, int]]:
        base = self._p(rel)
        self._fresh(base)
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return []
        out = []
        for path, info in found.items():
            if info.get("type") == "directory":
                continue
            relpath = path[len(base):].lstrip("/") if path.startswith(base) else path
            out.append((relpath, int(info.get("size") or 0)))
        return sorted(out)


def open_store(root: str, storage_options: dict[str, Any] | None = None) -> Store:
    """A Store for `root`: a path or file:// URI → LocalStore; s3:// or memory:// → FsspecStore."""
    if not isinstance(root, str) or not root.strip():
        raise ArtifactError(f"invalid artifact root {root!r}: expected a folder path, file://, s3:// or memory:// URI")
    if root.startswith("file://"):
        return LocalStore(unquote(urlparse(root).path))
    if "://" not in root:
        return LocalStore(root)
    return FsspecStore(root, storage_options)
