"""The nano3-full flow end to end on a real Prefect server, local executor, tiny configs.

One pipeline state folder is shared by the tests in this module, in order:
1. a first run builds every stage and registers its artifacts with lineage;
2. a rerun with nothing changed submits no job and returns the same refs (cache hits);
3. a changed SFT override reruns SFT (and what is downstream of it) only.
The flow runs in a subprocess against the server, as a deployment's worker would run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Short trainer runs: this checks orchestration, not learning (tests/recipes checks that).
FAST = {
    "pretrain": ["train.max_steps=40", "eval.interval=20", "checkpoint.interval=20", "log.interval=10"],
    "sft": ["train.max_steps=20", "eval.interval=10", "checkpoint.interval=10", "log.interval=10"],
}
BUILT = [s for s, script in [("data_pretrain", "stage0_pretrain/data_prep.py"), ("data_sft", "stage1_sft/data_prep.py"),
                             ("data_rl", "stage2_rl/data_prep.py"), ("pretrain", "stage0_pretrain/train.py"),
                             ("sft", "stage1_sft/train.py")]
         if (REPO / "recipes" / "nano3" / script).is_file()]


@pytest.fixture(scope="module")
def pipeline(prefect_server, tmp_path_factory):
    # A short state path: Ray's socket paths live under it (unix socket length limit).
    state = REPO / ".state" / f"flow{os.getpid()}"
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "NEMOTRON_STATE_DIR": str(state),
           "PREFECT_HOME": str(state / "prefect"), "NEMOTRON_ENV_FILE": ""}
    env.pop("RAY_ADDRESS", None)
    yield state, env
    import shutil

    shutil.rmtree(state, ignore_errors=True)


def run_flow(env, **params) -> dict:
    code = ("import json, sys\n"
            "from flows.nano3_full import nano3_full\n"
            "result = nano3_full(**json.loads(sys.argv[1]))\n"
            "print('RESULT=' + json.dumps(result))\n")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(params)], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=1500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    line = next(line for line in out.stdout.splitlines() if line.startswith("RESULT="))
    return json.loads(line[len("RESULT="):])


def job_dirs(state: Path) -> set[Path]:
    root = state / "jobs"
    return {p for p in root.glob("[!.]*/*") if p.is_dir()} if root.is_dir() else set()


def registry(state: Path):
    from nemotron_core.artifacts import open_registry

    return open_registry({"root": str(state / "artifacts")})


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
        start = time.monotonic()
        while not job.status(max_age=0).done and time.monotonic() - start < 10:
            time.sleep(0.5)
        assert job.status(max_age=0).state.value == "CANCELLED"
        assert time.monotonic() - start < 10
        flow.wait(timeout=60)
    finally:
        if flow.poll() is None:
            flow.kill()
