"""A trainer stopped mid-run inside the nano3-full flow: the Prefect retry resumes from its checkpoint.

Under torchrun the trainer's "resume me" exit 75 (after SIGTERM) reaches the job as exit 1,
and a SIGKILLed worker as exit 1 too; the task layer tells both from a code failure
(tasks/policy.py: PREEMPTED.json, torchrun's SIGKILL report) and retries with resume: auto.
Local executor, real Prefect server; the pretrain data comes from one data-prep flow run.
"""

from __future__ import annotations

import os
import signal

import pytest

from nemotron_core.execution import Job, JobState
from tests.flows.helpers import (REPO, complete_checkpoints, flow_result, flow_state, job_dirs, output_dir, registry,
                                 run_flow, start_flow, trainer_worker, wait_for)

pytestmark = pytest.mark.skipif(not (REPO / "recipes/nano3/stage0_pretrain/train.py").is_file(),
                                reason="needs the pretrain recipe")

# Enough steps that the kill lands mid-run, a checkpoint every 5 steps (the work a kill may lose);
# one thread: two OpenMP threads on a shared 2-core machine run many times slower (measured: 5-13x).
TRAIN = ["train.max_steps=80", "checkpoint.interval=5", "eval.interval=0", "log.interval=10", "runtime.threads=1"]


@pytest.fixture(scope="module")
def flows(prefect_server):
    with flow_state(prefect_server, "rr") as (state, env):
        run_flow(env, stages=["data_pretrain"])
        yield state, env


def kill_trainer_mid_run(state, env, overrides: list[str], signum: int):
    """Start pretraining in a flow; once it has a checkpoint, send `signum` to the trainer worker."""
    before = job_dirs(state)
    log = state / "flow-logs" / f"kill-{signum}.log"
    flow = start_flow(env, log, stages=["pretrain"], overrides={"pretrain": overrides})
    try:
        first = wait_for(lambda: next(iter(job_dirs(state) - before), None), 120, "the pretrain job dir")
        out = wait_for(lambda: (first / "train.yaml").is_file() and output_dir(first), 60, "train.yaml")
        wait_for(lambda: complete_checkpoints(out), 300, "a first checkpoint")
        worker = wait_for(lambda: trainer_worker(first), 30, "the trainer worker")
        os.kill(worker, signum)
        return first, out, flow_result(flow, log)
    finally:
        if flow.poll() is None:
            flow.kill()


def assert_resumed_once(state, first, ref):
    reg = registry(state)
    version = reg.resolve(ref)
    key = version.metadata["content_key"]
    result = version.metadata["result"]["metrics"]
    assert result["resumes"] == 1 and result["resumed_from_step"] > 0, result
    assert result["steps"] == 80 and result["steps_this_attempt"] == 80 - result["resumed_from_step"]
    assert [v.ref for v in reg.list("nano3-pretrain-model") if v.metadata.get("content_key") == key] == [ref]
    jobs = sorted(d for d in job_dirs(state) if Job.from_dir(d).ref.content_key == key)
    assert len(jobs) == 2 and jobs[0] == first, jobs  # the killed attempt and its retry
    killed, retry = (Job.from_dir(d).status(max_age=0) for d in jobs)
    # What the bug was about: torchrun turns the trainer's exit into 1 at the job level.
    assert killed.state is JobState.FAILED and killed.exit_code == 1, killed
    assert retry.state is JobState.COMPLETED
    return jobs


def test_sigterm_to_the_trainer_is_retried_and_resumes_from_its_checkpoint(flows):
    state, env = flows
    # resume=never in the config: the retry still resumes (retries run with resume: auto).
    first, out, result = kill_trainer_mid_run(state, env, [*TRAIN, "seed=11", "resume=never"], signal.SIGTERM)
    jobs = assert_resumed_once(state, first, result["pretrain"])
    assert "stopped by SIGTERM" in (first / "job.log").read_text()
    assert "resume: never" in (jobs[0] / "train.yaml").read_text()
    assert "resume: auto" in (jobs[1] / "train.yaml").read_text()


def test_sigkilled_trainer_is_retried_and_resumes_from_its_last_checkpoint(flows):
    state, env = flows
    first, out, result = kill_trainer_mid_run(state, env, [*TRAIN, "seed=12"], signal.SIGKILL)
    assert_resumed_once(state, first, result["pretrain"])
    assert "Signal 9 (SIGKILL)" in (first / "job.log").read_text()
    assert not (out / "PREEMPTED.json").exists()


def test_a_user_error_is_not_retried(flows):
    state, env = flows
    before = job_dirs(state)
    log = state / "flow-logs" / "user-error.log"
    flow = start_flow(env, log, stages=["pretrain"], overrides={"pretrain": [*TRAIN, "seed=13", "train.seq_length=0"]})
    flow.wait(timeout=600)
    assert flow.returncode != 0
    new = job_dirs(state) - before
    assert len(new) == 1, new  # one attempt: exit 2 is not retried
    status = Job.from_dir(next(iter(new))).status(max_age=0)
    assert status.state is JobState.FAILED and status.exit_code in (1, 2)

