"""Which failures a stage task retries (pipeline/retry.py; tasks/policy.py applies them), and cache locks that die with their holder.

The end-to-end cases (a SIGTERMed / SIGKILLed trainer under torchrun) are in test_retry_resume.py;
here every branch of the decision, on the statuses the backends report.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from nemotron_core.contract import PREEMPTED_FILE
from nemotron_core.execution import JobError, JobState, JobStatus
from pipeline.retry import ResumableJobError, resume_reason, retryable
from tests.flows.helpers import REPO

FAILED_1 = JobStatus(JobState.FAILED, exit_code=1, raw="exited")


@pytest.mark.parametrize("status, retried", [
    (JobStatus(JobState.TIMEOUT, exit_code=0, signal=15), True),
    (JobStatus(JobState.PREEMPTED, exit_code=0), True),
    (JobStatus(JobState.NODE_FAIL), True),
    (JobStatus(JobState.FAILED, exit_code=75), True),  # the trainer's own exit code, no torchrun in between
    (JobStatus(JobState.FAILED, exit_code=137, signal=9), True),  # SIGKILL: a lost node looks like this
    (JobStatus(JobState.FAILED, reason="the job's wrapper died without recording an exit code", raw="lost"), True),
    (FAILED_1, False),  # a plain crash: the code is broken
    (JobStatus(JobState.FAILED, exit_code=2), False),  # bad config or data
    (JobStatus(JobState.OUT_OF_MEMORY, exit_code=0, signal=9), False),  # would fail the same way again
    (JobStatus(JobState.CANCELLED, exit_code=75, raw="cancelled"), False),  # a trainer checkpoints on cancel too
])
def test_resume_reason_by_status(status, retried, tmp_path):
    assert (resume_reason(status, tmp_path) is not None) is retried


def test_exit_1_with_the_trainers_marker_is_a_preemption(tmp_path):
    assert resume_reason(FAILED_1, tmp_path) is None
    (tmp_path / PREEMPTED_FILE).write_text('{"exit_code": 75, "signal": "SIGTERM", "step": 40, "checkpoint": "x"}')
    assert "SIGTERM at step 40" in resume_reason(FAILED_1, tmp_path)
    cancelled = JobStatus(JobState.CANCELLED, exit_code=1, raw="cancelled")
    assert resume_reason(cancelled, tmp_path) is None  # a user's cancel is never undone by a retry


def test_exit_1_after_torchrun_reports_a_sigkilled_worker(tmp_path):
    report = ["  exitcode  : -9 (pid: 30481)  (SIGKILL)", "  traceback : Signal 9 (SIGKILL) received by PID 30481"]
    assert "SIGKILL" in resume_reason(FAILED_1, tmp_path, report)
    assert resume_reason(FAILED_1, tmp_path, ["  exitcode  : 1 (pid: 30481)", "ValueError: boom"]) is None


def test_retry_condition_takes_resumable_errors_only():
    assert retryable(ResumableJobError("x", FAILED_1))
    assert retryable(JobError("x", JobStatus(JobState.TIMEOUT)))
    assert not retryable(JobError("x", FAILED_1))
    assert not retryable(JobError("x", JobStatus(JobState.CANCELLED, exit_code=75)))
    assert not retryable(ValueError("x"))


def test_a_cache_lock_held_by_a_killed_process_is_free(tmp_path):
    from tasks.locks import ProcessLockManager

    holder = textwrap.dedent(f"""
        import os, signal, sys
        from pathlib import Path
        from tasks.locks import ProcessLockManager
        assert ProcessLockManager(Path({str(tmp_path)!r})).acquire_lock("stage-key", holder="dead")
        os.kill(os.getpid(), signal.SIGKILL)   # killed while holding it: no release, no cleanup
    """)
    proc = subprocess.run([sys.executable, "-c", holder], cwd=REPO, timeout=120)
    assert proc.returncode == -9 and (tmp_path / "stage-key.lock").is_file()
    locks = ProcessLockManager(tmp_path)
    assert not locks.is_locked("stage-key")
    assert locks.acquire_lock("stage-key", holder="rerun", acquire_timeout=5)
    assert locks.is_lock_holder("stage-key", "rerun")
    # A live holder keeps it: another process waits (and here gives up after its timeout).
    waiter = f"""
from pathlib import Path
from tasks.locks import ProcessLockManager
print(ProcessLockManager(Path({str(tmp_path)!r})).acquire_lock("stage-key", holder="twin", acquire_timeout=1))
"""
    out = subprocess.run([sys.executable, "-c", waiter], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr
    locks.release_lock("stage-key", holder="rerun")
