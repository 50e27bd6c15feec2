"""The nano3-full flow through an SSH-tunnel Slurm profile (slow): every stage shipped and submitted
over SSH to the test login node (scripts/sshd), which alone knows the local Slurm cluster."""

from __future__ import annotations

import pytest

from nemotron_core.execution import Job, JobState
from tests.execution.conftest import slurm_profile
from tests.flows.helpers import REPO, flow_state, job_dirs, registry, run_flow

pytestmark = [pytest.mark.slow, pytest.mark.slurm,
              pytest.mark.skipif(not (REPO / "recipes/nano3/stage1_sft/train.py").is_file(),
                                 reason="needs the data prep and trainer recipes")]

STAGES = ["data_pretrain", "data_sft", "pretrain", "sft"]
FAST = {
    "pretrain": ["train.max_steps=30", "eval.interval=15", "checkpoint.interval=15", "log.interval=10",
                 "runtime.threads=1"],
    "sft": ["train.max_steps=10", "eval.interval=5", "checkpoint.interval=5", "log.interval=5", "runtime.threads=1"],
}


def test_nano3_full_runs_through_an_ssh_tunnel_profile(prefect_server, ssh_login_node, monkeypatch):
    monkeypatch.delenv("SLURM_CONF", raising=False)
    with flow_state(prefect_server, "ssh") as (state, env):
        env.pop("SLURM_CONF", None)  # only the login node's sessions know the cluster
        state.mkdir(parents=True, exist_ok=True)
        env_file = state / "env.toml"
        env_file.write_text(slurm_profile("ssh", time="00:20:00", gpus_per_node=0,
                                          **ssh_login_node.profile(remote_job_dir=str(state / "cluster-jobs"))))
        env["NEMOTRON_ENV_FILE"] = str(env_file)
        result = run_flow(env, profile="ssh", stages=STAGES, overrides=FAST)
        assert {s: result[s] for s in STAGES} == {
            "data_pretrain": "nano3-pretrain-data:v1", "data_sft": "nano3-sft-data:v1",
            "pretrain": "nano3-pretrain-model:v1", "sft": "nano3-sft-model:v1"}
        assert registry(state).resolve(result["sft"]).metadata["result"]["metrics"]["steps"] == 10
        for job in (Job.from_dir(d) for d in job_dirs(state)):
            assert job.ref.cluster["tunnel"] == "ssh" and job.ref.cluster["port"] == ssh_login_node.port
            assert job.status(max_age=0).state is JobState.COMPLETED
            assert (state / "cluster-jobs" / job.job_dir.parent.name / job.job_dir.name / "sbatch.sh").is_file()
