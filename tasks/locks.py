"""Cache locks that die with their holder: `ProcessLockManager`.

Two flow runs computing the same stage take Prefect's SERIALIZABLE cache lock for its
content key: the second waits and then reads the first one's result (tasks/policy.py).
Prefect's FileSystemLockManager writes `<key>.lock` with no expiry when no hold timeout is
given, and a stage may run for days, so no timeout fits. If the process holding the lock is
SIGKILLed, that file stays and every later run of the stage waits on it forever.

This manager also records the holder's host, pid and process start time in the lock file.
A lock whose holder process is gone on this host (or whose pid now belongs to another
process) is free. Locks of another host are trusted: its processes cannot be seen from here.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Optional

from prefect.locking.filesystem import FileSystemLockManager


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot, /proc/<pid>/stat field 22), None if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


class ProcessLockManager(FileSystemLockManager):
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
        info.update(host=socket.gethostname(), pid=pid, start=_start_time(pid))
        tmp = path.with_name(f".{path.name}.{pid}.tmp")
        tmp.write_text(json.dumps(info))
        os.replace(tmp, path)

    def _get_lock_info(self, key: str, use_cache: bool = True):
        try:
            info = super()._get_lock_info(key, use_cache=use_cache)
        except ValueError:  # another process is writing it right now: locked
            return {"holder": "", "expiration": None, "path": self._lock_path_for_key(key)}
        if info is not None and self._holder_gone(info):
            Path(info["path"]).unlink(missing_ok=True)
            self._locks.pop(key, None)
            return None
        return info

    @staticmethod
    def _holder_gone(info: dict) -> bool:
        pid, start = info.get("pid"), info.get("start")
        if not pid or info.get("host") != socket.gethostname():
            return False
        return _start_time(int(pid)) != start
