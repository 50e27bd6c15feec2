"""The nano3-full flow end to end on a real Prefect server, local executor, tiny configs.

One pipeline state folder is shared by the tests in this module, in order:
1. a first run builds every stage and registers its artifacts with lineage;
2. a rerun with nothing changed submits no job and returns the same refs (cache hits);
3. a changed SFT override reruns SFT (and what is downstream of it) only.
The flow runs in a subprocess against the server, as a deployment's worker would run it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.flows.helpers import REPO, flow_state, job_dirs, registry, run_flow

# Short trainer runs: this checks orchestration, not learning (tests/recipes checks that). One thread:
# two OpenMP threads on a shared 2-core machine run many times slower (measured: 5-13x).
FAST = {
    "pretrain": ["train.max_steps=40", "eval.interval=20", "checkpoint.interval=20", "log.interval=10",
                 "runtime.threads=1"],
    "sft": ["train.max_steps=20", "eval.interval=10", "checkpoint.interval=10", "log.interval=10", "runtime.threads=1"],
}
BUILT = [s for s, script in [("data_pretrain", "stage0_pretrain/data_prep.py"), ("data_sft", "stage1_sft/data_prep.py"),
                             ("data_rl", "stage2_rl/data_prep.py"), ("pretrain", "stage0_pretrain/train.py"),
                             ("sft", "stage1_sft/train.py")]
         if (REPO / "recipes" / "nano3" / script).is_file()]


@pytest.fixture(scope="module")
def pipeline(prefect_server):
    with flow_state(prefect_server, "flow") as (state, env):
        yield state, env


@pytest.mark.skipif(len(BUILT) < 5, reason="needs the data prep and trainer recipes")
def test_pipeline_runs_caches_and_reruns_only_downstream(pipeline):
    state, env = pipeline
    stages = BUILT
    first = run_flow(env, stages=stages, overrides=FAST)
    reg = registry(state)
    assert first["data_pretrain"] == "nano3-pretrain-data:v1"
    assert first["pretrain"] == "nano3-pretrain-model:v1" and first["sft"] == "nano3-sft-model:v1"
    sft = reg.resolve(first["sft"])
    assert set(sft.lineage) == {first["data_sft"], first["pretrain"]}
    assert reg.resolve(first["pretrain"]).lineage == (first["data_pretrain"],)
    assert (Path(sft.path) / "config.json").is_file() and (Path(sft.path) / "model.safetensors").is_file()
    jobs_after_first = job_dirs(state)
    assert len(jobs_after_first) == len(stages)

    # 2. Nothing changed: no new job, same refs.
    second = run_flow(env, stages=stages, overrides=FAST)
    assert {k: second[k] for k in stages} == {k: first[k] for k in stages}
    assert job_dirs(state) == jobs_after_first

    # 3. An SFT override: only SFT reruns, on the same pinned inputs.
    third = run_flow(env, stages=stages, overrides={**FAST, "sft": [*FAST["sft"], "optim.lr=5e-4"]})
    assert third["sft"] == "nano3-sft-model:v2"
    assert {k: third[k] for k in stages if k != "sft"} == {k: first[k] for k in stages if k != "sft"}
    new_jobs = job_dirs(state) - jobs_after_first
    assert [p.parent.name for p in new_jobs] == ["nano3-sft"]
    assert set(reg.resolve(third["sft"]).lineage) == {first["data_sft"], first["pretrain"]}


@pytest.mark.skipif(len(BUILT) < 5, reason="needs the data prep and trainer recipes")
def test_sigterm_to_the_flow_process_cancels_its_running_job(pipeline):
    """How a worker stops a cancelled flow run: SIGTERM to the flow process. The job must go too."""
    import signal
    import subprocess
    import sys
    import time

    from nemotron_core.execution import Job

    state, env = pipeline
    before = job_dirs(state)
    code = ("from flows.nano3_full import nano3_full\n"
            "nano3_full(stages=['pretrain'], overrides={'pretrain': ['train.max_steps=100000']})\n")
    flow = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        job = None
        while job is None and time.monotonic() < deadline:
            new = [p for p in job_dirs(state) - before if (p / "jobref.json").is_file()]
            if new and Job.from_dir(new[0]).status(max_age=0).state.value == "RUNNING":
                job = Job.from_dir(new[0])
            time.sleep(1)
        assert job is not None, "the pretrain job never started"
        flow.send_signal(signal.SIGTERM)
        start = time.monotonic()  # a bound for a hang, not a speed target (it takes ~1 s idle; once > 10 s under load)
        while not job.status(max_age=0).done and time.monotonic() - start < 120:
            time.sleep(0.5)
        assert job.status(max_age=0).state.value == "CANCELLED"
        flow.wait(timeout=60)
    finally:
        if flow.poll() is None:
            flow.kill()
