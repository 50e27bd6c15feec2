"""The execution layer on a real single-host Slurm (tests/fixtures/services.py: slurm_cluster)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from nemotron_core.execution import JobState, find_job, submit, wait_all
from nemotron_core.execution.backends.slurm import SlurmPoller, SlurmShell, poller_for
from nemotron_core.execution.refs import JobRef

from tests.execution.conftest import JOB_RECIPE, RANKS_RECIPE, REPO, files_containing, slurm_profile
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.slurm


def squeue_ids(slurm, *, all_states: bool = False) -> list[str]:
    args = ["squeue", "-h", "-o", "%i"] + (["-t", "all"] if all_states else [])
    return slurm.run(*args).stdout.split()


def test_two_task_srun_job_completes_and_streams_its_logs(slurm, stage):
    s = stage(JOB_RECIPE, slurm_profile(ntasks_per_node=2), "slurm", "sleep=1", passthrough=["--x", "a b"])
    job = submit(s.executor, s.plan, job_dir=s.job_dir, flow_run_id="fr-complete")
    lines: list[str] = []
    status = job.wait(on_log=lines.append, timeout=120)
    assert status.state is JobState.COMPLETED and status.exit_code == 0, status
    tasks = sorted(line.split(" on ")[0] for line in lines if line.startswith("task ") and " of " in line)
    assert tasks == ["task 0 of 2", "task 1 of 2"], lines
    assert all("greeting=hello" in line and "extra=['--x', 'a b']" in line for line in lines if " of 2 " in line)
    assert "task 1 slept 1 s" in lines
    ref = JobRef.load(s.job_dir)  # persisted, with the id and how to reach the cluster again
    assert ref.id == job.id and ref.backend == "slurm" and ref.cluster["slurm_conf"] == str(slurm.conf)
    assert (s.job_dir / "code" / JOB_RECIPE).is_file()  # self-contained package
    assert not (s.job_dir / "code" / "nemotron_core").exists()  # the script imports nothing of the project
    assert "task 0 of 2" in job.logs()


def test_exit_code_3_is_failed_with_exit_code_3(slurm, stage):
    s = stage(JOB_RECIPE, slurm_profile(), "slurm", "exit_code=3")
    status = submit(s.executor, s.plan, job_dir=s.job_dir).wait(timeout=120)
    assert (status.state, status.exit_code, status.returncode) == (JobState.FAILED, 3, 3)


def test_cancel_ends_the_running_job_and_it_leaves_squeue(slurm, stage):
    """The events, in order: RUNNING, cancel() returns CANCELLED, the job is gone from squeue, and
    its command never finished (no "slept" line). How fast: benchmarks/cancel_latency.py."""
    s = stage(JOB_RECIPE, slurm_profile(), "slurm", "sleep=120")
    job = submit(s.executor, s.plan, job_dir=s.job_dir)
    wait_for(lambda: job.status(max_age=0).state is JobState.RUNNING, 60)
    status = job.cancel(timeout=30)
    assert status.state is JobState.CANCELLED
    assert job.id not in squeue_ids(slurm)  # plain squeue: pending/running/completing only
    assert "slept" not in job.logs()  # ended by the cancel, not by its own end


def test_requeue_runs_the_job_again_and_it_completes(slurm, stage, tmp_path):
    out = tmp_path / "out"
    s = stage(JOB_RECIPE, slurm_profile(), "slurm", "sleep=60", "sleep_after_requeue=1", f"output_dir={out}")
    job = submit(s.executor, s.plan, job_dir=s.job_dir)
    wait_for(lambda: job.status(max_age=0).state is JobState.RUNNING, 60)
    wait_for(lambda: (out / "task-0-restart-0.txt").exists(), 60)
    job.requeue()  # scontrol requeue + StartTime=now (else Slurm holds it 121 s)
    status = job.wait(timeout=120)
    assert status.state is JobState.COMPLETED and status.restarts == 1, status
    assert (out / "task-0-restart-1.txt").exists()
    log_names = [os.path.basename(p) for p in job.log_files()]
    assert f"log-nemotron-test-job_{job.id}_0.out" in log_names and f"log-nemotron-test-job_{job.id}_1.out" in log_names


def test_a_purged_job_reads_its_final_state_from_jobcomp(slurm, stage):
    s = stage(JOB_RECIPE, slurm_profile(), "slurm", "exit_code=7")
    job = submit(s.executor, s.plan, job_dir=s.job_dir)
    assert job.wait(timeout=120).exit_code == 7
    poller = SlurmPoller(SlurmShell(job.ref.cluster))  # what the poller does once squeue forgot the job
    final = poller._final_states([job.id])
    assert final[job.id].state is JobState.FAILED and final[job.id].exit_code == 7


def test_status_polls_are_batched_into_one_squeue_per_poll(slurm, stage):
    jobs = []
    for i in range(3):
        s = stage(JOB_RECIPE, slurm_profile(), "slurm", "sleep=2")
        jobs.append(submit(s.executor, s.plan, job_dir=s.job_dir))
    poller = poller_for(jobs[0].ref.cluster)
    before = poller.queries
    final = wait_all(jobs, poll=0.5, timeout=120)
    assert all(st.state is JobState.COMPLETED for st in final.values())
    polls = poller.queries - before
    assert 1 <= polls <= 30
    # Three threads waiting at once share the answers too.
    before = poller.queries
    for i in range(3):
        s = stage(JOB_RECIPE, slurm_profile(), "slurm", "sleep=2")
        jobs[i] = submit(s.executor, s.plan, job_dir=s.job_dir)
    results = {}
    threads = [threading.Thread(target=lambda j=j: results.setdefault(j.id, j.wait(poll=0.5, max_poll=1)))
               for j in jobs]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    elapsed = time.monotonic() - t0
    assert all(st.ok for st in results.values()) and len(results) == 3
    assert poller.queries - before <= elapsed / 0.5 + 3  # not 3x: one query answers all three


ORCHESTRATOR = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from nemotron_core.execution import submit
    from tests.execution.test_slurm import restage
    executor, plan, job_dir = restage(sys.argv[1], sys.argv[2])
    job = submit(executor, plan, job_dir=job_dir, content_key=sys.argv[3], flow_run_id="fr-killed")
    print("SUBMITTED", job.id, flush=True)
    time.sleep(300)
""")


def restage(env_file: str, job_dir: str):
    """Rebuild executor and plan in a fresh process (what a restarted orchestrator does)."""
    from pathlib import Path

    from nemotron_core.execution import create_executor
    from nemotron_core.launch import plan_job
    from nemotron_core.profiles import load_env
    from nemotron_core.runspec import parse

    spec = parse(REPO / JOB_RECIPE)
    profile = load_env(Path(env_file)).profile("slurm")
    return create_executor(profile, spec), plan_job(spec, profile, Path(job_dir) / "train.yaml"), Path(job_dir)


def test_killed_orchestrator_reattaches_and_never_submits_twice(slurm, stage, tmp_path):
    s = stage(JOB_RECIPE, slurm_profile(), "slurm", "sleep=60")
    key = f"content-key-{tmp_path.name}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", ORCHESTRATOR, str(tmp_path / "env.toml"), str(s.job_dir), key],
                            stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        line = proc.stdout.readline()
        assert line.startswith("SUBMITTED "), line
        job_id = line.split()[1]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    found = find_job(key)
    assert found is not None and found.id == job_id and found.reattached
    # The restarted orchestrator runs the same code: submit() hands back the same job.
    executor, plan, _ = restage(str(tmp_path / "env.toml"), str(s.job_dir))
    again = submit(executor, plan, job_dir=tmp_path / "second-dir", content_key=key)
    assert again.id == job_id and again.reattached and not (tmp_path / "second-dir").exists()
    comments = slurm.run("squeue", "-h", "-t", "all", "-o", "%i %k").stdout
    assert sum(f"key={key}" in c for c in comments.splitlines()) == 1  # one sbatch, ever
    assert again.cancel().state is JobState.CANCELLED
    assert find_job(key) is None  # a cancelled job is not reused: a retry submits anew
    assert find_job(key, include_failed=True).id == job_id


def test_a_submission_whose_id_was_lost_is_found_by_its_comment(slurm, stage):
    s = stage(JOB_RECIPE, slurm_profile(), "slurm", "sleep=30")
    job = submit(s.executor, s.plan, job_dir=s.job_dir, content_key="lost-id-key")
    data = json.loads((s.job_dir / "jobref.json").read_text())
    data["id"] = None  # as if the orchestrator died between sbatch and saving the id
    (s.job_dir / "jobref.json").write_text(json.dumps(data))
    found = find_job("lost-id-key")
    assert found is not None and found.id == job.id
    assert JobRef.load(s.job_dir).id == job.id  # written back
    found.cancel()


def test_secrets_reach_the_job_and_nothing_else(slurm, stage, state, monkeypatch):
    from pathlib import Path

    token, wandb = "hf_SeCrEt_9f8e7d6c5b4a", "wandb-SeCrEt-0a1b2c3d4e5f"
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setenv("WANDB_API_KEY", wandb)
    s = stage(JOB_RECIPE, slurm_profile(), "slurm", "check_env=HF_TOKEN")
    lines: list[str] = []
    job = submit(s.executor, s.plan, job_dir=s.job_dir, content_key="secret-key", flow_run_id="fr-secret")
    status = job.wait(on_log=lines.append, timeout=120)
    assert status.ok and "secret HF_TOKEN present=True" in lines
    secrets_file = s.job_dir / "secrets.env"
    assert oct(secrets_file.stat().st_mode & 0o777) == "0o600"
    # Everything written: job dir, refs and indexes (state), nemo-run's home, Slurm's spool/logs/jobcomp.
    nemo_run_home = Path(os.environ.get("NEMORUN_HOME", state / "nemo_run"))
    roots = [state, slurm.state, s.job_dir] + ([nemo_run_home] if nemo_run_home.exists() else [])
    for value in (token, wandb):
        assert files_containing(value, *roots) == [secrets_file]


@pytest.mark.slow
def test_time_limit_is_timeout_not_failed(slurm, stage):
    s = stage(JOB_RECIPE, slurm_profile(time="00:01:00"), "slurm", "sleep=300")
    status = submit(s.executor, s.plan, job_dir=s.job_dir).wait(timeout=200)
    assert status.state is JobState.TIMEOUT, status


def test_torchrun_recipe_runs_its_workers_under_srun(slurm, stage):
    s = stage(RANKS_RECIPE, slurm_profile(ntasks_per_node=2), "slurm")
    lines: list[str] = []
    status = submit(s.executor, s.plan, job_dir=s.job_dir).wait(on_log=lines.append, timeout=180)
    assert status.ok, "\n".join(lines)
    assert sum("rank 0 of 2" in line for line in lines) == 1 and sum("rank 1 of 2" in line for line in lines) == 1


def test_jobs_are_tagged_for_the_sweeper(slurm, stage):
    from nemotron_core.execution.sweeper import cancel_flow_run, orphans, tagged_slurm_jobs

    s1 = stage(JOB_RECIPE, slurm_profile(), "slurm", "sleep=120")
    j1 = submit(s1.executor, s1.plan, job_dir=s1.job_dir, flow_run_id="dead-flow")
    s2 = stage(JOB_RECIPE, slurm_profile(), "slurm", "sleep=120")
    j2 = submit(s2.executor, s2.plan, job_dir=s2.job_dir, flow_run_id="live-flow")
    tagged = {j["id"]: j for j in tagged_slurm_jobs()}
    assert tagged[j1.id]["flow_run"] == "dead-flow" and tagged[j1.id]["name"] == "nemotron-test-job"
    assert tagged[j1.id]["job"] == s1.job_dir.name
    lost = orphans(lambda flow_run: flow_run != "dead-flow")
    assert [o["id"] for o in lost if o["flow_run"] == "dead-flow"] == [j1.id]
    assert all(o["flow_run"] != "live-flow" for o in lost)
    result = cancel_flow_run("dead-flow")
    assert result[str(s1.job_dir)].state is JobState.CANCELLED
    assert j2.status(max_age=0).state in (JobState.PENDING, JobState.RUNNING)
    j2.cancel()


def test_a_squash_profile_runs_from_the_squash_file_and_says_when_it_is_missing(slurm, stage, state):
    from nemotron_core.errors import NemotronError

    s = stage(JOB_RECIPE, slurm_profile(container_image="nvcr.io/x:1", squash=True), "slurm")
    assert s.executor.container_image == f"{state}/images/nvcr.io+x+1.sqsh"
    with pytest.raises(NemotronError, match=r"does not exist on the cluster: create it with `nemotron kit squash"):
        submit(s.executor, s.plan, job_dir=s.job_dir)
    assert not (s.job_dir / "jobref.json").exists()  # checked before anything was submitted


# The SSH-tunnel path (a real sshd as the login node) is tested in tests/execution/test_ssh_tunnel.py.


def test_many_jobs_are_tracked_with_one_squeue_per_poll(slurm, tmp_path):
    """50 array tasks (task 7 exits 3) tracked from one thread: one squeue per poll answers for all."""
    from nemotron_core.execution.backends.slurm import array_task_ids
    from nemotron_core.execution.tracking import track_slurm_jobs

    out = slurm.run("sbatch", "--parsable", "--array=0-49", f"--output={tmp_path}/%a.out", "--job-name=track-many",
                    "--wrap", 'if [ "$SLURM_ARRAY_TASK_ID" = 7 ]; then exit 3; fi; echo done')
    assert out.returncode == 0, out.stderr
    ids = array_task_ids(out.stdout.strip().split(";")[0], "0-49")
    poller = poller_for({"tunnel": "local", "slurm_conf": str(slurm.conf)})
    before, polls = poller.queries, []
    final = track_slurm_jobs(ids, cluster={"tunnel": "local", "slurm_conf": str(slurm.conf)}, poll=0.5,
                             timeout=300, on_poll=polls.append)
    assert sorted(final) == sorted(ids)
    assert (final[ids[7]].state, final[ids[7]].exit_code) == (JobState.FAILED, 3)
    assert all(final[i].state is JobState.COMPLETED for i in ids if i != ids[7]), final
    assert poller.queries - before == len(polls)  # one squeue per poll, however many jobs are open
    assert len(polls) >= 2 and len(polls[0]) > 1  # several jobs were open at the first poll
    assert sorted(p.name for p in tmp_path.glob("*.out")) == sorted(f"{k}.out" for k in range(50))
