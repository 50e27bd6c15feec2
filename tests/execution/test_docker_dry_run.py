"""`nemotron nano3 pipe --run KIND --dry-run` builds every stage's executor the way the stage task does:
an unsupported or misconfigured profile fails in one line before anything is planned as "submit".
The flow builds them the same way (pipeline/run.py:run_stage): a bad profile fails it before any job."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

ENV_TOML = """\
[docker_noimage]
executor = "docker"
container_image = ""

[docker_twonodes]
executor = "docker"
container_image = "nemotron-test:1"
nodes = 2

[dgx]
executor = "dgxcloud"

[slurm_packager]
executor = "slurm"
packager = "rsync"

[slurm_ssh]
executor = "slurm"
tunnel = "ssh"

[docker_ok]
executor = "docker"
container_image = "nemotron-test:1"
python = "/opt/venv/bin/python"
"""


def pipe_dry_run(tmp_path: Path, profile: str) -> subprocess.CompletedProcess:
    (tmp_path / "env.toml").write_text(ENV_TOML)
    env = {**os.environ, "NEMOTRON_ENV_FILE": str(tmp_path / "env.toml"), "NEMOTRON_STATE_DIR": str(tmp_path / "s")}
    return subprocess.run([str(REPO / ".venv" / "bin" / "nemotron"), "nano3", "pipe", "--run", profile, "--dry-run"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("profile", "message"), [
    ("docker_noimage", "error: profile 'docker_noimage': executor = 'docker' needs container_image"),
    ("docker_twonodes", "error: profile 'docker_twonodes': executor = 'docker' runs one container on one host"),
    ("dgx", "error: profile 'dgx': executor = 'dgxcloud' needs base_url"),
    ("slurm_packager", "error: profile 'slurm_packager': packager = 'rsync' is not one of"),
    ("slurm_ssh", "error: profile 'slurm_ssh'"),
])
def test_a_profile_the_stages_cannot_run_on_fails_the_dry_run(tmp_path, profile, message):
    proc = pipe_dry_run(tmp_path, profile)
    assert proc.returncode == 2 and proc.stderr.startswith(message) and proc.stderr.count("\n") == 1, proc.stderr
    assert "submit" not in proc.stdout and not (tmp_path / "s" / "jobs").exists()


def test_a_valid_docker_profile_plans_every_stage(tmp_path):
    proc = pipe_dry_run(tmp_path, "docker_ok")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("submit") == 9 and not (tmp_path / "s" / "jobs").exists()


@pytest.mark.slow
def test_the_flow_fails_on_a_misconfigured_profile_before_any_job(prefect_server):
    from tests.flows.helpers import flow_result, flow_state, start_flow

    with flow_state(prefect_server, "badp") as (state, env):
        state.mkdir(parents=True, exist_ok=True)
        (state / "env.toml").write_text(ENV_TOML)
        env["NEMOTRON_ENV_FILE"] = str(state / "env.toml")
        log = state / "flow.log"
        with pytest.raises(AssertionError):
            flow_result(start_flow(env, log, profile="slurm_packager"), log, timeout=600)
        assert "packager = 'rsync' is not one of" in log.read_text()
        assert not list((state / "jobs").rglob("jobref.json")) if (state / "jobs").exists() else True
