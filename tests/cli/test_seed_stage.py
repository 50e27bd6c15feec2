"""`--stage` and `--force-squash` on a recipe command, through main() with the echo test recipe."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest
import typer

from nemotron_cli.app import main
from nemotron_cli.recipe_typer import RecipeTyper
from nemotron_core.execution.backends.slurm import list_tagged
from pipeline.stages import Stage

from tests.execution.conftest import slurm_profile
from tests.reliability.fuzzing_hostile import job_app

ECHO = "tests/fixtures/recipes/echo/echo.py"


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("NEMOTRON_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.setenv("NEMOTRON_ENV_FILE", str(tmp_path / "env.toml"))
    (tmp_path / "env.toml").write_text('[cluster]\nexecutor = "slurm"\naccount = "a"\nsquash = true\n'
                                       f'squash_dir = "{tmp_path}/images"\ncontainer_image = "img:1"\n'
                                       '[plain]\nexecutor = "slurm"\naccount = "a"\n'
                                       '[box]\nexecutor = "docker"\ncontainer_image = "img:1"\nnodes = 1\n')
    monkeypatch.chdir(tmp_path)
    stage = Stage("test/echo", ECHO, output="test-echo", output_what="a copy of the config")
    app = RecipeTyper(name="t")

    @app.recipe(stage, name="echo", panel="Test", help="Echo the config.")
    def echo(ctx: typer.Context) -> None:
        from nemotron_cli.context import split_dotlist
        from nemotron_cli.recipe_run import run_recipe

        raise typer.Exit(run_recipe(stage, ctx.obj, split_dotlist(ctx.args)))

    @app.command("noop")
    def noop() -> None:
        pass

    return app


def test_stage_writes_the_job_files_and_the_line_runs_it(cli, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MY_TEST_TOKEN", "tok-" + "x" * 20)
    assert main(["echo", "-c", "tiny", "~output_dir", "--stage", "+x=42"], cli=cli) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("run it by hand: "))
    (job_dir,) = [p.parent for p in (tmp_path / "state").rglob("launch.sh")]
    assert {p.name for p in job_dir.iterdir()} == {"job.yaml", "train.yaml", "launch.sh", "secrets.env"}
    assert stat.S_IMODE((job_dir / "secrets.env").stat().st_mode) == 0o600
    assert not list((tmp_path / "state").rglob("echo.json"))  # nothing ran
    assert "tok-" not in out and "tok-" not in (job_dir / "launch.sh").read_text()
    done = subprocess.run(["bash", "-c", line.removeprefix("run it by hand: ")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    (record,) = list((tmp_path / "state").rglob("echo.json"))
    assert json.loads(record.read_text())["config"]["x"] == 42


def test_stage_under_dry_run_does_nothing_more(cli, tmp_path, capsys):
    assert main(["echo", "--stage", "-d"], cli=cli) == 0
    assert "staged" not in capsys.readouterr().out
    assert not (tmp_path / "state").exists() or not list((tmp_path / "state").rglob("job.yaml"))


def test_stage_on_a_docker_profile_is_one_line(cli, capsys):
    assert main(["echo", "--stage", "-b", "box"], cli=cli) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --stage: profile 'box' (docker)") and err.count("\n") == 1


def test_force_squash_dry_run_prints_the_import(cli, capsys):
    assert main(["echo", "--force-squash", "-r", "cluster", "-d"], cli=cli) == 0
    out = capsys.readouterr().out
    assert "# --force-squash: the import runs again" in out and "enroot import" in out and "img+1.sqsh" in out


def test_force_squash_needs_a_squash_profile(cli, capsys):
    assert main(["echo", "--force-squash", "-r", "plain", "-d"], cli=cli) == 2
    err = capsys.readouterr().err
    assert "--force-squash: profile 'plain' runs no enroot squash file" in err and err.count("\n") == 1


@pytest.mark.slurm
def test_stage_on_slurm_puts_the_files_on_the_cluster_and_the_line_submits_it(tmp_path, slurm_cluster, monkeypatch,
                                                                              capsys):
    from nemotron_core.secrets import is_secret_name

    for name in [n for n in os.environ if is_secret_name(n)]:  # this test decides which secrets exist
        monkeypatch.delenv(name)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no login file from this machine's HOME either
    monkeypatch.setenv("MY_TEST_TOKEN", "tok-" + "y" * 20)
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    monkeypatch.setenv("NEMOTRON_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.delenv("NEMOTRON_ENV_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("")  # env.toml lookup stops here
    (tmp_path / "env.toml").write_text(slurm_profile())
    app = job_app()
    out_dir = tmp_path / "out"
    # Jobs of earlier tests stay listed until Slurm purges them (MinJobAge): only a new one counts.
    earlier = {j["id"] for j in list_tagged()}
    assert main(["job", "-b", "slurm", "--stage", f"output_dir={out_dir}", "check_env=MY_TEST_TOKEN"],
                cli=app) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("run it by hand: ")).removeprefix("run it by hand: ")
    (job_dir,) = [p.parent for p in (tmp_path / "state").rglob("sbatch.sh")]
    assert line == f"sbatch {job_dir}/sbatch.sh"
    assert {"job.yaml", "train.yaml", "sbatch.sh", "secrets.env", "code"} <= {p.name for p in job_dir.iterdir()}
    assert stat.S_IMODE((job_dir / "secrets.env").stat().st_mode) == 0o600
    assert not (job_dir / "jobref.json").exists() and "tok-" not in out + (job_dir / "sbatch.sh").read_text()
    assert {j["id"] for j in list_tagged()} <= earlier  # nothing submitted
    done = subprocess.run(["bash", "-c", line.replace("sbatch ", "sbatch --wait ", 1)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(out_dir.glob("task-0-*.txt"))  # the job ran
    log = "".join(p.read_text() for p in job_dir.glob("*.out"))
    assert "secret MY_TEST_TOKEN present=True" in log and "tok-" not in log
