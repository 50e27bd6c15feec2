"""Cancel from Prefect, as a user clicking Cancel: the flow run's Slurm job ends first, then the run, no orphans.

Real parts only: a Prefect server, a `process` work pool with a real `prefect worker`, the
nano3-full deployment (from this checkout), the local Slurm. The flow runs the pretrain stage
on the `slurm` profile with a step count it will not reach; once the Slurm job is RUNNING, the
test sets the flow run to Cancelling through the API (what the UI's Cancel button does). The
worker then stops the flow process (SIGTERM), whose guard (flows/cancellation.py) cancels the
job. Checked, as events in their order: the click, then Slurm reports the job ended (CANCELLED, past
COMPLETING) while no process of the job (torchrun, trainer) and none of the flow run is left and squeue
lists no live job of this flow run, then the flow run ends Cancelled, its state history passing through
Cancelling. How fast (the goal: the job ends within 10 s of the click) is measured by
benchmarks/cancel_latency.py, not asserted here: these machines are too noisy for timed assertions.
With NEMOTRON_CANCEL_LATENCY_OUT=<file> set, the test appends the click-to-job-end seconds there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.fixtures.state import remove_state_folder
from tests.flows.helpers import wait_for
from tests.reliability.conftest import REPO, clean_env

PARAMS = {"profile": "slurm", "config": "tiny", "stages": ["pretrain"],
          "overrides": {"pretrain": ["train.max_steps=100000", "eval.interval=0", "checkpoint.interval=0",
                                     "log.wandb.mode=disabled"]}}

pytestmark = pytest.mark.slurm
PREFECT = str(Path(sys.executable).with_name("prefect"))
POOL = f"rel-cancel-{os.getpid()}"
DEPLOY = ("import sys\n"
          "from flows.nano3_full import nano3_full\n"
          "nano3_full.from_source(sys.argv[1], 'flows/nano3_full.py:nano3_full').deploy(\n"
          "    name='cancel-test', work_pool_name=sys.argv[2], print_next_steps=False)\n")


def _processes_with(*needles: str) -> list[str]:
    """pid + argv of live processes whose command line or environment mentions every needle."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            argv = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and all(n.encode() in argv or n.encode() in environ for n in needles):
            words = argv.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{proc.name}: {words[:200]}")
    return found


def _no_processes_with(needles: tuple[str, ...], timeout: float) -> None:
    try:
        wait_for(lambda: not _processes_with(*needles), timeout, f"processes with {needles} gone")
    except AssertionError as e:
        raise AssertionError(f"{e}; orphans: {_processes_with(*needles)}") from None


@pytest.fixture
def deployment(prefect_server, slurm_cluster, pretrain_data):
    from nemotron_cli.import_cmd import import_source

    state = REPO / ".state" / f"cx{os.getpid()}"
    conf = slurm_cluster.conf
    state.mkdir(parents=True, exist_ok=True)
    env_file = state / "env.toml"
    env_file.write_text('[slurm]\nexecutor = "slurm"\ncontainer_image = ""\npartition = "debug"\n'
                        f'time = "00:20:00"\nntasks_per_node = 1\ngpus_per_node = 0\nslurm_conf = "{conf}"\n')
    env = clean_env(PREFECT_API_URL=prefect_server, NEMOTRON_STATE_DIR=str(state), PREFECT_HOME=str(state / "prefect"),
                    NEMOTRON_ENV_FILE=str(env_file), SLURM_CONF=str(conf), PREFECT_WORKER_QUERY_SECONDS="2",
                    PREFECT_WORKER_PREFETCH_SECONDS="2")
    import_source("data", "pretrain", str(pretrain_data), root=str(state / "artifacts"))  # what pretrain pins
    subprocess.run([PREFECT, "work-pool", "create", POOL, "--type", "process", "--overwrite"], env=env,
                   capture_output=True, text=True, timeout=120, check=True)
    out = subprocess.run([sys.executable, "-c", DEPLOY, str(REPO), POOL], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    log = open(state / "worker.log", "wb")
    worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", POOL, "--type", "process"], cwd=REPO, env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield state, env, slurm_cluster, worker
    finally:
        for ref in state.glob("jobs/*/*/jobref.json"):  # a failed test must not leave its job running
            job_id = json.loads(ref.read_text()).get("id")
            if job_id:
                slurm_cluster.run("scancel", str(job_id))
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
        subprocess.run([PREFECT, "work-pool", "delete", POOL], env=env, capture_output=True, timeout=120)
        remove_state_folder(state)


def test_cancel_in_prefect_ends_the_slurm_job_then_the_run_without_orphans(deployment):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.states import Cancelling

    from nemotron_core.execution import Job, JobState

    from prefect.settings import PREFECT_API_URL, temporary_settings

    state, env, cluster, worker = deployment
    with temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}):  # this process: the same server
        _cancel_and_check(state, cluster, worker)


def _running_job(state: Path, proc: subprocess.Popen, log: Path):
    from nemotron_core.execution import Job, JobState

    def running():
        for d in (state / "jobs").glob("[!.]*/*"):
            if (d / "jobref.json").is_file():
                job = Job.from_dir(d)
                if job.id and job.status(max_age=0).state is JobState.RUNNING:
                    return job
        assert proc.poll() is None, log.read_text()[-3000:]
        return None

    return wait_for(running, 420, "the pretrain Slurm job RUNNING")


def _slurm_job(cluster, job_id) -> dict | None:
    """The job's squeue record, or None once slurmctld has purged it (MinJobAge=10 s on the test cluster)."""
    out = cluster.run("squeue", "--json", "--states=all")  # Slurm 22.05 ignores --jobs with --json
    listed = [j for j in json.loads(out.stdout)["jobs"] if str(j["job_id"]) == str(job_id)] if out.stdout else []
    return listed[0] if listed else None


def _state_of(record: dict | None) -> str:
    if record is None:
        return "GONE"
    value = record["job_state"]
    return value[0] if isinstance(value, list) else value


def _slurm_state(cluster, job_id) -> str:
    return _state_of(_slurm_job(cluster, job_id))


def _end_time_of(record: dict) -> datetime:
    """The job's end time as Slurm recorded it (epoch seconds; 23.02+ wraps numbers as {"number": N})."""
    value = record["end_time"]
    return datetime.fromtimestamp(int(value["number"] if isinstance(value, dict) else value)).astimezone()


LIVE = ("RUNNING", "PENDING", "CONFIGURING", "COMPLETING")  # COMPLETING: Slurm still killing its processes


def _cancel_and_check(state, cluster, worker):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.states import Cancelling

    from nemotron_core.execution import Job, JobState

    run = run_deployment("nano3-full/cancel-test", parameters=PARAMS, timeout=0)
    job = _running_job(state, worker, state / "worker.log")
    time.sleep(3)  # let torchrun start its worker: the orphans it could leave must exist first
    with get_client(sync_client=True) as client:
        clicked = time.monotonic()
        client.set_flow_run_state(run.id, Cancelling(), force=True)

        # The end time is kept from the read that saw the job end: the record is purged 10 s later.
        ended = wait_for(lambda: (r := _slurm_job(cluster, job.id)) is not None and _state_of(r) not in LIVE and r,
                         120, f"slurm job {job.id} ended after Cancel")
        took = time.monotonic() - clicked
        assert _state_of(ended) == "CANCELLED", ended
        listed = json.loads(cluster.run("squeue", "--json", "--states=all").stdout)["jobs"]  # 22.05: filters ignored
        mine = [(j["job_id"], j["job_state"]) for j in listed if str(run.id) in (j.get("comment") or "")]
        assert mine and all(st not in LIVE for _, st in mine), mine  # tagged with the run; none alive
        # no process of the job (slurmstepd's children: torchrun, the trainer) nor of the flow run survives
        for needles in ((str(job.job_dir),), (f"SLURM_JOB_ID={job.id}\0", str(state))):  # ids repeat across clusters
            _no_processes_with(needles, 60)
        _no_processes_with((str(run.id),), 60)
        end = wait_for(lambda: (r := client.read_flow_run(run.id)).state.is_final() and r, 120, "the flow run final")
        states = client.read_flow_run_states(run.id)
        history = [st.type.value for st in states]
        assert end.state.type.value == "CANCELLED", (history, (state / "worker.log").read_text()[-4000:])
        # the order: Cancelling (the click), then Slurm ends the job, then the run is Cancelled
        assert "CANCELLING" in history and history.index("CANCELLING") < history.index("CANCELLED"), history
        cancelling = next(st.timestamp for st in states if st.type.value == "CANCELLING")
        cancelled = next(st.timestamp for st in states if st.type.value == "CANCELLED")
        job_end = _end_time_of(ended)
        # Slurm's EndTime has whole seconds: allow that rounding on both sides
        assert cancelling - timedelta(seconds=1) <= job_end <= cancelled + timedelta(seconds=1), \
            (cancelling, job_end, cancelled)
    if out := os.environ.get("NEMOTRON_CANCEL_LATENCY_OUT"):
        with open(out, "a") as f:
            f.write(f"{took:.3f}\n")
    assert worker.poll() is None  # the worker itself is unharmed


def test_sigterm_to_a_flow_process_without_a_worker_still_cancels_its_job(deployment):
    """A flow run called in a plain process (no worker, no cancel intent): SIGTERM is a crash, and the
    on_crashed hook must still end the Slurm job (before the flow process exits)."""
    import signal

    state, env, cluster, _ = deployment
    code = "import json, sys\nfrom flows.nano3_full import nano3_full\nnano3_full(**json.loads(sys.argv[1]))\n"
    log = state / "flow.log"
    with open(log, "wb") as out:
        flow = subprocess.Popen([sys.executable, "-c", code, json.dumps(PARAMS)], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        job = _running_job(state, flow, log)
        flow.send_signal(signal.SIGTERM)
        try:
            wait_for(lambda: _slurm_state(cluster, job.id) not in LIVE, 120, f"slurm job {job.id} ended after SIGTERM")
        except AssertionError as e:
            raise AssertionError(f"{e}; flow output: {log.read_text()[-3000:]}") from None
        flow.wait(timeout=60)
    finally:
        if flow.poll() is None:
            flow.kill()
    assert "cancel_cluster_jobs" in log.read_text()  # the hook did it
