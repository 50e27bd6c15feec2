"""The nano3-full flow on the local Slurm profile: every stage an sbatch job on the real local Slurm.

1. data prep + pretrain + SFT (short trainer runs) end to end, artifacts registered;
2. the flow process SIGKILLed mid-stage, the flow run again: it re-attaches to the running job;
3. two identical flow runs started at once: each stage is submitted once.
Submissions are counted twice: the JobRefs the flows wrote, and the jobs Slurm itself knows
(every job we submit carries `--comment nemotron:...;key=<content key>;...`).
"""

from __future__ import annotations

import json
import re
import threading

import pytest

from nemotron_core.execution import Job, JobState
from tests.flows.helpers import (REPO, flow_result, flow_state, job_dirs, kill_flow, registry, run_flow, start_flow,
                                 wait_for)

pytestmark = [pytest.mark.slurm,
              pytest.mark.skipif(not (REPO / "recipes/nano3/stage1_sft/train.py").is_file(),
                                 reason="needs the data prep and trainer recipes")]

STAGES = ["data_pretrain", "data_sft", "pretrain", "sft"]
FAST = {
    "pretrain": ["train.max_steps=30", "eval.interval=15", "checkpoint.interval=15", "log.interval=10",
                 "runtime.threads=1"],
    "sft": ["train.max_steps=10", "eval.interval=5", "checkpoint.interval=5", "log.interval=5", "runtime.threads=1"],
}
# A pretraining long enough to kill the flow while it runs.
LONG = ["train.max_steps=100", "eval.interval=0", "checkpoint.interval=50", "log.interval=10", "runtime.threads=1"]


@pytest.fixture(scope="module")
def slurm_flows(prefect_server, slurm_cluster):
    conf = slurm_cluster.conf
    with flow_state(prefect_server, "sf", SLURM_CONF=str(conf)) as (state, env):
        state.mkdir(parents=True, exist_ok=True)
        env_file = state / "env.toml"
        env_file.write_text('[slurm]\nexecutor = "slurm"\ncontainer_image = ""\npartition = "debug"\n'
                            f'time = "00:20:00"\nntasks_per_node = 1\ngpus_per_node = 0\nslurm_conf = "{conf}"\n')
        env["NEMOTRON_ENV_FILE"] = str(env_file)
        yield state, env, slurm_cluster


class SlurmWatch:
    """Every job Slurm lists while the test runs, with its comment (squeue --json every 2 s).

    Slurm keeps an ended job in squeue for MinJobAge (10 s here), so no job escapes the watch.
    """

    def __init__(self, cluster):
        self.cluster, self.seen, self._stop = cluster, {}, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _poll(self) -> None:
        out = self.cluster.run("squeue", "--json", "--states=all")
        if out.returncode == 0:
            self.seen.update({str(j["job_id"]): j.get("comment") or "" for j in json.loads(out.stdout)["jobs"]})

    def _run(self) -> None:
        while not self._stop.wait(2.0):
            self._poll()

    def __enter__(self) -> "SlurmWatch":
        self._poll()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)
        self._poll()

    def jobs_for(self, key: str) -> set[str]:
        """Ids of the Slurm jobs tagged with content key `key`."""
        return {job_id for job_id, comment in self.seen.items() if f";key={key};" in comment}


def refs_for(state, key: str) -> list[Job]:
    return [Job.from_dir(d) for d in sorted(job_dirs(state)) if Job.from_dir(d).ref.content_key == key]


def test_tiny_pipeline_runs_on_slurm_and_registers_its_artifacts(slurm_flows):
    state, env, cluster = slurm_flows
    with SlurmWatch(cluster) as watch:
        result = run_flow(env, profile="slurm", stages=STAGES, overrides=FAST)
    reg = registry(state)
    assert {s: result[s] for s in STAGES} == {
        "data_pretrain": "nano3-pretrain-data:v1", "data_sft": "nano3-sft-data:v1",
        "pretrain": "nano3-pretrain-model:v1", "sft": "nano3-sft-model:v1"}
    assert set(reg.resolve(result["sft"]).lineage) == {result["data_sft"], result["pretrain"]}
    assert reg.resolve(result["sft"]).metadata["result"]["metrics"]["steps"] == 10
    jobs = [Job.from_dir(d) for d in job_dirs(state)]
    assert sorted(j.ref.name for j in jobs) == ["nano3/data/prep/pretrain", "nano3/data/prep/sft", "nano3/pretrain",
                                                "nano3/sft"]
    for job in jobs:  # one sbatch per stage, each COMPLETED
        assert job.ref.backend == "slurm" and watch.jobs_for(job.ref.content_key) == {job.id}
        assert job.status(max_age=0).state is JobState.COMPLETED


def test_killed_flow_process_rerun_reattaches_to_the_running_job(slurm_flows):
    state, env, cluster = slurm_flows
    params = dict(profile="slurm", stages=["pretrain"], overrides={"pretrain": [*LONG, "seed=21"]})
    before = job_dirs(state)
    logs = [state / "flow-logs" / "killed.log", state / "flow-logs" / "rerun.log"]
    with SlurmWatch(cluster) as watch:
        flow = start_flow(env, logs[0], **params)
        try:
            job_dir = wait_for(lambda: next(iter(job_dirs(state) - before), None), 180, "the pretrain job dir")
            job = wait_for(lambda: (job_dir / "jobref.json").is_file() and Job.from_dir(job_dir).id and
                           Job.from_dir(job_dir), 120, "the Slurm job id")
            wait_for(lambda: job.status(max_age=0).state is JobState.RUNNING, 180, "the job running")
            kill_flow(flow)
        finally:
            if flow.poll() is None:
                flow.kill()
        assert job.status(max_age=0).state is JobState.RUNNING  # the job outlives its orchestrator
        result = flow_result(start_flow(env, logs[1], **params), logs[1])
    key = job.ref.content_key
    assert [j.id for j in refs_for(state, key)] == [job.id]  # no second submission
    assert watch.jobs_for(key) == {job.id}
    rerun_log = logs[1].read_text()
    assert f"re-attached to slurm job {job.id}" in rerun_log
    # The rerun adopted the job: cancelling (or sweeping) the rerun's flow run now reaches it.
    rerun_id = re.search(r"/flow-run/([0-9a-f-]{36})", rerun_log).group(1)
    assert Job.from_dir(job.job_dir).ref.flow_run_id == rerun_id
    assert f"flow_run={rerun_id};" in watch.seen[job.id]
    version = registry(state).resolve(result["pretrain"])
    assert version.metadata["content_key"] == key and version.metadata["result"]["metrics"]["steps"] == 100


def test_two_identical_runs_at_once_submit_each_stage_once(slurm_flows):
    state, env, cluster = slurm_flows
    params = dict(profile="slurm", stages=["pretrain", "sft"],
                  overrides={"pretrain": [*FAST["pretrain"], "seed=31"], "sft": [*FAST["sft"], "seed=31"]})
    logs = [state / "flow-logs" / f"twin-{i}.log" for i in (1, 2)]
    with SlurmWatch(cluster) as watch:
        procs = [start_flow(env, log, **params) for log in logs]
        results = [flow_result(p, log) for p, log in zip(procs, logs)]
    assert results[0]["pretrain"] == results[1]["pretrain"] and results[0]["sft"] == results[1]["sft"]
    reg = registry(state)
    for stage in ("pretrain", "sft"):
        version = reg.resolve(results[0][stage])
        key = version.metadata["content_key"]
        assert len(refs_for(state, key)) == 1 and len(watch.jobs_for(key)) == 1, stage  # one submission
        assert [v.ref for v in reg.list(version.name) if v.metadata.get("content_key") == key] == [version.ref]
