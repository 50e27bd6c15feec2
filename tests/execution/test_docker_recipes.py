"""The tiny recipes in containers on the private Docker daemon (slow: a minute or more each here).

1. `nemotron nano3 data prep pretrain -c tiny --run docker`: the data prep starts its Ray workers
   inside the container (no network but loopback), then `nemotron nano3 pretrain --run docker`
   trains on that output; each is submitted, followed and registered by run_stage, as the flow does.
2. The nano3-full flow on a docker profile: every stage a container, every output registered.
Cancel, re-attach and the orphan sweep are tests/execution/test_docker_jobs.py (cheap, not slow).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from nemotron_core.execution import Job, JobState
from tests.execution.test_docker_jobs import docker_profile
from tests.fixtures.docker import DockerDaemon
from tests.flows.helpers import REPO, flow_state, job_dirs, registry, run_flow
from tests.reliability.test_cached_rerun import FAST  # the shortest run each recipe accepts

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (REPO / "recipes/nano3/stage3_eval/eval.py").is_file(),
                                 reason="needs the data prep, trainer and eval recipes")]


@pytest.fixture
def short_state(docker_daemon: DockerDaemon) -> Iterator[tuple[Path, dict[str, str]]]:
    """A state folder with a short path (Ray's unix sockets live under it) and an env.toml whose
    `docker` profile runs on the test daemon (a CPU machine: no --gpus). No Prefect: the CLI alone."""
    with flow_state("", "dk", DOCKER_HOST=docker_daemon.host, COLUMNS="200") as (state, env):
        env.pop("PREFECT_API_URL")
        state.mkdir(parents=True, exist_ok=True)
        (state / "env.toml").write_text(docker_profile(docker_daemon, gpus_per_node=0))
        env["NEMOTRON_ENV_FILE"] = str(state / "env.toml")
        yield state, env


def nemotron(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / ".venv" / "bin" / "nemotron"), *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=1200, stdin=subprocess.DEVNULL)


def _docker_jobs(state: Path) -> list[Job]:
    jobs = [Job.from_dir(d) for d in sorted(job_dirs(state))]
    assert jobs and all(job.ref.backend == "docker" for job in jobs), [job.ref.backend for job in jobs]
    assert all(job.status(max_age=0).state is JobState.COMPLETED for job in jobs)
    return jobs


def test_tiny_data_prep_with_ray_and_pretrain_run_in_containers_and_register(short_state):
    state, env = short_state
    prep = nemotron(env, "nano3", "data", "prep", "pretrain", "-c", "tiny", "--run", "docker")
    assert prep.returncode == 0, (prep.stdout + prep.stderr)[-4000:]
    data = registry(state).resolve("nano3-pretrain-data:latest")
    assert data.version == 1 and data.local_path is not None and any(data.local_path.rglob("*.bin"))
    (prep_job,) = _docker_jobs(state)
    log = prep_job.logs()
    assert '"ray_init_s"' in log and '"workers":2' in log, log[-2000:]  # Ray started inside the container

    train = nemotron(env, "nano3", "pretrain", "-c", "tiny", "--run", "docker", *FAST["pretrain"])
    assert train.returncode == 0, (train.stdout + train.stderr)[-4000:]
    model = registry(state).resolve("nano3-pretrain-model:latest")
    assert model.metadata["result"]["metrics"]["steps"] == 20
    assert model.lineage == ("nano3-pretrain-data:v1",)
    assert len(_docker_jobs(state)) == 2
    # A second run of the same stage is a cache hit: nothing submitted.
    again = nemotron(env, "nano3", "pretrain", "-c", "tiny", "--run", "docker", *FAST["pretrain"])
    assert again.returncode == 0 and len(job_dirs(state)) == 2, again.stdout[-2000:]


def test_nano3_full_runs_on_a_docker_profile(prefect_server, docker_daemon):
    with flow_state(prefect_server, "dkf", DOCKER_HOST=docker_daemon.host) as (state, env):
        state.mkdir(parents=True, exist_ok=True)
        (state / "env.toml").write_text(docker_profile(docker_daemon, gpus_per_node=0))  # a CPU machine: no --gpus
        env["NEMOTRON_ENV_FILE"] = str(state / "env.toml")
        result = run_flow(env, profile="docker", overrides=FAST)
        assert {s: result[s] for s in ("data_pretrain", "data_sft", "data_rl", "pretrain", "sft", "rl")} == {
            "data_pretrain": "nano3-pretrain-data:v1", "data_sft": "nano3-sft-data:v1", "data_rl": "nano3-rl-data:v1",
            "pretrain": "nano3-pretrain-model:v1", "sft": "nano3-sft-model:v1", "rl": "nano3-rl-model:v1"}
        assert sorted(result["evals"]) == ["pretrain", "rl", "sft"]
        assert registry(state).resolve(result["sft"]).metadata["result"]["metrics"]["steps"] == 10
        assert len(_docker_jobs(state)) == 9  # 6 stages + 3 evals, each a container that completed
