"""DGX Cloud, Lepton and SkyPilot profiles through the real CLI: `--dry-run` prints the request nemo-run's
own builders make (DGXCloudExecutor.create_training_job, LeptonExecutor.create_lepton_job), sent nowhere;
a real submit without credentials fails in one line; secret values never appear."""

from __future__ import annotations

import json
import os
import shutil
import socket
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


def nemotron(tmp_path: Path, *args: str, dry_run: bool = True, home: Path | None = None) -> subprocess.CompletedProcess:
    (tmp_path / "env.toml").write_text(ENV_TOML)
    env = {k: v for k, v in os.environ.items() if k not in ("DGXC_APP_ID", "DGXC_APP_SECRET", "LEPTON_WORKSPACE_TOKEN")}
    env.update(NEMOTRON_ENV_FILE=str(tmp_path / "env.toml"), NEMOTRON_STATE_DIR=str(tmp_path / "s"), HF_TOKEN=SECRET,
               COLUMNS="200")
    if home is not None:  # importing SkyPilot writes ~/.sky (user hash, locks): keep it under the test's folder
        home.mkdir(exist_ok=True)
        env["HOME"] = str(home)
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
        if _sky_installed():
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
    # nothing half-written: no file stays but the content key's lock
    left = [p for p in (tmp_path / "s").rglob("*") if p.is_file() and p.suffix != ".lock"]
    assert not left, left


def _sky_installed() -> bool:
    # find_spec, not `import sky`: importing SkyPilot writes ~/.sky/user_hash
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('sky') is None)"
    return subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c", probe], capture_output=True).returncode == 0


def test_skypilot_dry_run_prints_the_task_skypilot_accepts(tmp_path):
    """Needs the [skypilot] extra; SkyPilot's schema re-reads the task the CLI prints."""
    if not _sky_installed():
        pytest.skip("the [skypilot] extra is not installed")
    import yaml

    proc = nemotron(tmp_path, "--run", "sky", home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr
    task = yaml.safe_load(proc.stdout.split("not launched:\n", 1)[1].split("\nwould publish", 1)[0])
    assert task["name"] == "nano3-data-prep-pretrain"  # SkyPilot refuses '/' in task names
    assert task["num_nodes"] == 2 and task["resources"]["accelerators"] == {"H100": 8}
    assert task["resources"]["infra"] == "aws/us-east-1" and task["resources"]["use_spot"] is True
    # a container image, not a VM image: SkyPilot reads a bare image_id as an AMI on AWS
    assert task["resources"]["image_id"] == {"us-east-1": "docker:nvcr.io/nvidia/nemo:25.09"}
    assert task["file_mounts"]["/data"] == "/tmp" and "data_prep.py --config /nemo_run/train.yaml" in task["run"]
    assert SECRET not in proc.stdout + proc.stderr


# SkyPilot's own launch dry-run, offline. Its code path: `sky check aws` (the AWS CLI, STS
# GetCallerIdentity, EC2 DescribeAvailabilityZones) -> the optimizer over its catalogs
# ($SKY_RUNTIME_DIR/.sky/catalogs/<schema>/...: read from disk, fetched from GitHub only when a file is
# missing) -> the AWS provisioner's dry-run (EC2 DescribeImages for the AMI's root device). Here the AWS
# API is the local moto server and the catalog is a few rows written where SkyPilot reads it (a file
# without a .meta md5 counts as user-edited and is never re-fetched).
# `sky.launch` is the API-server client: it starts a local SkyPilot API server (its own port and
# SKY_RUNTIME_DIR here, stopped at the end) that runs the launch; the optimizer is also called in-process
# to read the resources it chose.
SKY_DRY_RUN = r"""
import json, os, sys
import boto3, yaml
import sky
from sky import check
from sky.catalog import common
from sky.clouds import cloud

def write(name, text):
    path = common.get_catalog_path(name)  # the file SkyPilot reads
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)

gpu = "{'Gpus': [{'Name': 'H100', 'Manufacturer': 'NVIDIA', 'Count': 8, 'MemoryInfo': {'SizeInMiB': 81920}}]}"
write("aws/vms.csv", "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,"
      "Region,AvailabilityZone,Arch\n"
      f'p5.48xlarge,H100,8.0,192.0,2048.0,"{gpu}",98.32,30.0,us-east-1,use1-az1,x86_64\n'
      "m6i.2xlarge,,,8.0,32.0,,0.384,0.1,us-east-1,use1-az1,x86_64\n")
ami = boto3.client("ec2").register_image(Name="sky-gpu", RootDeviceName="/dev/sda1")["ImageId"]
write("aws/images.csv", f"Tag,Region,OS,OSVersion,ImageId,CreationDate\n"
      f"skypilot:custom-gpu-ubuntu-cuda13,us-east-1,ubuntu,22.04,{ami},20250101\n")
write("aws/instance_quota_mapping.csv", "InstanceType,OnDemandInstanceCode,SpotInstanceCode\n")
write("common/accelerators.csv", "AcceleratorName,Clouds\nH100,['AWS']\n")
write("common/metadata.csv", "GPU,MemoryGB,Manufacturer\nH100,80,NVIDIA\n")

enabled = check.check_capability(cloud.CloudCapability.COMPUTE, quiet=True, clouds=["aws"])
with open(sys.argv[1]) as f:
    config = yaml.safe_load(f)
task = sky.Task.from_yaml_config(config)
dag = sky.Dag()
dag.add(task)
sky.Optimizer.optimize(dag, quiet=True)
best = task.best_resources
try:
    sky.stream_and_get(sky.launch(task, dryrun=True, cluster_name="nemotron-dry-run"))
finally:
    sky.api_stop()  # the server on this test's port only
print("RESULT " + json.dumps({"enabled": {k: [str(c) for c in v] for k, v in enabled.items()},
    "cloud": str(best.cloud), "region": best.region, "instance_type": best.instance_type,
    "accelerators": best.accelerators, "use_spot": best.use_spot, "disk_size": best.disk_size,
    "image_id": best.image_id, "num_nodes": task.num_nodes, "run": task.run}))
"""


@pytest.mark.slow  # about 2 minutes on 2 loaded cores: SkyPilot's API server start dominates
def test_skypilot_launch_dry_run_accepts_the_task(tmp_path, s3_server):
    """The task our skypilot profile builds (create_executor -> nemo-run's SkypilotExecutor.to_task, printed
    by --dry-run) through SkyPilot's own `launch(dryrun=True)`: credential check, optimizer, provisioner."""
    if not _sky_installed():
        pytest.skip("the [skypilot] extra is not installed")
    if shutil.which("aws") is None:
        pytest.skip("SkyPilot's `sky check aws` runs the AWS CLI: pip install awscli")
    if shutil.which("rsync") is None:
        pytest.skip("SkyPilot's provisioner (dry-run included) refuses to start without rsync: apt-get install rsync")
    import yaml

    proc = nemotron(tmp_path, "--run", "sky", home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr
    task_yaml = tmp_path / "task.yaml"
    task_yaml.write_text(proc.stdout.split("not launched:\n", 1)[1].split("\nwould publish", 1)[0])
    # the job folder a real submit fills (nemo-run's packaged code) before launching; --dry-run writes nothing
    Path(yaml.safe_load(task_yaml.read_text())["file_mounts"]["/nemo_run"]).mkdir(parents=True)
    home = tmp_path / "sky-home"  # SkyPilot's state, catalogs and locks: HOME and SKY_RUNTIME_DIR, this test's only
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SKYPILOT_"))}
    with socket.socket() as free:  # a port of its own for SkyPilot's local API server
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env.update(s3_server.env, HOME=str(home), SKY_RUNTIME_DIR=str(home), TMPDIR=str(home),
               SKYPILOT_API_SERVER_LOCAL_PORT=str(port))
    sky = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c", SKY_DRY_RUN, str(task_yaml)], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert sky.returncode == 0 and "Dryrun finished." in sky.stdout + sky.stderr, sky.stdout[-3000:] + sky.stderr[-3000:]
    result = json.loads(sky.stdout.split("RESULT ", 1)[1].splitlines()[0])
    assert result["enabled"] == {"default": ["AWS"]}
    assert (result["cloud"], result["region"], result["instance_type"]) == ("AWS", "us-east-1", "p5.48xlarge")
    assert result["accelerators"] == {"H100": 8} and result["num_nodes"] == 2
    assert result["use_spot"] is True and result["disk_size"] == 500
    assert result["image_id"] == {"us-east-1": "docker:nvcr.io/nvidia/nemo:25.09"}
    assert "data_prep.py --config /nemo_run/train.yaml" in result["run"]
    assert SECRET not in sky.stdout + sky.stderr
    # a real submit with that access: SkyPilot's check passes, then the one-line stop (launching is not built)
    submit = subprocess.run([str(REPO / ".venv" / "bin" / "nemotron"), "nano3", "data", "prep", "pretrain", "-c",
                             "tiny", "--batch", "sky"], env={**env, "NEMOTRON_ENV_FILE": str(tmp_path / "env.toml"),
                            "NEMOTRON_STATE_DIR": str(tmp_path / "s2")}, cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert submit.returncode != 0 and submit.stderr.startswith(
        "error: profile 'sky': SkyPilot can reach AWS, but launching and tracking its clusters is not built"), submit.stderr
    assert submit.stderr.count("\n") == 1


def test_skypilot_submit_without_cloud_access_fails_in_one_line(tmp_path):
    """SkyPilot's own `sky check aws` decides (no AWS credentials here): one line naming the profile."""
    if not _sky_installed():
        pytest.skip("the [skypilot] extra is not installed")
    (tmp_path / "env.toml").write_text(ENV_TOML)
    (tmp_path / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SKYPILOT_"))}
    env.update(NEMOTRON_ENV_FILE=str(tmp_path / "env.toml"), NEMOTRON_STATE_DIR=str(tmp_path / "s"),
               HOME=str(tmp_path / "home"), HF_TOKEN=SECRET)
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "nemotron"), "nano3", "data", "prep", "pretrain", "-c", "tiny",
                           "--batch", "sky"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and proc.stderr == (
        "error: profile 'sky': SkyPilot has no access to AWS (`sky check aws` says what is missing); "
        "`--dry-run` shows the task without it\n"), proc.stderr
    assert SECRET not in proc.stdout + proc.stderr and not list((tmp_path / "s").rglob("secrets.env"))


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
