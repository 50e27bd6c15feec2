"""Watching a nano3-full flow run as it goes (scripts/quickstart, `nemotron nano3 pipe`).

One row per stage run (the eval once per model): its state (pending / running / cached / completed /
failed / retrying / cancelled), job id, elapsed time, and what its progress artifact says (tasks/progress.py:
step k/N, latest loss and ETA for a trainer, shards or rows done/total for a data prep, tasks done/total
and the running task's questions for the eval). The rows come from
the Prefect API only (the flow run, its task runs, their progress artifacts), so the watcher works
wherever the API is reachable, also when a worker on another machine runs the flow.

On a terminal: a Rich live table, redrawn every second (elapsed ticks locally), the API read every
POLL_S seconds. Elsewhere (CI logs, pipes): one plain line per change: a state or job change at once,
a progress change at most every PLAIN_EVERY seconds per row.

`settled_task_runs` is what the final per-task list reads: Prefect records task-run states from
events the server consumes after the flow run's own (final) state is set, so right after a flow run
ends the API may list fewer task runs than ran (a fresh server lists none); it waits, bounded, for
the count the run is expected to have.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TextIO, TypeVar

from prefect import tags
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterType, FlowRunFilter,
                                            FlowRunFilterId, FlowRunFilterTags)
from prefect.states import Cancelling
from rich.console import Console
from rich.live import Live
from rich.table import Table

from pipeline.stages import STAGES
from recipes.nano3.common.progress import UNITS
from tasks.progress import parse

T = TypeVar("T")

POLL_S = 2.0  # API reads: 3 small requests per poll
PLAIN_EVERY = 15.0  # non-terminal: progress lines per row at most this often (state changes print at once)
SETTLE_S = 30.0  # how long the final list waits for task runs Prefect has not recorded yet

STATES = {"SCHEDULED": "pending", "PENDING": "pending", "RUNNING": "running", "COMPLETED": "completed",
          "FAILED": "failed", "CRASHED": "failed", "CANCELLED": "cancelled", "CANCELLING": "cancelled",
          "PAUSED": "paused"}


def state_word(state: Any) -> str:
    """A Prefect state as one of the words the rows use."""
    if state is None:
        return "pending"
    if state.name in ("AwaitingRetry", "Retrying"):
        return "retrying"
    if state.name == "Cached":
        return "cached"
    return STATES.get(state.type.value, state.type.value.lower())


@dataclass
class Row:
    stage: str
    label: str
    output: str | None = None  # the artifact a fanned-out run reads (its progress artifact names it)
    task_run: Any = None
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def state(self) -> str:
        return state_word(self.task_run.state) if self.task_run is not None else "pending"

    def elapsed(self, now: datetime) -> float | None:
        t = self.task_run
        if t is None or t.start_time is None:
            return None
        return ((t.end_time or now) - t.start_time).total_seconds()


def expected_rows(stages: list[str] | None) -> list[Row]:
    """The stage runs a flow run with this `stages` parameter makes, in pipeline order."""
    rows = []
    for name, stage in STAGES.items():
        if stages and name not in stages:
            continue
        for fan, _slots in stage.runs():
            label = f"{name} ({fan})" if fan else name
            rows.append(Row(stage=name, label=label, output=STAGES[fan].output if fan else None))
    return rows


def assign(expected: list[Row], task_runs: list[Any], artifacts: dict[Any, dict[str, str]]) -> list[Row]:
    """Fresh rows with each task run on its row: by task-run name (`<stage>-<config>`), a fanned-out
    stage's runs by the model their progress artifact names, the others in start order. A task run no
    row expects gets a row of its own."""
    rows = [Row(stage=r.stage, label=r.label, output=r.output) for r in expected]
    extra: list[Row] = []
    ordered = sorted(task_runs, key=lambda t: t.start_time or t.expected_start_time or t.created or _EPOCH)
    named = [t for t in ordered if artifacts.get(t.id, {}).get("model")]  # these know their row
    for t in named + [t for t in ordered if t not in named]:
        fields = artifacts.get(t.id, {})
        mine = [r for r in rows if r.task_run is None and t.name.startswith(r.stage.replace("_", "-") + "-")]
        model = fields.get("model", "").partition(":")[0]
        row = next((r for r in mine if model and r.output == model), None) or (mine[0] if mine else None)
        if row is None:
            row = Row(stage=t.name, label=t.name)
            extra.append(row)
        row.task_run, row.fields = t, fields
    return rows + extra


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def progress_text(f: dict[str, str]) -> str:
    """The progress cell: "step 120/600" (trainers), "shards 3/8" / "rows 240/1650" (data preps),
    "tasks 1/5 heldout_qa 64/212" (the eval: its tasks, then the running one's questions)."""
    if f.get("step"):
        return f"step {f['step']}"
    counted = " ".join(f"{unit} {f[unit]}" for unit in UNITS if f.get(unit))
    if going := f.get("now"):
        counted = f"{counted} {going}".strip()
    return counted


def cells(row: Row, now: datetime) -> list[str]:
    f = row.fields
    going = row.state in ("running", "retrying")
    return [row.label, row.state, f.get("job", "-"), duration(row.elapsed(now)), progress_text(f) or "-",
            f.get("loss", "-"), f.get("eta", "-") if going else "-"]


HEADER = ["stage", "state", "job", "elapsed", "progress", "loss", "eta"]


def line(row: Row, now: datetime) -> str:
    label, state, job, elapsed, progress, loss, eta = cells(row, now)
    parts = [f"{label:18s} {state:9s}", f"job {job}" if job != "-" else "", f"{elapsed}",
             progress if progress != "-" else "", f"loss {loss}" if loss != "-" else "", f"eta {eta}" if eta != "-" else ""]
    return "  ".join(p for p in parts if p)


class Watcher:
    """Reads a flow run's rows from the API and shows them (live table or plain lines)."""

    def __init__(self, out: TextIO | None = None, *, live: bool | None = None) -> None:
        self.out = out or sys.stdout
        self.live = self.out.isatty() if live is None else live
        self.expected: list[Row] = []
        self.rows: list[Row] = []
        self.flow_run: Any = None
        self._printed: dict[str, tuple[tuple[str, str], tuple[str, ...], float]] = {}
        self._flow_state = ""

    # reading ------------------------------------------------------------------------------------------
    def poll(self, client: Any, flow_run_id: Any) -> Any:
        self.flow_run = client.read_flow_run(flow_run_id)
        if not self.expected:
            self.expected = expected_rows((self.flow_run.parameters or {}).get("stages"))
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]), type=ArtifactFilterType(any_=["progress"])))
        # oldest first, so a retried task run shows its latest attempt's artifact
        by_task = {a.task_run_id: parse(a.description) for a in sorted(artifacts, key=lambda a: a.created or _EPOCH)
                   if a.task_run_id}
        self.rows = assign(self.expected, task_runs, by_task)
        return self.flow_run

    # showing ------------------------------------------------------------------------------------------
    def table(self) -> Any:
        now = datetime.now(timezone.utc)
        run = self.flow_run
        title = f"{run.name}: {state_word(run.state)}" if run is not None else "waiting for the flow run"
        table = Table(*HEADER, title=title, title_justify="left", expand=False)
        for row in self.rows:
            table.add_row(*cells(row, now))
        return table

    def print_changes(self) -> None:
        now = datetime.now(timezone.utc)
        clock = time.strftime("%H:%M:%S")
        if self.flow_run is not None and state_word(self.flow_run.state) != self._flow_state:
            self._flow_state = state_word(self.flow_run.state)
            print(f"{clock} flow run {self.flow_run.name}: {self._flow_state}", file=self.out, flush=True)
        for row in self.rows:
            c = cells(row, now)
            key, progress = (c[1], c[2]), (c[4], c[5])
            before = self._printed.get(row.label)
            changed = before is None or before[0] != key or (before[1] != progress
                                                             and time.monotonic() - before[2] >= PLAIN_EVERY)
            if before is None and row.task_run is None:
                changed = False  # pending rows: printed once they start
            if changed:
                self._printed[row.label] = (key, progress, time.monotonic())
                print(f"{clock} {line(row, now)}", file=self.out, flush=True)

    # the loop -----------------------------------------------------------------------------------------
    def follow(self, flow_run_id: Any, should_stop: Callable[[], bool] | None = None) -> Any:
        """Show the run until it is final (or `should_stop()`); return the flow run as last read.
        A final run is shown once more when Prefect has recorded all its task runs (settled_task_runs)."""
        with get_client(sync_client=True) as client:
            if not self.live:
                return self._loop(client, flow_run_id, should_stop, self.print_changes)
            with Live(console=Console(file=self.out), get_renderable=self.table, refresh_per_second=1), \
                    _prefect_logs_above_the_table():
                return self._loop(client, flow_run_id, should_stop, lambda: None)

    def _loop(self, client: Any, flow_run_id: Any, should_stop: Callable[[], bool] | None,
              show: Callable[[], None]) -> Any:
        while True:
            run = self.poll(client, flow_run_id)
            if run.state is not None and run.state.is_final():
                settled_task_runs(client, run)
                run = self.poll(client, flow_run_id)
                show()
                return run
            show()
            if should_stop is not None and should_stop():
                return run
            time.sleep(POLL_S)


@contextmanager
def _prefect_logs_above_the_table() -> Iterator[None]:
    """An in-process flow's Prefect console logs print above the live table: Prefect's console handler
    keeps the stderr it saw when logging was set up, so point it at the stderr Rich's Live redirects."""
    handlers = [h for lg in [logging.getLogger(), *(logging.getLogger(n) for n in list(logging.Logger.manager.loggerDict))]
                for h in lg.handlers if type(h).__name__ == "PrefectConsoleHandler" and hasattr(h, "console")]
    before = [(h, h.console.file) for h in handlers]
    for h, _ in before:
        h.console.file = sys.stderr
    try:
        yield
    finally:
        for h, file in before:
            h.console.file = file


def watch_in_process(run: Callable[[], T], out: TextIO | None = None) -> T:
    """`run()` (a flow called in this process) with a Watcher following its flow run from a thread.

    The flow run is found by a tag only it carries. Ctrl-C stays the flow's: it runs here, so it is
    cancelled (with its jobs); there is nothing to detach from."""
    # Without PREFECT_API_URL the first client of this process starts Prefect's temporary server; two
    # threads asking at once started two, which broke the run: start it here, before the thread.
    with get_client(sync_client=True) as client:
        client.api_healthcheck()
    tag = f"nemotron-watch-{uuid.uuid4().hex[:12]}"
    done = threading.Event()
    watcher = Watcher(out)
    thread = threading.Thread(target=_follow_tagged, args=(watcher, tag, done), daemon=True, name="nemotron-watch")
    thread.start()
    try:
        with tags(tag):
            return run()
    finally:
        done.set()
        thread.join(timeout=SETTLE_S + 2 * POLL_S)  # it shows the final states, then ends


def _follow_tagged(watcher: Watcher, tag: str, done: Any) -> None:
    try:
        with get_client(sync_client=True) as client:
            while not done.is_set():
                found = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag])),
                                              limit=1)
                if found:
                    watcher.follow(found[0].id, should_stop=lambda: False)
                    return
                done.wait(POLL_S / 2)
    except Exception as e:  # noqa: BLE001 - watching is a view: the run itself goes on and reports its own errors
        print(f"warning: progress view stopped ({type(e).__name__}: {e})", file=sys.stderr, flush=True)


def settled_task_runs(client: Any, flow_run: Any, *, timeout: float = SETTLE_S) -> list[Any]:
    """The flow run's task runs once the API lists all it ran, each in a final state (bounded wait).

    A completed run ran one per stage run its `stages` asked for. A failed or cancelled one may have
    run fewer: it waits until two reads a second apart list the same runs, all final."""
    want = len(expected_rows((flow_run.parameters or {}).get("stages")))
    deadline = time.monotonic() + timeout
    before: list[Any] | None = None
    while True:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
        final = bool(runs) and all(t.state is not None and t.state.is_final() for t in runs)
        if flow_run.state is not None and flow_run.state.is_completed():
            enough = len(runs) >= want
        else:
            enough = before is not None and len(before) == len(runs)
        if (final and enough) or time.monotonic() >= deadline:
            return runs
        before = runs
        time.sleep(1.0)


def ask_on_interrupt(flow_run: Any, *, out: TextIO, interactive: bool) -> str:
    """Ctrl-C while watching a flow run that goes on without us: 'cancel' it, or 'detach' (stop watching).

    On a terminal it asks; elsewhere it never cancels (a stray signal in CI must not end a run)."""
    name = f"flow run {flow_run.name}" if flow_run is not None else "the flow run"
    choice = "w"
    if interactive and flow_run is not None:
        try:
            print(file=out)
            choice = input(f"Ctrl-C: [c]ancel {name} (and its jobs), or [w]atch no more and let it run? [w] ")
        except (EOFError, KeyboardInterrupt):
            choice = "w"
    if choice.strip().lower().startswith("c") and flow_run is not None:
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(flow_run.id, Cancelling(message="cancelled from the terminal (Ctrl-C)"))
        print(f"cancelling {name}: its worker stops it and the flow cancels its jobs", file=out, flush=True)
        return "cancel"
    hint = f" (cancel it: prefect flow-run cancel {flow_run.id})" if flow_run is not None else ""
    print(f"stopped watching; {name} goes on{hint}", file=out, flush=True)
    return "detach"
