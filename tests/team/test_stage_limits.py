"""Per-stage concurrency limits: declared in deployments/prefect.yaml, enforced by the Prefect server.

`prefect deploy --all` runs prefect.yaml's `set_stage_limits` step (tasks/stage_limits.py),
which sets tag-based task concurrency limits on `nano3-stage:<stage>`; the stage tasks carry
that tag, so two flow runs never run more of a stage at once than its limit allows.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.flows.helpers import REPO, flow_result, flow_state
from tests.team.helpers import prefect, team_env

DEFAULTS = {"pretrain": 2, "sft": 2, "rl": 2}  # what deployments/prefect.yaml declares


def _python(env: dict[str, str], code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=180)


def _limits(env: dict[str, str]) -> dict[str, int]:
    proc = _python(env, "import json\nfrom tasks.stage_limits import read_stage_limits\n"
                        "print(json.dumps(read_stage_limits()))")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def _set(env: dict[str, str], limits) -> subprocess.CompletedProcess:
    return _python(env, "import json, sys\nfrom tasks.stage_limits import set_stage_limits\n"
                        "set_stage_limits(json.loads(sys.argv[1]))", json.dumps(limits))


def _deploy(env: dict[str, str], prefect_file: Path) -> subprocess.CompletedProcess:
    for pool in ("nemotron-local", "nemotron-slurm"):
        prefect(env, "work-pool", "create", pool, "--type", "process", "--overwrite")
    return prefect(env, "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file), cwd=REPO,
                   timeout=300, check=False)


def test_prefect_yaml_declares_the_stage_limits_and_deploy_applies_them(prefect_server_postgres, tmp_path):
    env = team_env(prefect_server_postgres.env, tmp_path / "home", NEMOTRON_ROOT=str(REPO),
                   NEMOTRON_NIGHTLY_CRON="0 2 * * *", NEMOTRON_NIGHTLY_TZ="UTC")
    assert _set(env, {"eval": 7}).returncode == 0  # a limit prefect.yaml does not declare: deploy removes it
    out = _deploy(env, REPO / "deployments" / "prefect.yaml")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert _limits(env) == DEFAULTS
    # the stage tasks carry the tags those limits apply to
    from flows.nano3_full import STAGES
    from tasks.data_prep import data_prep_pretrain
    from tasks.eval import evaluate
    from tasks.pretrain import pretrain
    from tasks.rl import rl
    from tasks.sft import sft

    for name, task in zip(STAGES, (data_prep_pretrain, None, None, pretrain, sft, rl, evaluate)):
        if task is not None:
            assert f"nano3-stage:{name}" in task.tags


def test_a_bad_limit_in_prefect_yaml_fails_the_deploy_in_one_line_and_changes_nothing(prefect_server_postgres,
                                                                                     tmp_path):
    env = team_env(prefect_server_postgres.env, tmp_path / "home", NEMOTRON_ROOT=str(REPO),
                   NEMOTRON_NIGHTLY_CRON="0 2 * * *", NEMOTRON_NIGHTLY_TZ="UTC")
    assert _set(env, DEFAULTS).returncode == 0
    text = (REPO / "deployments" / "prefect.yaml").read_text()
    for bad, message in ((text.replace("        pretrain: 2", "        pretrian: 2"),
                          "unknown stage 'pretrian' (did you mean 'pretrain'?)"),
                         (text.replace("        sft: 2", "        sft: 0"), "limits.sft = '0' is not a whole number")):
        copy = tmp_path / "prefect.yaml"
        copy.write_text(bad)
        out = _deploy(env, copy)
        assert out.returncode != 0
        assert message in out.stdout + out.stderr, out.stdout[-3000:] + out.stderr[-3000:]
        assert _limits(env) == DEFAULTS  # checked before anything changed on the server
    for bad in ({"pretrain": -1}, {"pretrain": "two"}, {"pretrain": True}, ["pretrain"]):
        proc = _set(env, bad)
        assert proc.returncode != 0 and "deployments/prefect.yaml: set_stage_limits" in proc.stderr, proc.stderr
    assert _limits(env) == DEFAULTS


# nano3_full in a subprocess, as tests/flows/helpers.py runs it, printing its flow run id too.
_FLOW = ("import json, sys\n"
         "from flows.nano3_full import nano3_full\n"
         "state = nano3_full(**json.loads(sys.argv[1]), return_state=True)\n"
         "print('RUN=' + str(state.state_details.flow_run_id), flush=True)\n"
         "print('RESULT=' + json.dumps(state.result()), flush=True)\n")


def _start(env: dict[str, str], log: Path, **params) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-c", _FLOW, json.dumps(params)], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def _task_runs(env: dict[str, str], flow_run_ids: list[str]) -> list[dict]:
    """State, start and end of the task runs of these flow runs, from the server."""
    code = ("import json, sys\n"
            "from prefect.client.orchestration import get_client\n"
            "from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId\n"
            "with get_client(sync_client=True) as c:\n"
            "    runs = c.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=sys.argv[1:])))\n"
            "    print(json.dumps([{'name': r.name, 'tags': sorted(r.tags), 'state': r.state.type.value,\n"
            "                       'start': r.start_time.isoformat(), 'end': r.end_time.isoformat()}\n"
            "                      for r in runs]))\n")
    proc = _python(env, code, *flow_run_ids)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.skipif(not (REPO / "recipes/nano3/stage0_pretrain/data_prep.py").is_file(),
                    reason="needs the pretrain data prep recipe")
def test_a_stage_limit_of_one_makes_two_flow_runs_take_turns(prefect_server_postgres, tmp_path):
    """Two nano3-full runs of different content (no cache lock between them), data_pretrain limited to 1."""
    with flow_state(prefect_server_postgres.api_url, "lim") as (state, base):
        env = {**base, **team_env(prefect_server_postgres.env, state / "prefect")}
        assert _set(env, {**DEFAULTS, "data_pretrain": 1}).returncode == 0
        try:
            logs = [state / f"flow{seed}.log" for seed in (1, 2)]
            procs = [_start(env, log, stages=["data_pretrain"], overrides={"data_pretrain": [f"seed={seed}"]})
                     for seed, log in zip((1, 2), logs)]
            results = [flow_result(proc, log) for proc, log in zip(procs, logs)]
        finally:
            assert _set(env, DEFAULTS).returncode == 0
        assert sorted(r["data_pretrain"] for r in results) == ["nano3-pretrain-data:v1", "nano3-pretrain-data:v2"]
        ids = [next(line[4:] for line in log.read_text().splitlines() if line.startswith("RUN=")) for log in logs]
        runs = _task_runs(env, ids)
        assert len(runs) == 2, runs
        assert all(r["state"] == "COMPLETED" and "nano3-stage:data_pretrain" in r["tags"] for r in runs), runs
        first, second = sorted(runs, key=lambda r: r["start"])
        assert first["end"] <= second["start"], runs  # one after the other, never both at once
