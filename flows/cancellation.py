"""Cancelling a flow run reaches its jobs: Slurm, Ray and local ones.

Prefect's `on_cancellation` hooks do not run reliably for flow runs a process worker
cancels (PrefectHQ/prefect#17259, #15912: the worker kills the flow process, the hook never
runs, the job keeps running). So the flows also protect themselves, in three layers:

1. `on_cancellation` / `on_crashed` hooks (when Prefect does run them);
2. `guard_flow_run()`, called first thing in a flow: SIGTERM (how the worker stops the
   flow process on cancel) cancels every job of this flow run before the process exits;
3. `sweep_dead_runs()`, also called at flow start: jobs whose flow run is over (cancelled,
   crashed, failed, or unknown to the server) are cancelled — what a SIGKILLed flow left.
Jobs find their flow run through the JobRef index and the Slurm job comment.
"""

from __future__ import annotations

import os
import signal
import threading

from nemotron_core.execution import cancel_flow_run
from nemotron_core.execution.sweeper import sweep
from tasks.prefect_env import export_prefect_location
from tasks.report import flow_run_id, logger

FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "CRASHED")


def cancel_jobs(run_id: str) -> None:
    done = cancel_flow_run(run_id, timeout=8.0)
    if done:
        logger().warning(f"cancelled the jobs of flow run {run_id}: {', '.join(map(str, done))}")


def guard_flow_run() -> None:
    export_prefect_location()  # job tags name this run's server even when only a profile file knows it
    run_id = flow_run_id()
    if not run_id or threading.current_thread() is not threading.main_thread():
        return
    # lazy: prefect.utilities.engine is a heavy import
    from prefect.utilities.engine import is_prefect_sigterm_handler_installed

    if is_prefect_sigterm_handler_installed():
        # Prefect >= 3.9 owns SIGTERM in a flow run: its child acks a worker's cancel intent only while
        # its own handler is installed (replacing it turned every Cancel click into Crashed). So watch
        # for the signal beside it: the handler stays Prefect's, the jobs are cancelled at once.
        watch_sigterm(run_id)
        sweep_dead_runs()
        return
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        try:
            cancel_jobs(run_id)
        finally:
            if callable(previous):
                previous(signum, frame)
            else:
                raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)
    sweep_dead_runs()


def watch_sigterm(run_id: str) -> bool:
    """Cancel the run's jobs from a thread as soon as SIGTERM arrives, without replacing its handler.

    signal.set_wakeup_fd: the interpreter writes each signal's number to a pipe the moment it
    arrives (even while the main thread is blocked waiting for a task), and this thread reads it.
    False when another part of the process (an asyncio loop) already owns the wakeup fd: the
    flow's on_cancellation / on_crashed hooks are then the only path.
    """
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    if previous != -1:
        signal.set_wakeup_fd(previous)
        os.close(read_end)
        os.close(write_end)
        return False

    def watch() -> None:
        while data := os.read(read_end, 64):
            if signal.SIGTERM in data:
                cancel_jobs(run_id)
                return

    threading.Thread(target=watch, name="nemotron-sigterm-watch", daemon=True).start()
    return True


def flow_run_alive(run_id: str) -> bool:
    """False when the Prefect server says the run is over (or does not know it)."""
    from prefect.client.orchestration import get_client  # lazy: prefect.client.orchestration is a heavy import
    from prefect.exceptions import ObjectNotFound  # lazy: prefect.exceptions is a heavy import

    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(run_id)
    except ObjectNotFound:
        return False
    except Exception:  # noqa: BLE001 - server unreachable: never cancel on a guess
        return True
    return not (run.state and run.state.type.value in FINAL_STATES)


def sweep_dead_runs() -> list[str]:
    current = flow_run_id()
    swept = sweep(lambda run_id: run_id == current or flow_run_alive(run_id))
    if swept:
        logger().warning(f"cancelled orphaned jobs of finished flow runs: {', '.join(swept)}")
    return swept
