"""The real local services (scripts/{slurm,ray,s3,prefect-server}) do real work.

Fixtures: tests/fixtures/services.py. Each service is started once per session (or reused when it
is already running) and skipped when it cannot start here (failed under CI=true).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.services import SlurmCluster, _outside_paths

TERMINAL_SLURM = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "PREEMPTED", "NODE_FAIL", "OUT_OF_MEMORY",
                  "BOOT_FAIL", "DEADLINE"}


@pytest.fixture
def work_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A private folder under the test state folder (never /tmp): jobs write their output here."""
    base = Path(os.environ["NEMOTRON_STATE_DIR"]) / "tmp" / "test_services"
    path = base / f"{request.node.name}-{uuid.uuid4().hex[:6]}"
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- Slurm


def _sbatch(cluster: SlurmCluster, script: str, cwd: Path) -> str:
    path = cwd / f"job-{uuid.uuid4().hex[:6]}.sh"
    path.write_text(script)
    proc = cluster.run("sbatch", "--parsable", str(path), cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().split(";")[0]


def _job_fields(cluster: SlurmCluster, job_id: str) -> dict[str, str]:
    proc = cluster.run("scontrol", "show", "job", "-o", job_id)
    if proc.returncode != 0:
        return {}
    return dict(re.findall(r"(\w+)=(\S*)", proc.stdout))


def _wait_jobs(cluster: SlurmCluster, job_ids: list[str], timeout: float = 90) -> dict[str, dict[str, str]]:
    """Poll scontrol until every job is in a final state (faster than `sbatch --wait`'s growing poll)."""
    done: dict[str, dict[str, str]] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(job_ids):
        for jid in job_ids:
            if jid not in done:
                fields = _job_fields(cluster, jid)
                if fields.get("JobState") in TERMINAL_SLURM:
                    done[jid] = fields
        if time.monotonic() > deadline:
            pytest.fail(f"Slurm jobs not finished after {timeout}s: {set(job_ids) - set(done)}")
        time.sleep(0.25)
    return done


def _jobcomp_line(cluster: SlurmCluster, job_id: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        if cluster.jobcomp.exists():
            for line in cluster.jobcomp.read_text().splitlines():
                if line.startswith(f"JobId={job_id} "):
                    return line
        if time.monotonic() > deadline:
            pytest.fail(f"JobId={job_id} not in {cluster.jobcomp}")
        time.sleep(0.2)


@pytest.mark.slurm
def test_slurm_two_task_job_and_failing_job(slurm_cluster: SlurmCluster, work_dir: Path):
    assert slurm_cluster.conf.is_file()
    assert slurm_cluster.env["SLURM_CONF"] == str(slurm_cluster.conf)
    ok = _sbatch(slurm_cluster, "#!/bin/bash\n#SBATCH -n 2\n#SBATCH -o ok-%j.out\nsrun -n2 hostname\n", work_dir)
    bad = _sbatch(slurm_cluster, "#!/bin/bash\n#SBATCH -o bad-%j.out\necho about to fail\nexit 3\n", work_dir)
    jobs = _wait_jobs(slurm_cluster, [ok, bad])

    assert jobs[ok]["JobState"] == "COMPLETED", jobs[ok]
    assert jobs[ok]["ExitCode"] == "0:0"
    # Two tasks, one line each; fake nodes (--nodes N) still run on this host, so all say `hostname -s`.
    lines = (work_dir / f"ok-{ok}.out").read_text().split()
    assert lines == [socket.gethostname().split(".")[0]] * 2, lines

    assert jobs[bad]["JobState"] == "FAILED", jobs[bad]
    assert jobs[bad]["ExitCode"] == "3:0"
    assert jobs[bad]["Reason"] == "NonZeroExitCode"
    assert "about to fail" in (work_dir / f"bad-{bad}.out").read_text()

    line = _jobcomp_line(slurm_cluster, bad)
    assert "JobState=FAILED" in line and "ExitCode=3:0" in line, line
    assert "JobState=COMPLETED" in _jobcomp_line(slurm_cluster, ok)


@pytest.mark.slurm
def test_slurm_fake_gpus(slurm_cluster: SlurmCluster, work_dir: Path):
    jid = _sbatch(slurm_cluster, "#!/bin/bash\n#SBATCH --gres=gpu:2\n#SBATCH -o gpu-%j.out\n"
                  "echo CVD=$CUDA_VISIBLE_DEVICES\n", work_dir)
    job = _wait_jobs(slurm_cluster, [jid])[jid]
    assert job["JobState"] == "COMPLETED", job
    assert "CVD=0,1" in (work_dir / f"gpu-{jid}.out").read_text()


# ---------------------------------------------------------------------------------------------- Ray


def _wait_ray_job(client, job_id: str, timeout: float = 120):
    from ray.job_submission import JobStatus

    deadline = time.monotonic() + timeout
    while (status := client.get_job_status(job_id)) not in {JobStatus.SUCCEEDED, JobStatus.FAILED,
                                                            JobStatus.STOPPED}:
        if time.monotonic() > deadline:
            pytest.fail(f"Ray job {job_id} still {status} after {timeout}s")
        time.sleep(0.5)
    return status


@pytest.mark.ray
def test_ray_jobs_succeed_and_fail(ray_head: str):
    from ray.job_submission import JobStatus, JobSubmissionClient

    assert ray_head.startswith("http://127.0.0.1:")
    client = JobSubmissionClient(ray_head)
    ok = client.submit_job(entrypoint=(
        "python -c \"import ray; ray.init(); print('answer', ray.get(ray.remote(lambda: 41 + 1).remote()))\""))
    bad = client.submit_job(entrypoint="python -c \"import sys; print('going down'); sys.exit(3)\"")

    assert _wait_ray_job(client, ok) == JobStatus.SUCCEEDED, client.get_job_logs(ok)
    assert "answer 42" in client.get_job_logs(ok)

    assert _wait_ray_job(client, bad) == JobStatus.FAILED
    info = client.get_job_info(bad)
    assert "exit code 3" in (info.message or ""), info.message
    assert "going down" in client.get_job_logs(bad)


# ---------------------------------------------------------------------------------------------- S3


def test_s3_write_read_list(s3_server):
    import s3fs

    assert s3_server.endpoint_url.startswith("http://127.0.0.1:")
    assert "region_name" not in s3_server.storage_options.get("client_kwargs", {})
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_server.storage_options)
    bucket = f"svc-test-{uuid.uuid4().hex[:8]}"
    fs.mkdir(bucket)
    try:
        fs.pipe(f"{bucket}/a/one.txt", b"hello")
        with fs.open(f"{bucket}/a/two.bin", "wb") as fh:
            fh.write(bytes(range(256)) * 100)
        assert fs.cat(f"{bucket}/a/one.txt") == b"hello"
        assert fs.cat(f"{bucket}/a/two.bin") == bytes(range(256)) * 100
        assert sorted(fs.ls(f"{bucket}/a", detail=False)) == [f"{bucket}/a/one.txt", f"{bucket}/a/two.bin"]
        assert bucket in [p.rstrip("/") for p in fs.ls("", detail=False)]
    finally:
        fs.rm(bucket, recursive=True)


# ---------------------------------------------------------------------------------------------- Prefect

FLOW = """
from prefect import flow, task

@task
def double(x):
    return 2 * x

@flow(name="services-smoke")
def smoke(x: int = 21):
    return double(x)

if __name__ == "__main__":
    state = smoke(return_state=True)
    print("RESULT", state.result())
    print("FLOW_RUN_ID", state.state_details.flow_run_id)
"""


def test_prefect_health_and_flow_run(prefect_server: str, work_dir: Path):
    assert prefect_server.startswith("http://127.0.0.1:") and prefect_server.endswith("/api")
    with urllib.request.urlopen(f"{prefect_server}/health", timeout=10) as resp:
        assert resp.status == 200 and json.load(resp) is True

    script = work_dir / "flow.py"
    script.write_text(FLOW)
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "DO_NOT_TRACK": "1"}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                          timeout=180, cwd=work_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RESULT 42" in proc.stdout
    run_id = re.search(r"FLOW_RUN_ID (\S+)", proc.stdout).group(1)

    # The run is recorded by the server (not by an ephemeral one): read it back over HTTP.
    with urllib.request.urlopen(f"{prefect_server}/flow_runs/{run_id}", timeout=10) as resp:
        run = json.load(resp)
    assert run["state"]["type"] == "COMPLETED", run["state"]


# ---------------------------------------------------------------------------------------------- hygiene


@pytest.mark.ray
def test_nothing_written_to_home_ray_or_tmp_ray(outside_state_snapshot: set[str], ray_head: str):
    # Runs after the Ray job test above (file order): the head, the job drivers and the workers all
    # ran by now. Everything must have landed under the state folder.
    new = _outside_paths() - outside_state_snapshot
    assert not new, f"written outside the state folder: {sorted(new)[:10]}"
