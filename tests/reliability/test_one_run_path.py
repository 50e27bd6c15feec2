"""The CLI and the flow run a stage through the same pipeline/run.py:run_stage (issue #19).

A stage built by `nemotron nano3 data prep pretrain -c tiny` is published with the flow's content key
and output layout, so `nemotron nano3 pipe --dry-run` plans it as skip (cached) and a real
`nemotron nano3 pipe` run does not submit it again: it returns the version the CLI registered.
"""

from __future__ import annotations

import os
import subprocess

from tests.flows.helpers import REPO, flow_state, job_dirs, registry

NEMOTRON = REPO / ".venv" / "bin" / "nemotron"


def nemotron(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(NEMOTRON), *args], cwd=REPO, env={**env, "COLUMNS": "400"}, capture_output=True,
                          text=True, timeout=1200)


def test_a_stage_built_by_the_cli_is_cached_for_the_pipeline(prefect_server):
    with flow_state(prefect_server, "onepath") as (state, env):
        built = nemotron(env, "nano3", "data", "prep", "pretrain", "-c", "tiny")
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
        (version,) = registry(state).list("nano3-pretrain-data")
        key = version.metadata["content_key"]
        assert version.ref == "nano3-pretrain-data:v1" and len(key) == 64
        (job_dir,) = job_dirs(state)
        # the flow's layout: the output was written to <state>/outputs/<artifact>/<key[:16]> (then moved in)
        job_yaml = (job_dir / "job.yaml").read_text()
        assert str(state / "outputs" / "nano3-pretrain-data" / key[:16]) in job_yaml

        plan = nemotron(env, "nano3", "pipe", "-c", "tiny", "--dry-run")
        assert plan.returncode == 0, plan.stderr
        row = next(line for line in plan.stdout.splitlines() if "data_pretrain" in line)
        assert "skip" in row and f"cached: content {key[:12]}" in row, plan.stdout
        assert plan.stdout.count("submit") == 8  # the other 6 stages and 3 evals wait for their inputs...
        assert "nano3-pretrain-data:v1" in plan.stdout  # ...less the one that is built

        again = nemotron(env, "nano3", "pipe", "-c", "tiny", "--stages", "data_pretrain")
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        assert "nano3-pretrain-data:v1" in again.stdout
        assert job_dirs(state) == {job_dir}  # nothing submitted
        assert [v.ref for v in registry(state).list("nano3-pretrain-data")] == ["nano3-pretrain-data:v1"]


def test_the_dry_run_of_a_cli_stage_names_its_content_key_folder_and_writes_nothing(tmp_path):
    env = {**os.environ, "NEMOTRON_STATE_DIR": str(tmp_path / "s"), "NEMOTRON_ENV_FILE": ""}
    out = nemotron(env, "nano3", "data", "prep", "pretrain", "-c", "tiny", "--dry-run")
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stdout.splitlines() if line.startswith("would publish"))
    assert f"would publish nano3-pretrain-data from {tmp_path / 's' / 'outputs' / 'nano3-pretrain-data'}/" in line
    assert not (tmp_path / "s" / "jobs").exists() and not (tmp_path / "s" / "outputs").exists()
