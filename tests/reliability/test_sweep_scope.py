"""Cancel and sweep only what is ours (issue 18, section 7), on the real local Slurm cluster.

Two orchestrators share one cluster: each reports to its own Prefect server (here two
PREFECT_API_URLs; the sweeper asks `is_alive`, which for a foreign flow run would say
"unknown", i.e. dead). Each job's comment names the server and the user that submitted
it; the sweeper of server A never cancels server B's job, nor a job of another user.
"""

from __future__ import annotations

import pytest

from nemotron_core.execution import JobState, submit
from nemotron_core.execution.backends.slurm import list_tagged

from tests.execution.conftest import JOB_RECIPE, slurm, slurm_profile, stage, state  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slurm

SERVER_A = "http://127.0.0.1:14201/api"
SERVER_B = "http://127.0.0.1:14202/api"


def test_the_sweeper_of_one_server_never_cancels_another_servers_job(slurm, stage, tmp_path, monkeypatch):
    from nemotron_core.execution.owner import server_identity
    from nemotron_core.execution.sweeper import cancel_flow_run, orphans, sweep

    def orchestrator(name: str, url: str) -> None:  # its own Prefect server and state folder
        (tmp_path / name).mkdir(exist_ok=True)
        monkeypatch.setenv("NEMOTRON_STATE_DIR", str(tmp_path / name))
        monkeypatch.setenv("PREFECT_API_URL", url)

    orchestrator("b", SERVER_B)
    id_b = server_identity()
    sb = stage(JOB_RECIPE, slurm_profile(), "slurm", "sleep=120")
    job_b = submit(sb.executor, sb.plan, job_dir=sb.job_dir, flow_run_id="flow-of-b")

    orchestrator("a", SERVER_A)
    id_a = server_identity()
    assert id_a != id_b
    sa = stage(JOB_RECIPE, slurm_profile(), "slurm", "sleep=120")
    job_a = submit(sa.executor, sa.plan, job_dir=sa.job_dir, flow_run_id="flow-of-a")
    tags = {j["id"]: j for j in list_tagged()}
    assert tags[job_b.id]["server"] == id_b and tags[job_a.id]["server"] == id_a

    # Server A knows no flow run at all (every one is "dead" to it): it sweeps its own job only.
    lost = orphans(lambda run: False)
    assert job_b.id not in {o["id"] for o in lost}
    assert sweep(lambda run: False) == ["flow-of-a"]
    assert job_a.status(max_age=0).done
    assert job_b.status(max_age=0).state in (JobState.PENDING, JobState.RUNNING)
    # Nor does cancelling a flow run by name reach B's job through its tag.
    cancel_flow_run("flow-of-b")
    assert job_b.status(max_age=0).state in (JobState.PENDING, JobState.RUNNING)

    # B's own sweeper does cancel it.
    orchestrator("b", SERVER_B)
    assert sweep(lambda run: False) == ["flow-of-b"]
    assert job_b.status(max_age=0).done


def test_a_job_of_another_user_is_not_swept(slurm, stage, monkeypatch):
    from nemotron_core.execution import owner
    from nemotron_core.execution.sweeper import orphans, tagged_slurm_jobs

    monkeypatch.setenv("PREFECT_API_URL", SERVER_A)
    me = owner.current_user
    monkeypatch.setattr(owner, "current_user", lambda: "someone_else")
    s = stage(JOB_RECIPE, slurm_profile(), "slurm", "sleep=120")
    job = submit(s.executor, s.plan, job_dir=s.job_dir, flow_run_id="flow-of-someone-else")
    try:
        assert {j["id"]: j for j in list_tagged()}[job.id]["user"] == "someone_else"
        monkeypatch.setattr(owner, "current_user", me)
        assert job.id not in {j["id"] for j in tagged_slurm_jobs()}
        assert job.id not in {o["id"] for o in orphans(lambda run: False)}
    finally:
        job.cancel()
