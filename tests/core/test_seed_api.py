"""The seed's toolkit API under its names: a recipe command written the seed's way runs here.

The command (written below as a file, run as its own program) does what a `nemo_runspec` command
does: metadata from the script's runspec, then 1. parse config, 2. build executor, 3. run — with
`nemo_runspec` spelled `nemotron_core`. It runs a tiny script for real locally, and renders the
sbatch script of a Slurm profile under --dry-run while a stub `sbatch` on PATH proves that
nothing is submitted.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

SCRIPT = '''\
# /// script
# [tool.runspec]
# schema = "1"
# name = "demo/train"
# [tool.runspec.run]
# launch = "direct"
# [tool.runspec.resources]
# gpus_per_node = 0
# ///
import argparse, os, sys
import yaml

parser = argparse.ArgumentParser()
parser.add_argument("--config", required=True)
args, rest = parser.parse_known_args()
cfg = yaml.safe_load(open(args.config))
print(f"steps={cfg['train']['steps']} lr={cfg['train']['lr']} rest={rest} greeting={os.environ.get('GREETING')}")
sys.exit(cfg["train"].get("exit_code", 0))
'''

COMMAND = '''\
from pathlib import Path

import typer

from nemotron_core import parse as parse_runspec
from nemotron_core.config import build_job_config, extract_train_config, generate_job_dir, parse_config, save_configs
from nemotron_core.env import parse_env
from nemotron_core.execution import build_env_vars, create_executor, execute_local, execute_remote, get_startup_commands
from nemotron_core.recipe_config import RecipeConfig, parse_recipe_config
from nemotron_core.recipe_typer import RecipeMeta, RecipeTyper

SCRIPT_PATH = str(Path(__file__).parent / "train.py")
SPEC = parse_runspec(SCRIPT_PATH)
META = RecipeMeta(name=SPEC.name, script_path=SCRIPT_PATH, config_dir=str(SPEC.config_dir),
                  default_config=SPEC.config.default, output_artifacts={"model": "the toy's weights"})


def _execute(cfg: RecipeConfig) -> None:
    # 1. Parse configuration
    train_config = parse_config(cfg.ctx, SPEC.config_dir, SPEC.config.default)
    env = parse_env(cfg.ctx)
    job_config = build_job_config(train_config, cfg.ctx, SPEC.name, SCRIPT_PATH, cfg.argv, env_profile=env)
    job_dir = generate_job_dir(SPEC.name)
    env_vars = build_env_vars(job_config, env)
    env_vars["GREETING"] = "hello"
    # 2. Build the executor; 3. run
    if cfg.mode == "local":
        if cfg.dry_run:
            print("dry run: would run", SCRIPT_PATH)
            return
        _, train_path = save_configs(job_config, extract_train_config(job_config), job_dir)
        execute_local(SCRIPT_PATH, train_path, cfg.passthrough, torchrun=False, env_vars=env_vars,
                      startup_commands=get_startup_commands(env))
        return
    executor = create_executor(env=env, env_vars=env_vars, packager=None, attached=cfg.attached,
                               default_image=SPEC.image, script_resources=SPEC.resources)
    train_path = job_dir / "train.yaml"
    if not cfg.dry_run:
        save_configs(job_config, extract_train_config(job_config, for_remote=True), job_dir)
    raise typer.Exit(execute_remote(SCRIPT_PATH, train_path, env, executor, cfg.passthrough,
                                    attached=cfg.attached, dry_run=cfg.dry_run))


def train(ctx: typer.Context) -> None:
    """Train the toy (the seed's command shape)."""
    _execute(parse_recipe_config(ctx))


app = RecipeTyper(name="demo", help="Demo recipes")


@app.callback()
def main() -> None:
    """Demo recipes."""


app.add_recipe_command(train, meta=META, rich_help_panel="Training")

if __name__ == "__main__":
    app()
'''

ENV_TOML = '''\
[cluster]
executor = "slurm"
account = "acct"
partition = "cpu"
time = "00:05:00"
container_image = ""
'''


@pytest.fixture
def demo(tmp_path):
    """A recipe folder (script, configs, command), an env.toml, a state folder and a stub sbatch."""
    root = tmp_path / "demo"
    (root / "config").mkdir(parents=True)
    (root / "train.py").write_text(SCRIPT)
    (root / "config" / "default.yaml").write_text("train:\n  steps: 100\n  lr: 0.1\n")
    (root / "config" / "tiny.yaml").write_text("train:\n  steps: 3\n  lr: 0.5\n")
    (root / "cmd.py").write_text(COMMAND)
    (root / "env.toml").write_text(ENV_TOML)
    stub = tmp_path / "bin"
    stub.mkdir()
    marker = tmp_path / "sbatch-called"
    (stub / "sbatch").write_text(f"#!/bin/sh\ntouch {marker}\necho 'Submitted batch job 1'\n")
    (stub / "sbatch").chmod(stat.S_IRWXU)
    state = tmp_path / "state"
    env = {**os.environ, "NEMOTRON_STATE_DIR": str(state), "NEMOTRON_ENV_FILE": str(root / "env.toml"),
           "PATH": f"{stub}:{os.environ['PATH']}", "PYTHONPATH": str(REPO)}

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(root / "cmd.py"), *args], capture_output=True, text=True,
                              timeout=180, cwd=tmp_path, env={**env, **extra})

    return run, state, marker


def test_seed_command_runs_locally(demo):
    run, state, _ = demo
    out = run("train", "-c", "tiny", "train.lr=0.25", "--", "--extra")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "steps=3 lr=0.25 rest=['--extra'] greeting=hello" in out.stdout
    (job_dir,) = (state / "jobs" / "demo-train").iterdir()
    job = yaml.safe_load((job_dir / "job.yaml").read_text())
    assert job["train"] == {"steps": 3, "lr": 0.25}
    assert job["run"]["cli"]["dotlist"] == ["train.lr=0.25"] and job["run"]["cli"]["config"] == "tiny"
    assert "steps=3" in (job_dir / "job.log").read_text()


def test_seed_command_passes_the_scripts_exit_code(demo):
    run, _, _ = demo
    out = run("train", "+train.exit_code=3")
    assert out.returncode == 3, out.stdout + out.stderr
    assert "steps=100" in out.stdout


def test_seed_command_slurm_dry_run_renders_sbatch_and_submits_nothing(demo):
    run, state, marker = demo
    out = run("train", "-c", "tiny", "--batch", "cluster", "-d")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "#SBATCH --account=acct" in out.stdout and "#SBATCH --partition=cpu" in out.stdout
    assert "train.py" in out.stdout and "--config" in out.stdout
    assert not marker.exists()  # sbatch never ran
    assert not (state / "jobs").exists()  # and nothing was written


def test_seed_command_errors_are_one_line(demo):
    run, _, _ = demo
    for args, words in ((["train", "--run", "nope"], "nope"), (["train", "-r", "cluster", "-b", "cluster"], "exclusive"),
                        (["train", "-c", "huge"], "huge")):
        out = run(*args)
        assert out.returncode == 2, out.stdout + out.stderr
        assert out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert words in out.stderr and "Traceback" not in out.stderr


def test_seed_help_shows_the_recipe(demo):
    run, _, _ = demo
    out = run("train", "--help")
    assert out.returncode == 0, out.stderr
    assert "default, tiny" in out.stdout and "the toy's weights" in out.stdout


def test_seed_names_take_the_seeds_arguments(tmp_path):
    """The readers accept the seed's shapes (a run.env mapping) and the names live where the seed has them."""
    from nemotron_core.execution import get_startup_commands
    from nemotron_core.recipe_config import RunContext, split_words
    from nemotron_core.squash import ensure_squashed_image  # noqa: F401  (the seed's module shape)

    assert get_startup_commands({"startup_commands": ["source /opt/env.sh"]}) == ["source /opt/env.sh"]
    assert get_startup_commands(None) == []
    ctx = split_words(["-c", "tiny", "a.b=1", "~c", "--mock", "--run=dev", "--", "x=2"], RunContext())
    assert (ctx.config, ctx.run, ctx.dotlist, ctx.passthrough) == ("tiny", "dev", ["a.b=1", "~c"], ["--mock", "x=2"])
    assert ctx.mode == "run" and ctx.attached
    # Under the nemotron CLI the globals come parsed in ctx.obj (its GlobalContext) and ctx.args holds the overrides.
    from nemotron_cli.context import split_argv
    from nemotron_core.recipe_config import parse_recipe_config

    rest, g = split_argv(["nano3", "sft", "-c", "tiny", "a=1", "-r", "dev", "--", "--mock"])
    cfg = parse_recipe_config(SimpleNamespace(obj=g, args=rest[2:]))
    assert (cfg.config, cfg.profile, cfg.mode, cfg.dotlist, cfg.passthrough) == ("tiny", "dev", "run", ["a=1"], ["--mock"])
    assert cfg.argv[:2] == ["nano3", "sft"]
    ctx = split_words(["-bdev", "-ctiny", "--stage", "-d"], RunContext())
    assert (ctx.batch, ctx.config, ctx.stage, ctx.dry_run, ctx.mode, ctx.attached) == ("dev", "tiny", True, True,
                                                                                      "batch", False)


@pytest.mark.slow
def test_seed_command_runs_on_slurm(demo, slurm_cluster, tmp_path):
    """execute_remote, for real: the seed-shaped command submits to the local Slurm and follows the job."""
    run, _, marker = demo
    (tmp_path / "demo" / "env.toml").write_text(ENV_TOML.replace('"cpu"', '"debug"').replace('account = "acct"\n', ""))
    out = run("train", "-c", "tiny", "-r", "cluster", "train.steps=7", PATH=os.environ["PATH"],
              SLURM_CONF=str(slurm_cluster.conf))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "submitted demo/train: job " in out.stdout and "steps=7 lr=0.5" in out.stdout
    assert not marker.exists()  # the real sbatch, not the stub


def test_clone_git_repos_via_tunnel_clones_what_the_job_config_pins(tmp_path, monkeypatch, capfd):
    """A local bare repository over file:// (real git): the checkout build_job_config pinned is cloned."""
    monkeypatch.setenv("NEMOTRON_STATE_DIR", str(tmp_path / "state"))  # its own git cache
    from omegaconf import OmegaConf

    from nemotron_core.config import build_job_config, extract_train_config, generate_job_dir, save_configs
    from nemotron_core.execution import clone_git_repos_via_tunnel, execute_local
    from nemotron_core.recipe_config import RunContext

    def git(*args: str, cwd: Path) -> None:
        env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
               "GIT_COMMITTER_EMAIL": "t@t"}
        subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)

    bare, work = tmp_path / "lib.git", tmp_path / "work"
    git("init", "--quiet", "--bare", "-b", "main", str(bare), cwd=tmp_path)
    git("init", "--quiet", "-b", "main", str(work), cwd=tmp_path)
    (work / "f.txt").write_text("v1")
    git("add", "f.txt", cwd=work)
    git("commit", "--quiet", "-m", "one", cwd=work)
    git("tag", "v1", cwd=work)
    git("push", "--quiet", "--tags", str(bare), "main", cwd=work)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "default.yaml").write_text("{}\n")
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.split("import argparse")[0] + "import sys, yaml\n"
                      "lib = yaml.safe_load(open(sys.argv[2]))['lib']\nprint('lib says', open(lib + '/f.txt').read())\n")
    train = OmegaConf.create({"lib": f"${{auto_mount:git+file://{bare}@v1,/opt/lib}}"})
    job = build_job_config(train, RunContext(), "demo/train", str(script), ["demo"])
    assert not Path(job.lib).exists()  # resolving clones nothing
    with pytest.raises(Exception, match="pass job_config="):
        clone_git_repos_via_tunnel(None)
    # The seed's execute_local clones what the job.yaml saved beside train.yaml pins, then runs the script.
    _, train_path = save_configs(job, extract_train_config(job), generate_job_dir("demo/train"))
    execute_local(str(script), train_path, [], torchrun=False)
    assert "lib says v1" in capfd.readouterr().out
    assert clone_git_repos_via_tunnel(None, job_config=job) == [f"{job.lib}:/opt/lib"]  # reused
    assert (Path(job.lib) / "f.txt").read_text() == "v1" and Path(job.lib).parent == tmp_path / "state" / "cache" / "git"
