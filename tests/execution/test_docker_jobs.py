"""Docker jobs through the same handles as the other backends (backends/docker.py), on the private
daemon of tests/fixtures/docker.py: real states and exit codes, logs, secrets only through the 0600
file, cancel, re-attach by content key from another process, the label-scoped orphan sweep.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nemotron_core.errors import NemotronError, ProfileError
from nemotron_core.execution import Job, JobState, find_job, submit
from nemotron_core.execution import sweeper
from tests.execution.conftest import JOB_RECIPE, REPO, files_containing
from tests.fixtures.docker import DockerDaemon
from tests.fixtures.waiting import wait_for

SECRET = "hf_DoCkErSeCrEt_77cc88dd"


def docker_profile(daemon: DockerDaemon, **extra: object) -> str:
    keys = {"executor": "docker", "container_image": daemon.image, "python": str(REPO / ".venv" / "bin" / "python"),
            "mounts": [m for m in daemon.mounts], "docker_host": daemon.host, "shm_size": "256m", **extra}

    def toml(v: object) -> str:
        if isinstance(v, list):
            return "[" + ", ".join(toml(x) for x in v) + "]"
        return json.dumps(v)

    return "[docker]\n" + "".join(f"{k} = {toml(v)}\n" for k, v in keys.items())


@pytest.fixture
def docker_env(docker_daemon: DockerDaemon, monkeypatch) -> DockerDaemon:
    monkeypatch.setenv("DOCKER_HOST", docker_daemon.host)  # the sweeper looks at this process's daemon
    return docker_daemon


def in_another_process(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=180)


def test_job_runs_in_a_container_with_exit_code_logs_and_secrets_from_the_file(stage, docker_env, state,
                                                                                monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    s = stage(JOB_RECIPE, docker_profile(docker_env), "docker", "exit_code=4", "sleep=1", "check_env=HF_TOKEN",
              f"output_dir={state}/out")
    assert type(s.executor).__name__ == "DockerExecutor"
    job = submit(s.executor, s.plan, job_dir=s.job_dir)
    assert job.id == f"nemotron-{s.job_dir.name}"
    inspect = docker_env.docker("inspect", job.id)
    assert inspect.returncode == 0, inspect.stderr
    config = json.loads(inspect.stdout)[0]
    assert config["HostConfig"]["NetworkMode"] == "none" and config["HostConfig"]["ShmSize"] == 256 * 2**20
    assert SECRET not in inspect.stdout  # not in the container's config, env or command line
    lines: list[str] = []
    status = job.wait(on_log=lines.append, timeout=180)
    assert (status.state, status.exit_code) == (JobState.FAILED, 4), (status, lines)
    assert "secret HF_TOKEN present=True" in lines and "task 0 slept 1 s" in lines
    assert any("greeting=hello" in line for line in lines)
    assert files_containing(SECRET, state) == [s.job_dir / "secrets.env"]
    assert (s.job_dir / "secrets.env").stat().st_mode & 0o777 == 0o600
    assert (state / "out" / "task-0-restart-0.txt").read_text() == str(s.job_dir)  # the job dir, at its own path
    # Another process reads the same final state; the ended container is gone, the record stays.
    out = in_another_process("import sys; from nemotron_core.execution import Job; "
                             "st = Job.from_dir(sys.argv[1]).status(); print(st.state.value, st.exit_code)",
                             str(s.job_dir))
    assert out.stdout.split() == ["FAILED", "4"], out.stderr
    assert docker_env.docker("inspect", job.id).returncode != 0


def test_cancel_from_another_process_by_content_key(stage, docker_env):
    s = stage(JOB_RECIPE, docker_profile(docker_env), "docker", "sleep=120")
    job = submit(s.executor, s.plan, job_dir=s.job_dir, content_key="docker-cancel")
    wait_for(lambda: "task 0 slept 1 s" in job.logs(), 120, step=0.2)
    code = ("import sys; from nemotron_core.execution import find_job; j = find_job(sys.argv[1]); "
            "print(j.id, j.status().state.value); st = j.cancel(timeout=60); print(st.state.value)")
    out = in_another_process(code, "docker-cancel")
    assert out.stdout.split() == [job.id, "RUNNING", "CANCELLED"], out.stderr
    assert job.status(max_age=0).state is JobState.CANCELLED
    assert docker_env.docker("ps", "-aq", "--filter", f"name={job.id}").stdout == ""
    assert find_job("docker-cancel") is None


def test_a_new_process_reattaches_after_the_submitter_died(stage, docker_env):
    s = stage(JOB_RECIPE, docker_profile(docker_env), "docker", "sleep=3")
    submitter = (
        "import os, sys, pickle\n"
        "from nemotron_core.execution import submit\n"
        "from nemotron_core.execution.executors import nemo_run\n"
        "nemo_run()  # nemo-run through the leptonai import alias, before unpickling its executor\n"
        "ex, plan = pickle.load(open(sys.argv[1], 'rb'))\n"
        "job = submit(ex, plan, job_dir=sys.argv[2], content_key='docker-reattach', flow_run_id='fr-gone')\n"
        "print(job.id, flush=True)\n"
        "os._exit(9)  # the flow process dies without cleaning up\n")
    import pickle

    blob = s.job_dir.parent / "submit.pickle"
    blob.write_bytes(pickle.dumps((s.executor, s.plan)))
    died = in_another_process(submitter, str(blob), str(s.job_dir))
    assert died.returncode == 9, died.stderr
    name = died.stdout.strip()
    again = submit(s.executor, s.plan, job_dir=s.job_dir.with_name("second"), content_key="docker-reattach")
    assert again.reattached and again.id == name and not s.job_dir.with_name("second").exists()
    assert again.wait(timeout=180).state is JobState.COMPLETED


def test_orphan_sweep_finds_a_container_whose_ref_is_lost_and_only_ours(stage, docker_env):
    s = stage(JOB_RECIPE, docker_profile(docker_env), "docker", "sleep=120")
    job = submit(s.executor, s.plan, job_dir=s.job_dir, flow_run_id="fr-dead")
    wait_for(lambda: "task 0 slept 1 s" in job.logs(), 120, step=0.2)
    # A container of another Prefect server with the same flow run id: never ours to stop.
    foreign = docker_env.docker("run", "-d", "--network", "none", "--label", "nemotron.server=0123456789ab",
                                "--label", f"nemotron.user={os.environ.get('USER', 'root')}",
                                "--label", "nemotron.flow_run=fr-dead", "--label", "nemotron.job=x",
                                docker_env.image, "sleep", "300")
    assert foreign.returncode == 0, foreign.stderr
    try:
        (s.job_dir / "jobref.json").unlink()  # the ref is lost: only the labels remain
        found = sweeper.orphans(lambda flow_run: flow_run != "fr-dead")
        assert [(o["id"], o["backend"], o["flow_run"]) for o in found] == [(job.id, "docker", "fr-dead")]
        assert sweeper.sweep(lambda flow_run: flow_run != "fr-dead") == ["fr-dead"]
        running = docker_env.docker("ps", "-q", "--filter", f"name={job.id}")
        assert running.stdout == ""
        assert docker_env.docker("inspect", "-f", "{{.State.Status}}", foreign.stdout.strip()).stdout.strip() \
            == "running"
    finally:
        docker_env.docker("rm", "-f", foreign.stdout.strip(), job.id)


@pytest.mark.parametrize(("extra", "message"), [
    ({"container_image": ""}, "executor = 'docker' needs container_image"),
    ({"nodes": 2}, "runs one container on one host, but 2 nodes"),
    ({"mounts": ["relative:/x"]}, "must be \"/host/path:/container/path\""),
])
def test_a_misconfigured_profile_fails_before_anything_runs(stage, docker_env, extra, message):
    with pytest.raises(ProfileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        stage(JOB_RECIPE, docker_profile(docker_env, **extra), "docker")
    assert docker_env.docker("ps", "-aq", "--filter", "label=nemotron.job").stdout == ""


def test_a_container_that_cannot_start_is_removed_and_not_reattached(stage, docker_env):
    """`docker run --gpus` without a GPU driver creates the container, then fails to start it."""
    if "nvidia" in docker_env.docker("info", "--format", "{{json .Runtimes}}").stdout:
        pytest.skip("this daemon has a GPU runtime: the container would start")
    s = stage(JOB_RECIPE, docker_profile(docker_env, gpus_per_node=1), "docker")
    with pytest.raises(NemotronError, match="docker run failed: .*gpu"):
        submit(s.executor, s.plan, job_dir=s.job_dir, content_key="docker-no-gpu")
    assert docker_env.docker("ps", "-aq", "--filter", "label=nemotron.job").stdout == ""
    assert find_job("docker-no-gpu") is None  # nothing for a rerun to re-attach to
