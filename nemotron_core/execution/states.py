"""What a job is doing: `JobState`, `JobStatus`, and the error a failed job raises.

States are Slurm's own final states, not torchx's mapping (torchx folds PREEMPTED and
TIMEOUT into FAILED, and the orchestrator must tell "retry on a fresh allocation" from
"the code is broken"). Ray and local jobs map onto the same names:

    PENDING   queued / requeued / Ray PENDING          (not terminal)
    RUNNING   running or completing / Ray RUNNING      (not terminal)
    COMPLETED exit 0
    FAILED    non-zero exit (exit_code says which)
    CANCELLED scancel / Ray stop_job / local cancel
    TIMEOUT   the job's time limit passed
    PREEMPTED preempted and not requeued
    NODE_FAIL a node died (also BOOT_FAIL)
    OUT_OF_MEMORY
    UNKNOWN   the backend no longer knows the job (purged, or its id was reused)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from nemotron_core.contract import RESUME_EXIT_CODE, USER_ERROR_EXIT_CODE
from nemotron_core.errors import NemotronError


class JobState(str, Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    PREEMPTED = "PREEMPTED"
    NODE_FAIL = "NODE_FAIL"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    UNKNOWN = "UNKNOWN"

    @property
    def terminal(self) -> bool:
        return self not in (JobState.PENDING, JobState.RUNNING)

    def __str__(self) -> str:
        return self.value


#: Slurm state strings (squeue/scontrol/sacct/jobcomp, long and short forms) → JobState.
SLURM_STATES: dict[str, JobState] = {
    "PENDING": JobState.PENDING, "PD": JobState.PENDING,
    "CONFIGURING": JobState.PENDING, "CF": JobState.PENDING,
    "REQUEUED": JobState.PENDING, "RQ": JobState.PENDING,
    "REQUEUE_HOLD": JobState.PENDING, "REQUEUE_FED": JobState.PENDING,
    "RESV_DEL_HOLD": JobState.PENDING, "SUSPENDED": JobState.RUNNING, "S": JobState.RUNNING,
    "STOPPED": JobState.RUNNING, "ST": JobState.RUNNING,
    "RUNNING": JobState.RUNNING, "R": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING, "CG": JobState.RUNNING,
    "RESIZING": JobState.RUNNING, "SIGNALING": JobState.RUNNING, "STAGE_OUT": JobState.RUNNING,
    "COMPLETED": JobState.COMPLETED, "CD": JobState.COMPLETED,
    "FAILED": JobState.FAILED, "F": JobState.FAILED, "SPECIAL_EXIT": JobState.FAILED, "SE": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED, "CA": JobState.CANCELLED, "REVOKED": JobState.CANCELLED,
    "TIMEOUT": JobState.TIMEOUT, "TO": JobState.TIMEOUT, "DEADLINE": JobState.TIMEOUT, "DL": JobState.TIMEOUT,
    "PREEMPTED": JobState.PREEMPTED, "PR": JobState.PREEMPTED,
    "NODE_FAIL": JobState.NODE_FAIL, "NF": JobState.NODE_FAIL,
    "BOOT_FAIL": JobState.NODE_FAIL, "BF": JobState.NODE_FAIL,
    "OUT_OF_MEMORY": JobState.OUT_OF_MEMORY, "OOM": JobState.OUT_OF_MEMORY,
}


def slurm_state(raw: str) -> JobState:
    """'CANCELLED by 0' / 'FAILED' / ['RUNNING', 'COMPLETING'] → JobState."""
    if isinstance(raw, (list, tuple)):
        raw = raw[0] if raw else ""
    word = str(raw).split()[0].rstrip("+") if str(raw).strip() else ""
    return SLURM_STATES.get(word.upper(), JobState.UNKNOWN)


@dataclass(frozen=True)
class JobStatus:
    state: JobState
    exit_code: int | None = None  # the process's exit status (Slurm's E in E:S)
    signal: int | None = None  # the signal that ended it (Slurm's S), if any
    reason: str | None = None  # Slurm Reason / Ray message / local note
    restarts: int = 0  # Slurm requeues
    raw: str | None = None  # the backend's own state string

    @property
    def done(self) -> bool:
        return self.state.terminal

    @property
    def ok(self) -> bool:
        return self.state is JobState.COMPLETED

    @property
    def resumable(self) -> bool:
        """Running again (with `resume: auto`) makes sense: the allocation ended, not the code
        (TIMEOUT, PREEMPTED, NODE_FAIL), or the script said so (contract.RESUME_EXIT_CODE)."""
        return self.state in (JobState.TIMEOUT, JobState.PREEMPTED, JobState.NODE_FAIL) or (
            self.done and self.exit_code == RESUME_EXIT_CODE)

    @property
    def user_error(self) -> bool:
        """The script rejected its config or data (contract.USER_ERROR_EXIT_CODE): do not retry."""
        return self.state is JobState.FAILED and self.exit_code == USER_ERROR_EXIT_CODE

    @property
    def returncode(self) -> int:
        """A process exit code for the CLI: 0 on success, the job's code on failure."""
        if self.state is JobState.COMPLETED:
            return 0
        if self.exit_code:
            return self.exit_code
        if self.signal:
            return 128 + self.signal
        return 1

    def with_(self, **changes: Any) -> "JobStatus":
        return replace(self, **changes)

    def describe(self) -> str:
        text = self.state.value
        if self.state is JobState.FAILED and self.exit_code is not None:
            text += f" (exit code {self.exit_code})"
        elif self.signal:
            text += f" (signal {self.signal})"
        if self.restarts:
            text += f", {self.restarts} restart(s)"
        if self.reason and self.reason not in ("None", ""):
            text += f" [{self.reason}]"
        return text


class JobError(NemotronError):
    """A job ended in a state other than COMPLETED (raised by `Job.wait(check=True)`)."""

    def __init__(self, message: str, status: JobStatus | None = None):
        super().__init__(message)
        self.status = status
