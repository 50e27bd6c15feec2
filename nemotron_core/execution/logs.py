"""Following a job's log files: new complete lines since the last read, per file.

`LogFollower` keeps a byte offset per file and a partial last line, so each call hands
out only lines that were not handed out before (a line is emitted once its newline is
written; `flush()` emits the remainder at the end). Files may appear late (Slurm creates
its output file when the job starts) and new ones may appear (one per requeue).
"""

from __future__ import annotations

from typing import Callable, Iterable


def read_local(path: str, offset: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read()
    except (FileNotFoundError, PermissionError):
        return b""


class LogFollower:
    def __init__(self, files: Callable[[], Iterable[str]], read: Callable[[str, int], bytes] = read_local):
        self._files = files  # called each time: returns the current list of log files
        self._read_bytes = read  # (path, offset) -> the bytes from offset on ("" when absent)
        self._offsets: dict[str, int] = {}
        self._partial: dict[str, bytes] = {}

    def read_new(self) -> list[str]:
        lines: list[str] = []
        for path in self._files():
            lines.extend(self._read(str(path)))
        return lines

    def flush(self) -> list[str]:
        lines = self.read_new()
        for path, rest in list(self._partial.items()):
            if rest:
                lines.append(rest.decode(errors="replace"))
            self._partial[path] = b""
        return lines

    def _read(self, path: str) -> list[str]:
        offset = self._offsets.get(path, 0)
        chunk = self._read_bytes(path, offset)
        if not chunk:
            return []
        self._offsets[path] = offset + len(chunk)
        data = self._partial.get(path, b"") + chunk
        *complete, rest = data.split(b"\n")
        self._partial[path] = rest
        return [line.decode(errors="replace") for line in complete]


class TextFollower:
    """The same for a backend that returns the whole log as one string (Ray)."""

    def __init__(self, fetch: Callable[[], str]):
        self._fetch = fetch
        self._seen = 0
        self._partial = ""

    def read_new(self) -> list[str]:
        text = self._fetch() or ""
        if len(text) <= self._seen:
            return []
        data = self._partial + text[self._seen:]
        self._seen = len(text)
        *complete, self._partial = data.split("\n")
        return complete

    def flush(self) -> list[str]:
        lines = self.read_new()
        if self._partial:
            lines.append(self._partial)
            self._partial = ""
        return lines
