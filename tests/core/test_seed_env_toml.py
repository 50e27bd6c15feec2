"""env.toml in the seed's conventions: the guide's Slurm profiles (SSH tunnel, run/batch partitions,
mounts, startup commands, `extends`), the top-level `[wandb]`, the seed's `[artifacts]` shapes and
`[cli] theme`. The profiles are written here from the guide's documented keys; the dry runs go
through the real `nemotron` binary (no cluster is contacted: the host is under .invalid)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nemotron_core.errors import ProfileError
from nemotron_core.profile_sections import artifacts_section, cli_theme
from nemotron_core.profiles import parse_env_text

NEMOTRON = Path(sys.executable).with_name("nemotron")

GUIDE = """\
[wandb]
project = "nemotron"
entity = "my-team"

[artifacts]
backend = "file"
root = "{root}/artifacts"

[cache]
git_dir = "{root}/git-cache"

[cli]
theme = "github-light"

[local]
executor = "local"
nproc_per_node = 2

[my-cluster]
executor = "slurm"
account = "my-account"
partition = "batch"
run_partition = "interactive"
batch_partition = "backfill"
time = "04:00:00"
tunnel = "ssh"
host = "login.cluster.invalid"
user = "me"
identity = "~/.ssh/id_rsa"
remote_job_dir = "/lustre/users/me/run"

[pretrain]
extends = "my-cluster"
nodes = 2
ntasks_per_node = 8
gpus_per_node = 8
mem = "0"
exclusive = true
container_image = "/lustre/images/nano3.sqsh"
mounts = ["/lustre:/lustre"]
startup_commands = ["source /opt/env.sh"]

[pretrain-large]
extends = "pretrain"
nodes = 8
time = "08:00:00"

[data-prep]
extends = "my-cluster"
run_partition = "cpu"
batch_partition = "cpu"
nodes = 1
ntasks_per_node = 1
cpus_per_task = 96

[builds]
extends = "my-cluster"
build_partition = "cpu"
build_time = "02:00:00"
packager = "git"

[own-wandb]
extends = "my-cluster"
wandb = {{ project = "scratch" }}
"""


def dry_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "env.toml").write_text(GUIDE.format(root=tmp_path))
    env = {**os.environ, "NEMOTRON_ENV_FILE": str(tmp_path / "env.toml"), "NEMOTRON_STATE_DIR": str(tmp_path / "state"),
           "COLUMNS": "400"}
    return subprocess.run([str(NEMOTRON), *args, "--dry-run"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env=env)


def test_the_guide_file_loads_and_every_profile_resolves(tmp_path):
    env = parse_env_text(GUIDE.format(root=tmp_path))
    large = env.profile("pretrain-large")
    assert large.chain == ("pretrain-large", "pretrain", "my-cluster")
    assert (large.get("nodes"), large.get("time"), large.get("partition"), large.get("tunnel")) == \
        (8, "08:00:00", "batch", "ssh")
    assert env.profile("data-prep").get("cpus_per_task") == 96
    assert env.profile("builds").get("build_partition") == "cpu"
    assert env.section("artifacts") == {"backend": "file", "root": f"{tmp_path}/artifacts"}


def test_top_level_wandb_is_every_profiles_default(tmp_path):
    env = parse_env_text(GUIDE.format(root=tmp_path))
    for name in ("local", "pretrain", "data-prep"):
        assert env.profile(name).get("wandb") == {"project": "nemotron", "entity": "my-team"}, name
    assert env.profile("own-wandb").get("wandb") == {"project": "scratch", "entity": "my-team"}


@pytest.mark.parametrize("flag,partition", [("--run", "interactive"), ("--batch", "backfill"), ("-b", "backfill")])
def test_the_guide_slurm_profile_dry_runs_with_its_partition_mounts_startup_and_wandb(tmp_path, flag, partition):
    out = dry_run(tmp_path, "nano3", "pretrain", flag, "pretrain")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert f"#SBATCH --partition={partition}" in text and "#SBATCH --nodes=2" in text
    assert "#SBATCH --account=my-account" in text
    assert "source /opt/env.sh" in text and "/lustre:/lustre" in text
    assert "--container-image /lustre/images/nano3.sqsh" in text
    assert "export WANDB_PROJECT=nemotron" in text and "export WANDB_ENTITY=my-team" in text
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").rglob("job.yaml"))


def test_a_cpu_profile_from_the_guide_dry_runs_data_prep(tmp_path):
    out = dry_run(tmp_path, "nano3", "data", "prep", "sft", "-r", "data-prep")
    assert out.returncode == 0, out.stderr
    assert "#SBATCH --partition=cpu" in out.stdout and "export WANDB_PROJECT=nemotron" in out.stdout


def test_local_jobs_get_the_top_level_wandb_too(tmp_path):
    from nemotron_core.execution import build_env_vars

    env = parse_env_text(GUIDE.format(root=tmp_path))
    job_env = build_env_vars(None, env.profile("local"))
    assert (job_env["WANDB_PROJECT"], job_env["WANDB_ENTITY"]) == ("nemotron", "my-team")


def test_seed_artifacts_shapes_read_as_ours():
    wandb = {"project": "nemotron", "entity": "team"}
    assert artifacts_section({"manifest": {"root": "/lustre/arts"}}, wandb, "e") == {"root": "/lustre/arts"}
    assert artifacts_section({"wandb": True}, wandb, "e") == {"backend": "wandb", "project": "nemotron", "entity": "team"}
    assert artifacts_section({"wandb": True, "manifest": {"root": "/a"}}, wandb, "e") == {"root": "/a"}
    assert artifacts_section({"wandb": False, "root": "/b"}, wandb, "e") == {"root": "/b"}
    assert artifacts_section({"root": "s3://b/p", "storage_options": {"anon": False}}, {}, "e") == \
        {"root": "s3://b/p", "storage_options": {"anon": False}}


@pytest.mark.parametrize("raw,message", [
    ({"manifest": "/a"}, "[artifacts] manifest = '/a': must be a table"),
    ({"manifest": {"rot": "/a"}}, "[artifacts.manifest] unknown key 'rot' (did you mean 'root'?)"),
    ({"manifest": {"root": "/a"}, "root": "/b"}, "[artifacts] root and [artifacts.manifest] root differ"),
    ({"wandb": "yes"}, "[artifacts] wandb = 'yes': must be true or false"),
])
def test_seed_artifacts_mistakes_are_one_line(raw, message):
    with pytest.raises(ProfileError) as err:
        artifacts_section(raw, {}, "env.toml")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_manifest_root_is_the_registry(tmp_path):
    (tmp_path / "env.toml").write_text(f'[artifacts.manifest]\nroot = "{tmp_path}/arts"\n')
    env = {**os.environ, "NEMOTRON_ENV_FILE": str(tmp_path / "env.toml"), "NEMOTRON_STATE_DIR": str(tmp_path / "s")}
    out = subprocess.run([str(NEMOTRON), "artifacts", "list", "--json"], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    from nemotron_core.artifacts import open_registry
    from nemotron_core.profiles import load_env

    registry = open_registry(load_env(tmp_path / "env.toml").section("artifacts"))
    assert repr(registry) == f"FsspecRegistry('file://{tmp_path}/arts')"


def test_cli_theme():
    assert cli_theme({"theme": "monokai"}, "e") == "monokai"
    assert cli_theme({"theme": "github-light"}, "e") is None  # the guide's name: rich's default style, as in the seed
    assert cli_theme({}, "e") is None
    with pytest.raises(ProfileError, match=r"\[cli\] theme = 3: must be a string"):
        cli_theme({"theme": 3}, "e")
    with pytest.raises(ProfileError, match=r"\[cli\] theme = 3: must be a string"):
        parse_env_text("[cli]\ntheme = 3\n")
