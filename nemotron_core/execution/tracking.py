"""Waiting on many Slurm jobs from one process: one squeue per poll answers for all of them.

    ids = array_task_ids(array_id, "0-999")          # or plain job ids
    final = track_slurm_jobs(ids, poll=2.0)          # {id: JobStatus} once every job ended

Why not one `Job.wait()` per job: each wait polls on its own schedule and a thread per job
does not scale to thousands. Here one thread asks `SlurmPoller.poll()` for every unfinished
id per interval; the poller runs one `squeue --json` for all of them (plus, once, a `sacct`
for jobs squeue has already forgotten), and finished jobs are never asked about again.
The jobs need not come from submit(): any job or array task on the cluster can be tracked.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterable

from nemotron_core.execution.backends.slurm_poll import poller_for
from nemotron_core.execution.states import JobError, JobStatus


def track_slurm_jobs(job_ids: Iterable[str], *, cluster: dict[str, Any] | None = None, poll: float = 2.0,
                     timeout: float | None = None,
                     on_poll: Callable[[dict[str, JobStatus]], None] | None = None) -> dict[str, JobStatus]:
    """Block until every job in `job_ids` ended; return their final statuses.

    `cluster` is how to reach Slurm (a JobRef's `cluster`; default: this host's $SLURM_CONF).
    `on_poll` gets the statuses of the jobs still open after each poll.
    """
    poller = poller_for(cluster or {"tunnel": "local", "slurm_conf": os.environ.get("SLURM_CONF")})
    open_ids = [str(i) for i in job_ids]
    final: dict[str, JobStatus] = {}
    deadline = None if timeout is None else time.monotonic() + timeout
    while open_ids:
        statuses = poller.poll(open_ids, max_age=0)
        final.update({i: st for i, st in statuses.items() if st.done})
        open_ids = [i for i in open_ids if i not in final]
        if on_poll:
            on_poll({i: statuses[i] for i in open_ids})
        if not open_ids:
            break
        if deadline is not None and time.monotonic() >= deadline:
            raise JobError(f"{len(open_ids)} Slurm job(s) still not finished after {timeout:.0f} s "
                           f"(e.g. {', '.join(open_ids[:3])})")
        time.sleep(poll)
    return final
