"""The `nemotron` CLI through its real entry point (subprocess) and in-process with a test recipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml

from nemotron_cli.app import main
from nemotron_cli.context import split_argv
from nemotron_cli.recipe_typer import RecipeTyper
from pipeline.stages import Stage
from nemotron_core.errors import NemotronError

REPO = Path(__file__).resolve().parents[2]
NEMOTRON = Path(sys.executable).with_name("nemotron")
ECHO = "tests/fixtures/recipes/echo/echo.py"


def nemotron(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(NEMOTRON), *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd or "/", env={**os.environ, **(env or {})})


# --------------------------------------------------------------- real entry point

def test_help_works_from_any_directory_and_imports_nothing_heavy(tmp_path):
    out = nemotron("--help", cwd=tmp_path)
    assert out.returncode == 0
    assert "nano3" in out.stdout and "kit" in out.stdout
    probe = subprocess.run([sys.executable, "-c",
                            "import sys; from nemotron_cli.app import app; "
                            "print(sorted(m for m in ('torch','nemo_run','prefect','ray','omegaconf','fsspec') if m in sys.modules))"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert probe.stdout.strip() == "[]", probe.stdout + probe.stderr


def test_nano3_help_shows_panels():
    out = nemotron("nano3", "--help")
    for panel in ("Training Stages", "Data", "Model"):
        assert panel in out.stdout
    for cmd in ("pretrain", "sft", "rl", "eval", "pipe"):
        assert cmd in out.stdout


def test_recipe_help_shows_configs_and_artifacts():
    out = nemotron("nano3", "sft", "--help")
    assert out.returncode == 0
    assert "nano3-sft-data" in out.stdout and "nano3-sft-model" in out.stdout
    assert "--dry-run" in out.stdout


def test_pipe_batch_without_a_server_is_one_line(tmp_path):
    out = nemotron("nano3", "pipe", "--batch", "local", env={"PREFECT_API_URL": ""})
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "PREFECT_API_URL" in lines[0], out.stderr


def test_unknown_profile_is_one_line_error(tmp_path):
    out = nemotron("nano3", "data", "prep", "pretrain", "--run", "nope", "--dry-run", cwd=tmp_path,
                   env={"NEMOTRON_ENV_FILE": ""})
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "error:" in out.stderr


def test_usage_errors_exit_nonzero():
    out = nemotron("nano3", "nope")
    assert out.returncode == 2 and "No such command" in out.stderr


# --------------------------------------------------------------- argv splitting

def test_globals_before_and_after_the_subcommand():
    rest, g = split_argv(["--run", "dev", "nano3", "sft", "-c", "tiny", "a.b=1", "--dry-run", "+x=2", "--", "--foo", "-c", "z"])
    assert rest == ["nano3", "sft", "a.b=1", "+x=2"]
    assert (g.run, g.config, g.dry_run, g.mode) == ("dev", "tiny", True, "run")
    assert g.passthrough == ["--foo", "-c", "z"]
    rest, g = split_argv(["nano3", "sft", "--batch=prod", "--config=default", "-ctiny"])
    assert (g.batch, g.mode, g.config, g.attached) == ("prod", "batch", "tiny", False)


@pytest.mark.parametrize("argv,message", [
    (["--run", "a", "--batch", "b"], "exclusive"),
    (["nano3", "sft", "-c"], "needs a value"),
    (["nano3", "sft", "--run", "--dry-run"], "needs a value"),
])
def test_bad_globals(argv, message):
    with pytest.raises(NemotronError, match=message):
        split_argv(argv)


# --------------------------------------------------------------- in-process with a test recipe

@pytest.fixture
def echo_cli(tmp_path, monkeypatch):
    """A one-command CLI wired exactly like nano3's, around the echo test recipe."""
    monkeypatch.setenv("NEMOTRON_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("COLUMNS", "400")  # rich would wrap long paths at 80 columns
    monkeypatch.delenv("NEMOTRON_ENV_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    meta = Stage("test/echo", ECHO, output="test-echo", output_what="a copy of the config")
    cli = RecipeTyper(name="t")

    @cli.recipe(meta, name="echo", panel="Test", help="Echo the config.")
    def echo(ctx: typer.Context) -> None:
        from nemotron_cli.context import split_dotlist
        from nemotron_cli.recipe_run import run_recipe

        raise typer.Exit(run_recipe(meta, ctx.obj, split_dotlist(ctx.args)))

    @cli.command("noop")
    def noop() -> None:
        pass

    return cli


def test_dry_run_prints_config_and_plan_and_writes_nothing(echo_cli, tmp_path, capsys):
    code = main(["echo", "-c", "tiny", "train.lr=0.1", "--dry-run", f"output_dir={tmp_path}/out", "--", "--verbose"],
                cli=echo_cli)
    out = capsys.readouterr().out
    assert code == 0
    assert "lr: 0.1" in out and "hidden: 128" in out
    assert "job.yaml" in out and "train.yaml" in out and "not written: dry run" in out
    assert "executor" in out and "direct" in out
    assert "--verbose" in out
    assert not (tmp_path / "state" / "jobs").exists() and not (tmp_path / "out").exists()


def test_local_run_writes_job_and_train_yaml_and_runs_the_script(echo_cli, tmp_path, capsys):
    code = main(["echo", "-c", "tiny", f"output_dir={tmp_path}/out", "+extra.count=5", "--", "--flag"], cli=echo_cli)
    assert code == 0
    record = json.loads((tmp_path / "out" / "echo.json").read_text())
    assert record["config"]["extra"]["count"] == 5 and "run" not in record["config"]
    assert record["extra"] == ["--flag"]
    assert record["greeting"] == "hello"  # the runspec's [env]
    assert record["state"] == str(tmp_path / "state")
    (job_dir,) = (tmp_path / "state" / "jobs" / "test-echo").iterdir()
    assert record["cwd"] == str(job_dir)
    job = yaml.safe_load((job_dir / "job.yaml").read_text())
    assert job["run"]["cli"]["dotlist"] == [f"output_dir={tmp_path}/out", "+extra.count=5"]
    assert job["run"]["cli"]["passthrough"] == ["--flag"]
    assert "echo: wrote" in (job_dir / "job.log").read_text()
    # The output was registered as the recipe's artifact.
    assert "registered test-echo:v1" in capsys.readouterr().out
    from nemotron_core.artifacts import open_registry

    version = open_registry().resolve("test-echo:v1")
    assert version.metadata["producer"] == "test/echo" and version.metadata["result"] == {"lines": 1}


def test_output_dir_defaults_to_the_flows_content_key_folder_and_a_rerun_is_a_cache_hit(echo_cli, tmp_path, capsys):
    """Without an output_dir, a stage's output goes where the flow puts it (<state>/outputs/<artifact>/<key[:16]>)
    and is registered with its content key (pipeline/run.py, shared with the Prefect tasks)."""
    from nemotron_core.artifacts import open_registry

    assert main(["echo", "-c", "tiny", "~output_dir"], cli=echo_cli) == 0
    (version,) = open_registry({"root": str(tmp_path / "state" / "artifacts")}).list("test-echo")
    key = version.metadata["content_key"]
    assert (Path(version.path) / "echo.json").is_file()
    (job_dir,) = (tmp_path / "state" / "jobs" / "test-echo").iterdir()
    assert yaml.safe_load((job_dir / "job.yaml").read_text())["output_dir"] == \
        str(tmp_path / "state" / "outputs" / "test-echo" / key[:16])
    capsys.readouterr()
    assert main(["echo", "-c", "tiny", "~output_dir"], cli=echo_cli) == 0
    assert f"cached: content {key[:12]} is test-echo:v1" in capsys.readouterr().out
    assert [v.ref for v in open_registry({"root": str(tmp_path / "state" / "artifacts")}).list("test-echo")] == \
        ["test-echo:v1"]
    assert len(list((tmp_path / "state" / "jobs" / "test-echo").iterdir())) == 1  # nothing ran the second time


def test_script_exit_code_propagates(echo_cli, tmp_path):
    assert main(["echo", f"output_dir={tmp_path}/out", "exit_code=3"], cli=echo_cli) == 3


def test_bad_override_is_one_line_error(echo_cli, capsys):
    assert main(["echo", "train.lrr=1"], cli=echo_cli) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: override 'train.lrr=1'") and err.count("\n") == 1


def test_stray_argument_is_rejected(echo_cli, capsys):
    assert main(["echo", "--verbose"], cli=echo_cli) == 2
    assert "put arguments for the script after '--'" in capsys.readouterr().err


def test_profile_from_env_toml_changes_the_plan(echo_cli, tmp_path, capsys, monkeypatch):
    (tmp_path / "env.toml").write_text('[cluster]\nexecutor = "slurm"\naccount = "a"\nnodes = 4\ngpus_per_node = 8\n')
    (tmp_path / "pyproject.toml").write_text("")
    assert main(["echo", "--run", "cluster", "--dry-run"], cli=echo_cli) == 0
    out = capsys.readouterr().out
    assert "slurm" in out and "4 node(s) × 8 GPU(s)" in out
    capsys.readouterr()
    # Running it goes to the execution layer (tests/execution); without a cluster: one line, at once.
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "no-such-slurm.conf"))
    assert main(["echo", "--run", "cluster"], cli=echo_cli) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: SLURM_CONF=") and err.count("\n") == 1


# --------------------------------------------------------------- --dry-run policy and the failure contract

def test_a_command_that_does_not_honour_dry_run_refuses_it(echo_cli, capsys):
    assert main(["noop", "--dry-run"], cli=echo_cli) == 2
    err = capsys.readouterr().err
    assert err == "error: 'nemotron noop' does not support --dry-run (it cannot show its effect without acting); " \
                  "run it without --dry-run\n"
    assert main(["noop"], cli=echo_cli) == 0


def test_words_after_double_dash_only_for_recipe_commands(echo_cli, capsys):
    assert main(["noop", "--", "--dry-run"], cli=echo_cli) == 2
    assert capsys.readouterr().err == ("error: 'nemotron noop' takes no arguments after '--' "
                                       "(only recipe commands pass them to their script)\n")
    assert main(["noop", "--"], cli=echo_cli) == 0


@pytest.fixture
def failing_cli():
    """Commands that fail the ways a bug or an interrupted user does."""
    from nemotron_core.errors import ConfigError

    cli = typer.Typer()

    @cli.command("bug")
    def bug(message: str = typer.Argument("boom")) -> None:
        raise RuntimeError(message)

    @cli.command("wrapped")
    def wrapped() -> None:
        try:
            raise ConfigError("config key 'x' is bad; fix it")
        except ConfigError as e:
            raise ValueError("a library wrapped it") from e

    @cli.command("interrupt")
    def interrupt() -> None:
        raise KeyboardInterrupt

    return cli


def test_internal_error_is_one_line_exit_1(failing_cli, capsys, monkeypatch):
    monkeypatch.delenv("NEMOTRON_DEBUG", raising=False)
    assert main(["bug", "first line\n  second line"], cli=failing_cli) == 1
    assert capsys.readouterr().err == ("error: internal error: RuntimeError: first line second line "
                                       "(set NEMOTRON_DEBUG=1 for the traceback)\n")


def test_internal_error_traceback_only_with_nemotron_debug(failing_cli, capsys, monkeypatch):
    monkeypatch.setenv("NEMOTRON_DEBUG", "1")
    assert main(["bug"], cli=failing_cli) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and err.splitlines()[-1] == "error: internal error: RuntimeError: boom"


def test_internal_error_masks_secret_values(failing_cli, capsys, monkeypatch):
    monkeypatch.delenv("NEMOTRON_DEBUG", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "wandb-secret-0123456789")
    assert main(["bug", "bad header Authorization: wandb-secret-0123456789"], cli=failing_cli) == 1
    err = capsys.readouterr().err
    assert "wandb-secret-0123456789" not in err and "***REDACTED***" in err


def test_wrapped_user_error_keeps_its_line_and_code(failing_cli, capsys):
    assert main(["wrapped"], cli=failing_cli) == 2
    assert capsys.readouterr().err == "error: config key 'x' is bad; fix it\n"


def test_ctrl_c_is_aborted_130(failing_cli, capsys):
    assert main(["interrupt"], cli=failing_cli) == 130
    assert capsys.readouterr().err == "aborted\n"
