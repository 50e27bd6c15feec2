"""The CLI on top of the execution layer: --dry-run/--run/--batch on Slurm and local profiles, `kit squash`."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from nemotron_cli.app import main
from nemotron_cli.recipe_typer import RecipeTyper
from pipeline.stages import Stage
from nemotron_core.execution import Job, JobState

from tests.execution.conftest import JOB_RECIPE, slurm_profile


@pytest.fixture
def job_cli(tmp_path, state, monkeypatch):
    """A one-command CLI wired exactly like nano3's, around the job test recipe, in a folder with env.toml."""
    monkeypatch.setenv("COLUMNS", "400")  # rich would wrap long lines at 80 columns
    monkeypatch.delenv("NEMOTRON_ENV_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("")  # env.toml lookup stops here
    meta = Stage("test/job", JOB_RECIPE)
    cli = RecipeTyper(name="t")

    @cli.recipe(meta, name="job", panel="Test", help="The execution test job.")
    def job(ctx: typer.Context) -> None:
        from nemotron_cli.context import split_dotlist
        from nemotron_cli.recipe_run import run_recipe

        raise typer.Exit(run_recipe(meta, ctx.obj, split_dotlist(ctx.args)))

    @cli.command("noop")
    def noop() -> None:
        pass

    return cli


def job_dirs(state: Path) -> list[Path]:
    base = state / "jobs" / "test-job"
    return sorted(base.iterdir()) if base.is_dir() else []


def test_dry_run_on_a_slurm_profile_prints_the_sbatch_script_and_writes_nothing(job_cli, tmp_path, state, capsys):
    (tmp_path / "env.toml").write_text(slurm_profile(account="acct", ntasks_per_node=2))
    assert main(["job", "--run", "slurm", "--dry-run", "sleep=1"], cli=job_cli) == 0
    out = capsys.readouterr().out
    assert "sbatch script" in out and "#SBATCH --job-name=nemotron-test-job" in out
    assert "#SBATCH --account=acct" in out and "#SBATCH --ntasks-per-node=2" in out
    assert "srun --output" in out and "secrets.env" in out
    assert job_dirs(state) == []


@pytest.mark.slurm
def test_run_on_slurm_waits_streams_and_returns_the_jobs_exit_code(job_cli, tmp_path, state, slurm, capsys):
    (tmp_path / "env.toml").write_text(slurm_profile())
    assert main(["job", "--run", "slurm", "exit_code=3", "sleep=1"], cli=job_cli) == 3
    captured = capsys.readouterr()
    assert "submitted slurm job" in captured.out and "task 0 slept 1 s" in captured.out
    assert "FAILED (exit code 3)" in captured.err
    (job_dir,) = job_dirs(state)
    assert (job_dir / "job.yaml").is_file() and (job_dir / "jobref.json").is_file()


@pytest.mark.slurm
def test_batch_on_slurm_submits_and_returns(job_cli, tmp_path, state, slurm, capsys):
    (tmp_path / "env.toml").write_text(slurm_profile())
    assert main(["job", "--batch", "slurm", "sleep=20"], cli=job_cli) == 0
    out = capsys.readouterr().out
    assert "submitted slurm job" in out and "logs:" in out
    (job_dir,) = job_dirs(state)
    job = Job.from_dir(job_dir)
    assert job.status(max_age=0).state in (JobState.PENDING, JobState.RUNNING)  # returned before the job ended
    assert job.wait(timeout=120).ok


def test_batch_local_runs_detached(job_cli, tmp_path, state, capsys):
    assert main(["job", "--batch", "local", "sleep=1", "exit_code=2"], cli=job_cli) == 0
    assert "submitted local job" in capsys.readouterr().out
    (job_dir,) = job_dirs(state)
    status = Job.from_dir(job_dir).wait(timeout=60)
    assert (status.state, status.exit_code) == (JobState.FAILED, 2)


def test_run_local_still_runs_in_this_process(job_cli, state, capsys):
    assert main(["job", "--run", "local", "exit_code=6"], cli=job_cli) == 6
    (job_dir,) = job_dirs(state)
    assert not (job_dir / "jobref.json").exists() and (job_dir / "job.log").is_file()


# --------------------------------------------------------------- kit squash


def test_kit_squash_dry_run_shows_the_commands(job_cli, tmp_path, state, capsys):
    (tmp_path / "env.toml").write_text(slurm_profile(account="acct"))
    assert main(["kit", "squash", "nvcr.io/nvidia/nemo:25.11", "--run", "slurm", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"test -f {state}/images/nvcr.io+nvidia+nemo+25.11.sqsh" in out
    assert "srun --nodes=1 --ntasks=1" in out and "--account=acct" in out
    assert "enroot import --output" in out and "docker://nvcr.io/nvidia/nemo:25.11" in out


def test_kit_squash_needs_a_slurm_profile(job_cli, tmp_path, capsys):
    assert main(["kit", "squash", "img:1"]) == 2
    assert "needs a Slurm profile" in capsys.readouterr().err
    assert main(["kit", "squash", "img:1", "--run", "local"]) == 2
    assert "needs a Slurm profile" in capsys.readouterr().err


@pytest.mark.slurm
def test_kit_squash_skips_an_existing_file_and_explains_a_missing_enroot(job_cli, tmp_path, state, slurm, capsys):
    (tmp_path / "env.toml").write_text(slurm_profile())
    assert main(["kit", "squash", "nvcr.io/x:1", "--run", "slurm"]) == 2  # the test cluster has no enroot
    err = capsys.readouterr().err
    assert err.startswith("error: enroot is not installed on the compute node") and err.count("\n") == 1
    assert not (state / "images" / "nvcr.io+x+1.sqsh").exists()
    (state / "images").mkdir()
    (state / "images" / "nvcr.io+x+1.sqsh").write_text("squashed")
    assert main(["kit", "squash", "nvcr.io/x:1", "--run", "slurm"]) == 0
    assert "squash file exists, skipping" in capsys.readouterr().out
