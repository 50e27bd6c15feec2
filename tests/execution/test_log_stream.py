"""Ray job logs are followed as a stream (new text only), not fetched whole at every poll.

`StreamFollower` (nemotron_core/execution/logs.py) hands out each line once, whether the text
comes from the stream or, when the stream fails or lags behind the job's end, from the whole
log; the Ray backend feeds it `tail_job_logs` (a real Ray head below).
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from nemotron_core.execution import submit
from nemotron_core.execution.backends.ray import RayBackend
from nemotron_core.execution.logs import StreamFollower
from tests.execution.conftest import JOB_RECIPE
from tests.fixtures.waiting import wait_for


class Feed:
    """An async stream of chunks the test releases one by one; `fail` ends it with an error."""

    def __init__(self):
        self.chunks: list[str | Exception] = []
        self.ready = threading.Semaphore(0)
        self.sent = ""

    def push(self, item: str | Exception) -> None:
        self.chunks.append(item)
        self.ready.release()

    async def stream(self):
        while True:
            await asyncio.to_thread(self.ready.acquire)
            item = self.chunks.pop(0)
            if isinstance(item, Exception):
                raise item
            if item == "":
                return
            self.sent += item
            yield item


def _collect(follower, until: int) -> list[str]:
    got: list[str] = []
    wait_for(lambda: (got.extend(follower.read_new()), len(got) >= until)[1], 10, "streamed lines", step=0.02)
    return got


def test_each_streamed_line_is_handed_out_once():
    feed, fetches = Feed(), []
    follower = StreamFollower(feed.stream, lambda: fetches.append(1) or feed.sent)
    feed.push("one\ntw")
    assert _collect(follower, 1) == ["one"]
    feed.push("o\nthree\n")
    assert _collect(follower, 2) == ["two", "three"]
    feed.push("last, no newline")
    feed.push("")  # the job ended: the head closes the stream
    assert follower.flush() == ["last, no newline"]
    assert fetches == []  # the whole log was never fetched


def test_a_failed_stream_continues_from_the_whole_log_without_loss_or_repeats():
    feed = Feed()
    whole = {"text": ""}
    follower = StreamFollower(feed.stream, lambda: whole["text"])
    feed.push("a\nb")
    assert _collect(follower, 1) == ["a"]
    feed.push(RuntimeError("WebSocket connection closed unexpectedly"))
    whole["text"] = "a\nb\nc\nd"  # what the head has by now
    wait_for(lambda: follower._done.is_set(), 10, "the stream thread ended")
    assert follower.read_new() == ["b", "c"]
    whole["text"] += "\ne\n"
    assert follower.flush() == ["d", "e"]


def test_a_stream_still_open_when_the_job_ended_is_completed_from_the_whole_log():
    feed = Feed()
    follower = StreamFollower(feed.stream, lambda: "x\ny\nz\n", settle=0.2)
    feed.push("x\n")
    assert _collect(follower, 1) == ["x"]
    assert follower.flush() == ["y", "z"]  # the stream never closed: the rest comes from the whole log
    feed.push("y\n")  # late chunks after that are dropped, not handed out twice
    assert follower.read_new() == []


@pytest.fixture
def ray_profile(ray_head) -> str:
    return f'[ray]\nexecutor = "ray"\naddress = "{ray_head}"\n'


@pytest.mark.ray
def test_a_ray_job_is_followed_through_tail_job_logs(stage, ray_profile, monkeypatch):
    whole_fetches = []
    original = RayBackend.logs
    monkeypatch.setattr(RayBackend, "logs", lambda self, ref: whole_fetches.append(ref.id) or original(self, ref))
    s = stage(JOB_RECIPE, ray_profile, "ray", "sleep=4")
    job = submit(s.executor, s.plan, job_dir=s.job_dir)
    lines: list[str] = []
    status = job.wait(on_log=lines.append, timeout=180, poll=0.1, max_poll=0.2)  # many polls
    assert status.ok, lines
    slept = [line for line in lines if " slept " in line]
    assert slept == [f"task 0 slept {i} s" for i in range(1, 5)], lines  # each once, in order
    # Followed by the stream: a whole-log follower would fetch at each of the ~40 polls. Ray closes the
    # stream 2-3 s after the job ends, so flush() may take the rest from one whole fetch (no line lost).
    assert len(whole_fetches) <= 1, whole_fetches
