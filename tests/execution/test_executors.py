"""create_executor and the sbatch text: resources precedence, tags, secrets kept out (no cluster needed)."""

from __future__ import annotations

import pytest

from nemotron_core.errors import ProfileError
from nemotron_core.execution import build_env_vars, create_executor, get_startup_commands, job_paths
from nemotron_core.execution.backends.slurm import render_job_script
from nemotron_core.profiles import parse_env_text
from nemotron_core.runspec import parse

from tests.execution.conftest import JOB_RECIPE, RANKS_RECIPE, REPO, slurm_profile

ECHO = REPO / "tests/fixtures/recipes/echo/echo.py"  # runspec: 2 nodes x 8 GPUs, image python:3.11


def profile(text: str, name: str):
    return parse_env_text(text).profile(name)


def test_slurm_executor_fields_and_resource_precedence(state):
    spec = parse(ECHO)
    p = profile('[c]\nexecutor = "slurm"\naccount = "acct"\npartition = "batch"\nrun_partition = "interactive"\n'
                'time = "01:00:00"\nmounts = ["/data:/data"]\n', "c")
    ex = create_executor(p, spec)  # runspec only
    assert type(ex).__name__ == "SlurmJobExecutor"  # ours: nemo-run's field names, no nemo-run import
    assert (ex.nodes, ex.gpus_per_node, ex.ntasks_per_node) == (2, 8, 8)
    assert (ex.account, ex.partition, ex.time) == ("acct", "interactive", "01:00:00")  # attached: run_partition
    assert ex.container_image == "python:3.11" and ex.container_mounts == ["/data:/data"]
    assert ex.tunnel.kind == "local"
    assert create_executor(p, spec, attached=False).partition == "batch"

    p2 = profile('[c]\nexecutor = "slurm"\nnodes = 4\ngpus_per_node = 2\ncontainer_image = ""\n', "c")
    ex = create_executor(p2, spec)  # profile over runspec
    assert (ex.nodes, ex.gpus_per_node, ex.container_image) == (4, 2, None)
    ex = create_executor(p2, spec, nodes=1, gpus_per_node=1)  # CLI over both
    assert (ex.nodes, ex.gpus_per_node, ex.ntasks_per_node) == (1, 1, 1)


def test_local_executor_takes_nproc_from_the_profile(state):
    ex = create_executor(profile('[local]\nnproc_per_node = 3\n', "local"), parse(REPO / RANKS_RECIPE))
    assert type(ex).__name__ == "LocalExecutor" and ex.ntasks_per_node == 3
    assert ex.launcher == "torchrun"
    assert create_executor(profile("", "local"), parse(REPO / JOB_RECIPE)).launcher is None


def test_env_vars_hold_no_secrets_and_startup_commands_are_checked(state, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_should_not_appear")
    p = profile('[c]\nexecutor = "slurm"\nstartup_commands = ["module load x"]\n[c.env]\nFOO = "1"\n'
                '[c.wandb]\nproject = "proj"\n', "c")
    env = build_env_vars(None, p)
    assert env["FOO"] == "1" and env["WANDB_PROJECT"] == "proj" and env["NEMOTRON_STATE_DIR"] == str(state)
    assert "HF_TOKEN" not in env and "hf_should_not_appear" not in env.values()
    assert get_startup_commands(p) == ["module load x"]
    with pytest.raises(ProfileError, match="startup_commands"):
        get_startup_commands(profile('[c]\nstartup_commands = "oops"\n', "c"))
    with pytest.raises(ProfileError, match="is a secret"):
        create_executor(p, parse(ECHO), env_vars={"MY_TOKEN": "x"})


def test_profile_errors_are_one_line(state):
    spec = parse(ECHO)
    with pytest.raises(ProfileError, match="tunnel = 'ssh' needs host"):
        create_executor(profile('[c]\nexecutor = "slurm"\ntunnel = "ssh"\n', "c"), spec)
    with pytest.raises(ProfileError, match="needs address"):
        create_executor(profile('[r]\nexecutor = "ray"\n', "r"), spec)
    with pytest.raises(ProfileError, match="executor = 'docker' runs one container on one host"):  # spec: 2 nodes
        create_executor(profile('[d]\nexecutor = "docker"\n', "d"), spec)


def test_sbatch_text_is_tagged_sources_secrets_quietly_and_writes_nothing(stage, state, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "wandb_value_never_written")
    s = stage(JOB_RECIPE, slurm_profile(ntasks_per_node=2, startup_commands=["echo started"]), "slurm", "sleep=1",
              passthrough=["--flag", "two words"])
    before = sorted(p.name for p in s.job_dir.iterdir())
    text = render_job_script(s.executor, s.plan, s.job_dir, flow_run_id="flow-9", content_key="key-9")
    assert sorted(p.name for p in s.job_dir.iterdir()) == before  # job.yaml/train.yaml only
    assert "#SBATCH --job-name=nemotron-test-job" in text
    assert f"#SBATCH --comment=nemotron:flow_run=flow-9;key=key-9;job={s.job_dir.name}" in text.replace("'", "")
    assert "#SBATCH --ntasks-per-node=2" in text and "#SBATCH --time=00:05:00" in text
    quiet = text.index("{ set +vx; } 2>/dev/null")
    assert text.index(f". {s.job_dir}/secrets.env") > quiet and text.index("echo started") > quiet
    assert "wandb_value_never_written" not in text and "WANDB_API_KEY" not in text
    assert "export JOB_GREETING=hello" in text  # runspec env is plain env
    code = job_paths(s.executor, s.job_dir).code
    assert f"{code}/tests/fixtures/recipes/job/job.py --config {s.job_dir}/train.yaml --flag 'two words'" in text


def test_torchrun_recipe_uses_nemo_runs_launcher_on_slurm(stage):
    s = stage(RANKS_RECIPE, slurm_profile(nodes=2, ntasks_per_node=2), "slurm")
    text = render_job_script(s.executor, s.plan, s.job_dir)
    assert "#SBATCH --nodes=2" in text and "#SBATCH --ntasks-per-node=1" in text
    assert "torchrun --rdzv-backend c10d --rdzv-endpoint $head_node_ip:29500" in text
    assert "--nnodes 2 --nproc-per-node 2 --node-rank $SLURM_NODEID" in text


def test_ray_recipe_on_slurm_renders_nemo_runs_ray_job(stage, tmp_path):
    recipe = tmp_path / "rayjob.py"
    recipe.write_text((REPO / JOB_RECIPE).read_text().replace('launch = "direct"', 'launch = "ray"'))
    (tmp_path / "config").symlink_to(REPO / "tests/fixtures/recipes/job/config")
    s = stage(str(recipe), slurm_profile(nodes=2, container_image="nvcr.io/nvidia/nemo:25.11"), "slurm")
    text = render_job_script(s.executor, s.plan, s.job_dir)
    assert "ray start --head" in text and "#SBATCH --nodes=2" in text
    assert "--container-image=nvcr.io/nvidia/nemo:25.11" in text
    assert "python /nemo_run/code/" in text and "/nemo_run/train.yaml" in text  # paths as the container sees them
    assert f". {s.job_dir}/secrets.env" in text
