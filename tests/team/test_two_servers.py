"""Two Prefect servers ("two users") on one Slurm cluster: each one's cancel, re-attach and sweep stay its own.

User A reports to the SQLite server, user B to the PostgreSQL team server; each has its own state
folder and registry, and both run the same pretrain stage as a long Slurm job at the same time. Every job's comment carries the server that tracks its flow run
(nemotron_core/execution/owner.py), and the sweeper only looks at its own server's jobs: to B's
server A's flow runs are unknown, and "unknown" must never read as "dead".
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nemotron_core.execution import Job, JobState
from tests.flows.helpers import REPO, flow_state, job_dirs, kill_flow, run_flow, start_flow, wait_for
from tests.team.helpers import team_env

pytestmark = [pytest.mark.slurm,
              pytest.mark.skipif(not (REPO / "recipes/nano3/stage0_pretrain/train.py").is_file(),
                                 reason="needs the data prep and pretrain recipes")]

# A pretraining that runs until it is cancelled (the test ends it).
FOREVER = {"pretrain": ["train.max_steps=1000000", "eval.interval=0", "checkpoint.interval=1000000",
                        "log.interval=50", "runtime.threads=1", "seed=61"]}
PARAMS = dict(profile="slurm", stages=["pretrain"], overrides=FOREVER)


def _slurm_profile(state: Path, cluster) -> str:
    state.mkdir(parents=True, exist_ok=True)
    env_file = state / "env.toml"
    env_file.write_text('[slurm]\nexecutor = "slurm"\ncontainer_image = ""\npartition = "debug"\n'
                        f'time = "00:20:00"\nntasks_per_node = 1\ngpus_per_node = 0\nslurm_conf = "{cluster.conf}"\n')
    return str(env_file)


def _comment(cluster, job: Job) -> str:
    out = cluster.run("squeue", "-h", "-j", str(job.id), "-o", "%k")
    return out.stdout.strip()


def _new_running_job(state: Path, before: set[Path]) -> Job:
    job_dir = wait_for(lambda: next(iter(job_dirs(state) - before), None), 240, "the pretrain job dir")
    job = wait_for(lambda: (job_dir / "jobref.json").is_file() and Job.from_dir(job_dir).id and Job.from_dir(job_dir),
                   120, "the Slurm job id")
    wait_for(lambda: job.status(max_age=0).state is JobState.RUNNING, 300, "the Slurm job running")
    return job


def _flow_run_id(log: Path) -> str:
    return wait_for(lambda: (m := re.search(r"/flow-run/([0-9a-f-]{36})", log.read_text(errors="replace")))
                    and m.group(1), 120, f"the flow run id in {log.name}")


def _sweeper(env: dict[str, str], code: str) -> object:
    """Run sweeper code as that user (its server, its state folder); returns what it printed as JSON."""
    prelude = ("import json\nfrom flows.cancellation import flow_run_alive\n"
               "from nemotron_core.execution.sweeper import cancel_flow_run, sweep\n")
    proc = subprocess.run([sys.executable, "-c", prelude + code], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_two_servers_never_touch_each_others_jobs(prefect_server, prefect_server_postgres, slurm_cluster):
    cluster = slurm_cluster
    with flow_state(prefect_server, "ua", SLURM_CONF=str(cluster.conf)) as (state_a, env_a), \
            flow_state(prefect_server_postgres.api_url, "ub") as (state_b, base_b):
        env_a["NEMOTRON_ENV_FILE"] = _slurm_profile(state_a, cluster)
        env_b = {**base_b, **team_env(prefect_server_postgres.env, state_b / "prefect"),
                 "NEMOTRON_STATE_DIR": str(state_b), "NEMOTRON_ENV_FILE": _slurm_profile(state_b, cluster),
                 "SLURM_CONF": str(cluster.conf)}
        # The same pretrain data in both registries: A builds it, B imports A's copy.
        data = run_flow(env_a, stages=["data_pretrain"])["data_pretrain"]
        nemotron = str(Path(sys.executable).with_name("nemotron"))
        from nemotron_core.artifacts import open_registry

        source = open_registry({"root": str(state_a / "artifacts")}).resolve(data).path
        imported = subprocess.run([nemotron, "nano3", "data", "import", "pretrain", source], env=env_b, cwd=REPO,
                                  capture_output=True, text=True, timeout=300)
        assert imported.returncode == 0, imported.stdout + imported.stderr

        logs = {name: (state_a if name == "a" else state_b) / "flow-logs" / f"{name}.log" for name in ("a", "b", "b2")}
        flows = {}
        try:
            # 1. A's long pretrain runs on the cluster.
            before_a = job_dirs(state_a)  # the data prep's
            flows["a"] = start_flow(env_a, logs["a"], **PARAMS)
            job_a = _new_running_job(state_a, before_a)
            run_a = _flow_run_id(logs["a"])
            comment_a = _comment(cluster, job_a)
            assert f"flow_run={run_a};" in comment_a

            # 2. B starts the same stage: its flow start sweeps runs B's server calls dead (A's is unknown there).
            flows["b"] = start_flow(env_b, logs["b"], **PARAMS)
            job_b = _new_running_job(state_b, set())
            assert job_b.id != job_a.id
            assert job_a.status(max_age=0).state is JobState.RUNNING and _comment(cluster, job_a) == comment_a

            # 3. B's flow process dies; B's rerun re-attaches to B's job, never to A's.
            kill_flow(flows["b"])
            flows["b2"] = start_flow(env_b, logs["b2"], **PARAMS)
            wait_for(lambda: f"re-attached to slurm job {job_b.id}" in logs["b2"].read_text(errors="replace"), 300,
                     "B's rerun re-attached")
            run_b2 = _flow_run_id(logs["b2"])
            wait_for(lambda: f"flow_run={run_b2};" in _comment(cluster, job_b), 60, "B's job adopted by the rerun")
            assert job_a.status(max_age=0).state is JobState.RUNNING and _comment(cluster, job_a) == comment_a

            # 4. Each user's real sweep (the one every flow start runs): the other's flow runs are unknown to its
            #    server, its own are alive: nothing is cancelled.
            assert _sweeper(env_a, "print(json.dumps(sweep(flow_run_alive)))") == []
            assert _sweeper(env_b, "print(json.dumps(sweep(flow_run_alive)))") == []
            # B cancelling A's flow run by id finds nothing of it: A's job is not B's.
            assert _sweeper(env_b, f"print(json.dumps(list(cancel_flow_run({run_a!r}))))") == []
            # B sweeping with every flow run called dead cancels B's job only.
            assert _sweeper(env_b, "print(json.dumps(sweep(lambda run: False)))") == [run_b2]
            wait_for(lambda: job_b.status(max_age=0).state is JobState.CANCELLED, 120, "B's job cancelled")
            assert job_a.status(max_age=0).state is JobState.RUNNING and _comment(cluster, job_a) == comment_a
            flows["b2"].wait(timeout=300)

            # 5. A cancelling its own flow run (SIGTERM, how a worker stops it) still ends A's job.
            flows["a"].terminate()
            flows["a"].wait(timeout=300)
            wait_for(lambda: job_a.status(max_age=0).state is JobState.CANCELLED, 120, "A's job cancelled")
        finally:
            for proc in flows.values():
                if proc.poll() is None:
                    proc.kill()
            for state in (state_a, state_b):  # nothing of this test left running on the shared cluster
                for job_dir in job_dirs(state):
                    job = Job.from_dir(job_dir)
                    if job.id and not job.status(max_age=0).done:
                        job.cancel(timeout=30)
