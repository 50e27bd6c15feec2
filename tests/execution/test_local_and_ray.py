"""Detached local jobs (process groups) and jobs on a local Ray head (tests/fixtures/services.py: ray_head)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from nemotron_core.execution import Job, JobState, find_job, submit
from nemotron_core.execution.backends.local import _group_alive

from tests.execution.conftest import JOB_RECIPE, RANKS_RECIPE, REPO, files_containing
from tests.fixtures.waiting import wait_for

LOCAL = '[local]\nnproc_per_node = 2\n'


def status_from_another_process(job_dir) -> str:
    code = ("import sys; from nemotron_core.execution import Job; st = Job.from_dir(sys.argv[1]).status(); "
            "print(st.state.value, st.exit_code)")
    return subprocess.run([sys.executable, "-c", code, str(job_dir)], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}).stdout.strip()


# --------------------------------------------------------------- local process groups


def test_local_job_runs_detached_with_state_exit_code_and_logs(stage):
    s = stage(JOB_RECIPE, LOCAL, "local", "exit_code=4", "sleep=1")
    job = submit(s.executor, s.plan, job_dir=s.job_dir)
    assert type(s.executor).__name__ == "LocalExecutor"
    lines: list[str] = []
    status = job.wait(on_log=lines.append, timeout=60)
    assert (status.state, status.exit_code) == (JobState.FAILED, 4)
    assert "task 0 slept 1 s" in lines and any("greeting=hello" in line for line in lines)
    assert status_from_another_process(s.job_dir) == "FAILED 4"  # the exit code outlives this process


def test_local_torchrun_takes_nproc_from_the_profile(stage):
    s = stage(RANKS_RECIPE, LOCAL, "local")
    lines: list[str] = []
    status = submit(s.executor, s.plan, job_dir=s.job_dir).wait(on_log=lines.append, timeout=120)
    assert status.ok, "\n".join(lines)
    assert sum("rank 0 of 2" in line for line in lines) == 1 and sum("rank 1 of 2" in line for line in lines) == 1


def test_local_cancel_from_another_process_ends_the_whole_group(stage):
    s = stage(JOB_RECIPE, LOCAL, "local", "sleep=120")
    job = submit(s.executor, s.plan, job_dir=s.job_dir, content_key="local-key")
    wait_for(lambda: "task 0 slept 1 s" in job.logs(), 30, step=0.1)
    assert status_from_another_process(s.job_dir) == "RUNNING None"
    code = ("import sys; from nemotron_core.execution import find_job; j = find_job(sys.argv[1]); "
            "st = j.cancel(timeout=30); print(j.id, st.state.value)")
    out = subprocess.run([sys.executable, "-c", code, "local-key"], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert out.stdout.split() == [job.id, "CANCELLED"], out.stderr
    assert not _group_alive(int(job.id))
    assert job.status().state is JobState.CANCELLED
    assert find_job("local-key") is None


def test_local_resubmit_with_the_same_key_reattaches(stage):
    s = stage(JOB_RECIPE, LOCAL, "local", "sleep=0")
    first = submit(s.executor, s.plan, job_dir=s.job_dir, content_key="same-key")
    assert first.wait(timeout=60).ok
    again = submit(s.executor, s.plan, job_dir=s.job_dir.with_name("other"), content_key="same-key")
    assert again.reattached and again.id == first.id and not s.job_dir.with_name("other").exists()


# --------------------------------------------------------------- Ray


@pytest.fixture
def ray_profile(ray_head) -> str:
    return f'[ray]\nexecutor = "ray"\naddress = "{ray_head}"\n'


@pytest.mark.ray
def test_ray_job_state_exit_code_logs_and_secrets(stage, ray_profile, state, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_RaYsEcReT_55aa66bb")
    s = stage(JOB_RECIPE, ray_profile, "ray", "exit_code=5", "sleep=1", "check_env=HF_TOKEN")
    job = submit(s.executor, s.plan, job_dir=s.job_dir, flow_run_id="fr-ray", content_key="ray-key")
    assert job.id == f"nemotron-{s.job_dir.name}"
    lines: list[str] = []
    status = job.wait(on_log=lines.append, timeout=120)
    assert (status.state, status.exit_code) == (JobState.FAILED, 5), status
    assert "secret HF_TOKEN present=True" in lines and "task 0 slept 1 s" in lines
    assert "hf_RaYsEcReT_55aa66bb" not in job.logs()
    assert files_containing("hf_RaYsEcReT_55aa66bb", state) == [s.job_dir / "secrets.env"]
    assert status_from_another_process(s.job_dir) == "FAILED 5"


@pytest.mark.ray
def test_ray_job_completes_and_stop_cancels(stage, ray_profile):
    s = stage(JOB_RECIPE, ray_profile, "ray", "sleep=0")
    assert submit(s.executor, s.plan, job_dir=s.job_dir).wait(timeout=120).ok
    s = stage(JOB_RECIPE, ray_profile, "ray", "sleep=120")
    job = submit(s.executor, s.plan, job_dir=s.job_dir, content_key="ray-stop")
    wait_for(lambda: "task 0 slept 1 s" in job.logs(), 60, step=0.5)
    assert find_job("ray-stop").id == job.id
    status = job.cancel(timeout=60)
    assert status.state is JobState.CANCELLED
    assert Job.from_dir(s.job_dir).status(max_age=0).state is JobState.CANCELLED
