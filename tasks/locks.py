"""Cache locks that die with their holder and hold across machines: `ProcessLockManager`.

Two flow runs computing the same stage take Prefect's SERIALIZABLE cache lock for its
content key: the second waits and then reads the first one's result (tasks/policy.py), or,
when it keeps its Prefect results elsewhere, finds the published artifact version with that
content key (pipeline/run.py:published_output) and submits nothing.

Where the locks live (`lock_dir`), decided: in the artifact registry, `<root>/.locks/`, when
the registry is a local/shared folder. A team runs one worker per Slurm login node, each with
its own state folder; what those workers necessarily share is the registry (and the cluster),
so a lock there is seen by all of them — a lock under one worker's state folder is not, and
both would submit the stage. The lock is a file created with O_EXCL (Prefect's
FileSystemLockManager), which NFS v3+/Lustre/GPFS honour. Prefect's global concurrency limits
keyed by content key were the alternative; they were not chosen because a slot leaked by a
killed holder stays taken until its lease expires (a stage runs for days: no lease length
fits), and they would make the content-key lock depend on the server being up. With a
registry that is not a folder (s3://, wandb) the locks fall back to `<state>/prefect/locks`:
one machine, or several machines sharing that state folder.

Staleness: Prefect writes `<key>.lock` with no expiry when no hold timeout is given, and a
stage may run for days, so no timeout fits. This manager records the holder's host, boot id,
pid and process start time in the lock file. A lock of this host whose holder process is gone
(or whose pid now belongs to another process, or whose host rebooted since) is free and is
removed; the removal re-reads the file under an flock on `.gc.lock`, so a lock just taken by
someone else is never removed. Locks of another host are trusted: its processes cannot be
seen from here (remove such a lock by hand if that host is gone for good).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

from prefect.locking.filesystem import FileSystemLockManager

from nemotron_core.paths import state_dir

LOCKS_SUBDIR = ".locks"  # not a valid artifact name: the registry never lists it


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot, /proc/<pid>/stat field 22), None if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def _boot_id() -> str | None:
    """Changes at every boot: a pid and start time recorded before a reboot mean nothing after it."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def lock_dir(env=None) -> Path:
    """Where cache locks live: `<registry root>/.locks` for a folder registry, else the state folder."""
    cfg: dict[str, Any] = dict(env.section("artifacts")) if env is not None else {}
    if cfg.get("backend", "fsspec") in ("fsspec", "file"):
        root = str(cfg.get("root") or os.environ.get("NEMOTRON_ARTIFACTS_ROOT") or Path(state_dir()) / "artifacts")
        if root.startswith("file://"):
            root = root[len("file://"):]
        if "://" not in root:
            return Path(root).expanduser() / LOCKS_SUBDIR
    return Path(state_dir()) / "prefect" / "locks"


class ProcessLockManager(FileSystemLockManager):
    @classmethod
    def for_env(cls, env=None) -> "ProcessLockManager":
        return cls(lock_files_directory=lock_dir(env))

    def acquire_lock(self, key: str, holder: str, acquire_timeout: Optional[float] = None,
                     hold_timeout: Optional[float] = None) -> bool:
        acquired = super().acquire_lock(key, holder, acquire_timeout, hold_timeout)
        if acquired:
            self._stamp(key)
        return acquired

    async def aacquire_lock(self, key: str, holder: str, acquire_timeout: Optional[float] = None,
                            hold_timeout: Optional[float] = None) -> bool:
        acquired = await super().aacquire_lock(key, holder, acquire_timeout, hold_timeout)
        if acquired:
            self._stamp(key)
        return acquired

    def _stamp(self, key: str) -> None:
        """Add who holds the lock to its file (replaced atomically: the file never goes missing)."""
        path = self._lock_path_for_key(key)
        info = json.loads(path.read_bytes())
        pid = os.getpid()
        info.update(host=socket.gethostname(), boot_id=_boot_id(), pid=pid, start=_start_time(pid))
        tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{pid}.tmp")
        tmp.write_text(json.dumps(info))
        os.replace(tmp, path)

    @contextlib.contextmanager
    def _gc_lock(self) -> Iterator[None]:
        """Serialises stale-lock removal between processes (and hosts, where the filesystem has flock)."""
        self._ensure_lock_files_directory_exists()
        with open(self.lock_files_directory / ".gc.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _read(self, key: str) -> dict | None:
        """The lock file's JSON; {} while its holder is still writing it; None when there is none."""
        try:
            return json.loads(self._lock_path_for_key(key).read_bytes())
        except FileNotFoundError:
            return None
        except ValueError:
            return {}

    def _load(self, key: str, use_cache: bool):
        try:
            return super()._get_lock_info(key, use_cache=use_cache)
        except ValueError:  # another process is writing it right now: locked
            return {"holder": "", "expiration": None, "path": self._lock_path_for_key(key)}

    def _get_lock_info(self, key: str, use_cache: bool = True):
        info = self._load(key, use_cache)
        if info is None or not self._holder_gone(info):
            return info
        with self._gc_lock():
            current = self._read(key)  # still the dead holder's lock, not one taken since?
            if current and self._holder_gone(current):
                self._lock_path_for_key(key).unlink(missing_ok=True)
        self._locks.pop(key, None)
        return self._load(key, use_cache=False)  # None once removed; a new holder's lock otherwise

    @staticmethod
    def _holder_gone(info: dict) -> bool:
        pid, start = info.get("pid"), info.get("start")
        if not pid or info.get("host") != socket.gethostname():
            return False
        if info.get("boot_id") and info.get("boot_id") != _boot_id():
            return True
        return _start_time(int(pid)) != start
