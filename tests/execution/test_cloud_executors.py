"""DGX Cloud, Lepton and SkyPilot profiles through the real CLI: `--dry-run` prints the request nemo-run's
own builders make (DGXCloudExecutor.create_training_job, LeptonExecutor.create_lepton_job), sent nowhere;
a real submit without credentials fails in one line; secret values never appear."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-value-never-printed"

ENV_TOML = """\
[dgx]
executor = "dgxcloud"
base_url = "https://dgxc.invalid/api/v1"
project = "nemotron"
container_image = "nvcr.io/nvidia/nemo:25.09"
pvc_nemo_run_dir = "/workspace/nemo_run"
pvcs = [{claimName = "ws", path = "/workspace"}]
nodes = 2
gpus_per_node = 8
secrets = ["HF_TOKEN"]
[dgx.env]
NCCL_DEBUG = "WARN"

[dgx1]
extends = "dgx"
nodes = 1

[lep]
executor = "lepton"
workspace = "ws-abc"
resource_shape = "gpu.8xh100-80gb"
node_group = "ng1"
container_image = "nvcr.io/nvidia/nemo:25.09"
nemo_run_dir = "/shared/nemo_run"
mounts = ["/shared/data:/data"]
nodes = 2
gpus_per_node = 8
secrets = ["HF_TOKEN"]
[lep.env]
NCCL_DEBUG = "WARN"

[dgx_nourl]
executor = "dgxcloud"
project = "p"

[dgx_pvc]
extends = "dgx"
pvc_nemo_run_dir = "/elsewhere/nemo_run"

[dgx_http]
extends = "dgx"
base_url = "http://dgxc.invalid/api/v1"

[lep_mount]
extends = "lep"
mounts = ["relative:/data"]

[sky]
executor = "skypilot"
cloud = "aws"
region = "us-east-1"
accelerators = "H100"
gpus_per_node = 8
nodes = 2
disk_size = 500
use_spot = true
container_image = "nvcr.io/nvidia/nemo:25.09"
file_mounts = {"/data" = "/tmp"}
"""


def nemotron(tmp_path: Path, *args: str, dry_run: bool = True) -> subprocess.CompletedProcess:
    (tmp_path / "env.toml").write_text(ENV_TOML)
    env = {k: v for k, v in os.environ.items() if k not in ("DGXC_APP_ID", "DGXC_APP_SECRET", "LEPTON_WORKSPACE_TOKEN")}
    env.update(NEMOTRON_ENV_FILE=str(tmp_path / "env.toml"), NEMOTRON_STATE_DIR=str(tmp_path / "s"), HF_TOKEN=SECRET,
               COLUMNS="200")
    cmd = [str(REPO / ".venv" / "bin" / "nemotron"), "nano3", "data", "prep", "pretrain", "-c", "tiny", *args]
    return subprocess.run(cmd + (["--dry-run"] if dry_run else []), env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)


def request(stdout: str, after: str) -> dict:
    body = stdout.split(after + "\n", 1)[1].split("\ncredentials at submit", 1)[0]
    return json.loads(body)


def launch_script(stdout: str) -> str:
    return stdout.split("launch_script.sh:\n", 1)[1]


def test_dgxcloud_dry_run_prints_the_distributed_workload(tmp_path):
    proc = nemotron(tmp_path, "--run", "dgx")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "POST https://dgxc.invalid/api/v1/workloads/distributed" in out
    payload = request(out, "POST https://dgxc.invalid/api/v1/workloads/distributed")
    spec = payload["spec"]
    assert spec["minReplicas"] == spec["maxReplicas"] == spec["numWorkers"] == 2
    assert spec["compute"]["gpuDevicesRequest"] == 8 and spec["image"] == "nvcr.io/nvidia/nemo:25.09"
    assert spec["storage"]["pvc"] == [{"claimName": "ws", "path": "/workspace"}]
    env = {e["name"]: e["value"] for e in spec["environmentVariables"]}
    assert env["NCCL_DEBUG"] == "WARN" and "HF_TOKEN" not in env
    assert not any(str(tmp_path) in v for v in env.values())  # this host's state paths stay here
    job = spec["command"].split()[1].rsplit("/", 1)[0]
    assert spec["command"] == f"/bin/bash {job}/launch_script.sh" and job.startswith("/workspace/nemo_run/")
    script = launch_script(out)
    assert f"python /nemo_run/code/recipes/nano3/stage0_pretrain/data_prep.py --config {job}/train.yaml" in script
    assert "$DGXC_APP_ID and $DGXC_APP_SECRET" in out
    assert SECRET not in out + proc.stderr and not (tmp_path / "s").exists()


def test_dgxcloud_single_node_is_a_training(tmp_path):
    proc = nemotron(tmp_path, "--run", "dgx1")
    assert proc.returncode == 0, proc.stderr
    spec = request(proc.stdout, "POST https://dgxc.invalid/api/v1/workloads/trainings")["spec"]
    assert "numWorkers" not in spec and spec["compute"]["gpuDevicesRequest"] == 8


def test_lepton_dry_run_prints_the_job_spec(tmp_path):
    proc = nemotron(tmp_path, "--run", "lep")
    assert proc.returncode == 0, proc.stderr
    job = request(proc.stdout, "create job")
    spec = job["spec"]
    assert spec["completions"] == spec["parallelism"] == 2 and spec["resource_shape"] == "gpu.8xh100-80gb"
    assert spec["affinity"]["allowed_dedicated_node_groups"] == ["<id of node group ng1>"]
    assert spec["container"]["image"] == "nvcr.io/nvidia/nemo:25.09"
    assert spec["mounts"] == [{"from": "node-nfs:lepton-shared-fs", "mount_path": "/data", "path": "/shared/data"}]
    envs = {e["name"]: e for e in spec["envs"]}
    assert envs["NCCL_DEBUG"]["value"] == "WARN"
    assert envs["HF_TOKEN"] == {"name": "HF_TOKEN", "value_from": {"secret_name_ref": "HF_TOKEN"}}
    script = launch_script(proc.stdout)
    assert "cd /nemo_run/code" in script and "/nemo_run/code/recipes/nano3/stage0_pretrain/data_prep.py" in script
    assert SECRET not in proc.stdout + proc.stderr and not (tmp_path / "s").exists()


@pytest.mark.parametrize(("profile", "message"), [
    ("dgx_nourl", "error: profile 'dgx_nourl': executor = 'dgxcloud' needs base_url"),
    ("dgx_pvc", "error: profile 'dgx_pvc': pvc_nemo_run_dir = '/elsewhere/nemo_run' is on none of the pvcs"),
    ("dgx_http", "error: profile 'dgx_http': base_url = 'http://dgxc.invalid/api/v1' must be an https:// URL"),
    ("lep_mount", "error: profile 'lep_mount': mounts entry 'relative:/data' must be"),
    ("sky", "error: profile 'sky': executor = 'skypilot' needs SkyPilot, an optional extra"),
])
def test_a_misconfigured_cloud_profile_fails_in_one_line(tmp_path, profile, message):
    if profile == "sky":
        # SkyPilot is an optional extra: where it is installed this profile renders instead.
        if subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c", "import sky"], capture_output=True).returncode == 0:
            pytest.skip("SkyPilot is installed here")
    proc = nemotron(tmp_path, "--run", profile)
    assert proc.returncode != 0 and proc.stderr.startswith(message) and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "s").exists()


@pytest.mark.parametrize(("profile", "names"), [("dgx", "$DGXC_APP_ID and $DGXC_APP_SECRET"),
                                                ("lep", "$LEPTON_WORKSPACE_TOKEN")])
def test_a_real_submit_without_credentials_fails_in_one_line(tmp_path, profile, names):
    proc = nemotron(tmp_path, "--batch", profile, dry_run=False)
    assert proc.returncode != 0, proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: profile '{profile}': submitting to ") and names in last, proc.stderr
    assert "Traceback" not in proc.stderr and SECRET not in proc.stdout + proc.stderr
    assert not list((tmp_path / "s").rglob("secrets.env"))


def test_skypilot_dry_run_prints_the_task_skypilot_accepts(tmp_path):
    """Needs the [skypilot] extra; SkyPilot's schema re-reads the task (its launch dry-run needs its catalog
    from GitHub, out of reach here)."""
    if subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c", "import sky"], capture_output=True).returncode:
        pytest.skip("the [skypilot] extra is not installed")
    import yaml

    proc = nemotron(tmp_path, "--run", "sky")
    assert proc.returncode == 0, proc.stderr
    task = yaml.safe_load(proc.stdout.split("not launched:\n", 1)[1].split("\nwould publish", 1)[0])
    assert task["num_nodes"] == 2 and task["resources"]["accelerators"] == {"H100": 8}
    assert task["resources"]["infra"] == "aws/us-east-1" and task["resources"]["use_spot"] is True
    assert task["file_mounts"]["/data"] == "/tmp" and "data_prep.py --config /nemo_run/train.yaml" in task["run"]
    assert SECRET not in proc.stdout + proc.stderr


@pytest.mark.parametrize(("profile", "message"), [
    ("dgx", "error: profile 'dgx': DGX Cloud at https://dgxc.invalid/api/v1 is not reachable"),
    ("lep", "error: profile 'lep': Lepton workspace 'ws-abc' is not reachable with $LEPTON_WORKSPACE_TOKEN"),
])
def test_a_real_submit_with_credentials_but_no_api_fails_in_one_line(tmp_path, profile, message, monkeypatch):
    for name in ("DGXC_APP_ID", "DGXC_APP_SECRET", "LEPTON_WORKSPACE_TOKEN"):
        monkeypatch.setenv(name, SECRET)
    (tmp_path / "env.toml").write_text(ENV_TOML)
    env = {**os.environ, "NEMOTRON_ENV_FILE": str(tmp_path / "env.toml"), "NEMOTRON_STATE_DIR": str(tmp_path / "s")}
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "nemotron"), "nano3", "data", "prep", "pretrain", "-c", "tiny",
                           "--batch", profile], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and proc.stderr.startswith(message) and proc.stderr.count("\n") == 1, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr and not list((tmp_path / "s").rglob("secrets.env"))


def test_pipe_dry_run_builds_every_stage_on_dgxcloud(tmp_path):
    (tmp_path / "env.toml").write_text(ENV_TOML)
    env = {**os.environ, "NEMOTRON_ENV_FILE": str(tmp_path / "env.toml"), "NEMOTRON_STATE_DIR": str(tmp_path / "s")}
    run = [str(REPO / ".venv" / "bin" / "nemotron"), "nano3", "pipe", "--dry-run", "--run"]
    ok = subprocess.run(run + ["dgx"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and "submit" in ok.stdout, ok.stderr
    bad = subprocess.run(run + ["dgx_nourl"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("error: profile 'dgx_nourl': executor = 'dgxcloud' needs base_url")
    assert "submit" not in bad.stdout and not (tmp_path / "s" / "jobs").exists()
