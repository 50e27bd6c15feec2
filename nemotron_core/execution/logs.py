"""Following a job's log files: new complete lines since the last read, per file.

`LogFollower` keeps a byte offset per file and a partial last line, so each call hands
out only lines that were not handed out before (a line is emitted once its newline is
written; `flush()` emits the remainder at the end). Files may appear late (Slurm creates
its output file when the job starts) and new ones may appear (one per requeue).
"""

from __future__ import annotations

import queue
import threading
from typing import AsyncIterator, Callable, Iterable


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

    def close(self) -> None:
        """Nothing to stop: files are read on demand."""


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

    def close(self) -> None:
        """Nothing to stop: the log is fetched on demand."""


class StreamFollower:
    """The same for a backend that pushes new log text as it is written (Ray's `tail_job_logs`).

    `stream()` is an async iterator of text chunks (the log from its start, then new text as it
    comes), consumed in a thread; each `read_new()` hands out only the lines completed since the
    last call, so following a long job costs O(log size) in all, where fetching the whole log at
    every poll (TextFollower) costs O(size²). If the stream fails or has not ended when the job
    has (`flush()` waits `settle` seconds), the rest comes from `fetch()` (the whole log), skipping
    what the stream already delivered: no line is lost or repeated.
    """

    def __init__(self, stream: Callable[[], AsyncIterator[str]], fetch: Callable[[], str], *, settle: float = 1.0,
                 name: str = "log-stream"):
        self._stream, self._fetch, self._settle = stream, fetch, settle
        self._chunks: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._received = 0  # characters handed on from the stream (the offset into the whole log)
        self._partial = ""
        self._fallback = False  # the stream failed or was given up: fetch() from now on
        self._done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import asyncio  # lazy: asyncio is a heavy import (~10 ms) that a dry run, which imports this module, never uses

        async def consume() -> None:
            async for chunk in self._stream():
                if self._stop.is_set():
                    return
                self._chunks.put(chunk)

        try:
            asyncio.run(consume())
        except Exception:  # noqa: BLE001 - connection refused/dropped, an old head: fetch() takes over
            self._chunks.put(None)  # type: ignore[arg-type]  # the marker: the stream failed here
        finally:
            self._done.set()

    def _drain(self) -> str:
        parts = []
        while True:
            try:
                chunk = self._chunks.get_nowait()
            except queue.Empty:
                break
            if chunk is None:
                self._fallback = True
                break
            parts.append(chunk)
        return "".join(parts)

    def _new_text(self) -> str:
        if not self._fallback:
            text = self._drain()
            self._received += len(text)
            if not self._fallback:
                return text
        else:
            text = ""
        whole = self._fetch() or ""
        rest = whole[self._received:]
        self._received = max(self._received, len(whole))
        return text + rest

    def read_new(self) -> list[str]:
        text = self._new_text()
        if not text:
            return []
        *complete, self._partial = (self._partial + text).split("\n")
        return complete

    def flush(self) -> list[str]:
        """The job has ended: the rest of the stream (or of the whole log), the last partial line included."""
        if not self._done.wait(self._settle) and not self._fallback:
            text = self._drain()  # the stream is late: take what it has, the rest from the whole log
            self._received += len(text)
            self._fallback = True
            self.close()
            lines = (self._partial + text).split("\n")
            self._partial = lines.pop()
            lines += self.read_new()
        else:
            lines = self.read_new()
        if self._partial:
            lines.append(self._partial)
            self._partial = ""
        return lines

    def close(self) -> None:
        """Stop consuming (the thread ends at the next chunk or when the job ends)."""
        self._stop.set()
