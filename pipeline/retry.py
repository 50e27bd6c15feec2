"""Which failed jobs a rerun can fix (Prefect-free; tasks/policy.py turns this into the task's retries).

Retry only what a retry can fix, and never config or data errors (exit 2), an out-of-memory
state or a cancellation. The retry resubmits into the same output_dir with `resume: auto`
(pipeline/run.py), where the trainer continues from its last checkpoint: at most one checkpoint
interval of work is lost. Retried:
* PREEMPTED, TIMEOUT, NODE_FAIL (the allocation ended, not the code);
* the trainers' "resume me" exit code (contract.RESUME_EXIT_CODE, 75);
* a FAILED job whose output_dir holds the trainer's PREEMPTED.json: under torchrun the
  agent exits 1 whatever its workers return, so the 75 never reaches the job level;
  the marker (written after the checkpoint, removed before each submission) says it;
* a job killed by SIGKILL: exit 137 / signal 9, a local job whose processes vanished
  without an exit code, or torchrun reporting a worker "Signal 9 (SIGKILL)".
  Decision: SIGKILL is retried. It is not a preemption (no checkpoint at the kill),
  but it is what a lost node or allocation looks like from here (the kernel, a node
  agent or an operator's `kill -9`), and the last periodic checkpoint bounds the loss.
  Its risk is the host OOM killer, which also sends SIGKILL: such a job fails again
  and stops after STAGE_RETRIES attempts, each resuming from a checkpoint (bounded
  waste). Slurm's explicit OUT_OF_MEMORY state is not retried.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Iterable

from nemotron_core.contract import PREEMPTED_FILE
from nemotron_core.execution import JobError, JobState

STAGE_RETRIES = 3
# torchrun's failure report for a worker that died of a signal ("traceback : Signal 9 (SIGKILL)
# received by PID 123", "exitcode  : -9 (pid: 123)").
_TORCHRUN_SIGKILL = re.compile(r"Signal 9 \(SIGKILL\) received by PID|exitcode\s*:\s*-9\b")


class ResumableJobError(JobError):
    """The job failed in a way a rerun with `resume: auto` fixes (the reason is in the message)."""


def preemption_marker(output_dir: Path) -> dict | None:
    """The trainer's PREEMPTED.json ({step, checkpoint, signal, exit_code}), if it wrote one."""
    try:
        return json.loads((Path(output_dir) / PREEMPTED_FILE).read_text())
    except (OSError, ValueError):
        return None


def resume_reason(status, output_dir: Path, log_tail: Iterable[str] = ()) -> str | None:
    """Why running the job again (resume: auto) can succeed, or None: see the module docstring."""
    if status is None or status.state in (JobState.CANCELLED, JobState.OUT_OF_MEMORY) or status.user_error:
        return None
    if status.resumable:
        return f"the job ended {status.describe()}"
    if status.state is not JobState.FAILED:
        return None
    marker = preemption_marker(output_dir)
    if marker is not None:
        return (f"the trainer stopped on {marker.get('signal', 'a signal')} at step {marker.get('step')} with a "
                f"checkpoint ({PREEMPTED_FILE}; the job-level exit code {status.exit_code} hides its exit 75)")
    if status.signal == signal.SIGKILL or status.exit_code == 128 + signal.SIGKILL:
        return "the job was killed by SIGKILL (a lost node or allocation looks like this)"
    if status.raw == "lost":
        return f"the job's processes vanished without an exit code ({status.reason})"
    if any(_TORCHRUN_SIGKILL.search(line) for line in log_tail):
        return "a worker was killed by SIGKILL (torchrun's failure report)"
    return None


def retryable(exc: BaseException | None) -> bool:
    if isinstance(exc, ResumableJobError):
        return True
    if not isinstance(exc, JobError) or exc.status is None:
        return False
    status = exc.status
    return status.resumable and status.state.value != "CANCELLED"
