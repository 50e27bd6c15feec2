"""`nemotron nano3 watch [FLOW_RUN]`: follow a nano3-full flow run that a worker runs, to its end.

    nemotron nano3 pipe --batch local ...     # submits, prints the flow run's id and this command
    nemotron nano3 watch 0b6c...              # by id; or by name (crafty-otter); none: the newest run

The run's rows are nemotron_cli/progress.py's (a live table on a terminal, one line per change
elsewhere), read from the Prefect server at $PREFECT_API_URL, so any machine that reaches the
server can watch. Ctrl-C asks whether to cancel the run or to stop watching (off a terminal it
only stops watching). At the end: each task run's state, the run's final state and what each stage
published. Exit 0 when the run completed, 1 when it failed or was cancelled, 130 after Ctrl-C.
scripts/quickstart (deployments/quickstart.py) ends the same way through `follow_to_end`.
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterName
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import ObjectNotFound

from nemotron_cli.progress import Watcher, ask_on_interrupt, settled_task_runs
from nemotron_core.errors import NemotronError

FLOW_NAME = "nano3-full"


def watch_command(flow_run: str | None) -> str:
    """The exact command that watches this flow run (printed by `pipe --batch`)."""
    return f"nemotron nano3 watch {flow_run}" if flow_run else "nemotron nano3 watch"


def watch_flow_run(which: str | None, out: TextIO | None = None) -> int:
    """`nemotron nano3 watch`: find the flow run, follow it to its end; the exit code."""
    out = out or sys.stdout
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        raise NemotronError("'nano3 watch' reads the flow run from a Prefect server: set PREFECT_API_URL "
                            "(e.g. eval \"$(scripts/prefect-server env)\"); `nano3 pipe` without --batch shows "
                            "its own progress")
    with get_client(sync_client=True) as client:
        check_server(client, url)
        run = find_flow_run(client, which, shown_url(url))
    print(f"flow run {run.name} ({run.id})", file=out, flush=True)
    return follow_to_end(run, title=f"flow run {run.name}", out=out)


def shown_url(url: str) -> str:
    """The URL for messages, without any user:password part."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"***@{parts.hostname}{f':{parts.port}' if parts.port else ''}")) \
        if "@" in parts.netloc else url


def check_server(client: Any, url: str) -> None:
    """One line, not a ConnectError traceback, when nothing answers at PREFECT_API_URL."""
    problem = client.api_healthcheck()  # the exception, or None when the server answered
    if problem is not None:
        raise NemotronError(f"no Prefect server answers at PREFECT_API_URL={shown_url(url)} ({type(problem).__name__}: "
                            f"{problem}); start it (scripts/prefect-server start) or fix the variable")


def find_flow_run(client: Any, which: str | None, url: str) -> Any:
    """A nano3-full flow run by id or name; without one, the newest. One-line errors name what there is."""
    runs = FlowFilter(name=FlowFilterName(any_=[FLOW_NAME]))
    if which is None:
        found = client.read_flow_runs(flow_filter=runs, sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=1)
        if not found:
            raise NemotronError(f"no {FLOW_NAME} flow run on {url}; start one: nemotron nano3 pipe --batch PROFILE")
        return found[0]
    try:
        run = client.read_flow_run(uuid.UUID(which))
    except ValueError:  # not an id: a name
        named = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[which])), limit=1)
        run = named[0] if named else None
    except ObjectNotFound:
        run = None
    if run is None:
        newest = client.read_flow_runs(flow_filter=runs, sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=3)
        listed = ", ".join(f"{r.name} ({r.id})" for r in newest) or "none"
        raise NemotronError(f"no flow run {which!r} on {url}; the newest {FLOW_NAME} runs: {listed}")
    flow = client.read_flow(run.flow_id)
    if flow.name != FLOW_NAME:
        raise NemotronError(f"flow run {which!r} is a run of {flow.name!r}, not {FLOW_NAME}: its rows are not "
                            f"the nano3 stages (open it in the Prefect UI)")
    return run


def follow_to_end(run: Any, *, title: str, out: TextIO | None = None) -> int:
    """Show `run` until it is final, then its task runs, state and results; Ctrl-C asks (exit 130)."""
    out = out or sys.stdout
    watcher = Watcher(out)
    try:
        run = watcher.follow(run.id)
    except KeyboardInterrupt:
        ask_on_interrupt(watcher.flow_run or run, out=out, interactive=sys.stdin.isatty() and out.isatty())
        return 130
    with get_client(sync_client=True) as client:
        tasks = settled_task_runs(client, run)  # Prefect records them after the flow run's end: wait for all
    for t in sorted(tasks, key=lambda t: t.start_time or t.expected_start_time):
        print(f"  {t.name:28s} {t.state.name if t.state else '-'}", file=out)
    print(f"{title}: {run.state.name}", file=out)
    for stage, ref in (_result(run) or {}).items():
        if isinstance(ref, str):
            print(f"  {stage:14s} {ref}", file=out)
    out.flush()
    return 0 if run.state.is_completed() else 1


def _result(run: Any) -> dict | None:
    try:
        result = run.state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - results are best-effort for the printout (not persisted, not reachable)
        return None
    return result if isinstance(result, dict) else None  # a failed or cancelled run holds its exception
