"""A `--run local` job finds an HF token that exists only in ~/.cache/huggingface/token (its HF_HOME is the
state folder's): the job gets HF_TOKEN_PATH, the file's path, and never the token's value in its environment."""

from __future__ import annotations

import json

import typer

from nemotron_cli.app import main
from nemotron_cli.recipe_typer import RecipeTyper
from pipeline.stages import Stage

SCRIPT = '''# /// script
# [tool.runspec]
# schema = "1"
# name = "test/hftoken"
#
# [tool.runspec.run]
# launch = "direct"
#
# [tool.runspec.config]
# dir = "./config"
#
# [tool.runspec.resources]
# nodes = 1
# gpus_per_node = 0
# ///
import json, os, pathlib, sys
from huggingface_hub import get_token
token = get_token()
out = pathlib.Path(os.environ["REPORT"])
out.write_text(json.dumps({"found": token == pathlib.Path(os.environ["HOME"], ".cache/huggingface/token").read_text().strip(),
                           "in_env": any(token and token in v for v in os.environ.values()),
                           "hf_home": os.environ["HF_HOME"], "path": os.environ.get("HF_TOKEN_PATH")}))
'''


def test_run_local_job_reads_the_login_file_token(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    (home / ".cache" / "huggingface").mkdir(parents=True)
    (home / ".cache" / "huggingface" / "token").write_text("hf_" + "q" * 30 + "\n")
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("REPORT", str(tmp_path / "report.json"))
    monkeypatch.setenv("NEMOTRON_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("NEMOTRON_ENV_FILE", str(tmp_path / "env.toml"))
    (tmp_path / "env.toml").write_text("")
    (tmp_path / "hf.py").write_text(SCRIPT)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "default.yaml").write_text("output_dir: null\n")
    monkeypatch.chdir(tmp_path)
    stage = Stage("test/hftoken", str(tmp_path / "hf.py"))
    app = RecipeTyper(name="t")

    @app.recipe(stage, name="hf", panel="Test", help="Reports whether the job finds an HF token.")
    def hf(ctx: typer.Context) -> None:
        from nemotron_cli.context import split_dotlist
        from nemotron_cli.recipe_run import run_recipe

        raise typer.Exit(run_recipe(stage, ctx.obj, split_dotlist(ctx.args)))

    @app.command("noop")
    def noop() -> None:
        pass

    assert main(["hf", "--run", "local"], cli=app) == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["hf_home"].startswith(str(tmp_path / "state"))  # HF_HOME stays pinned to the state folder
    assert report["path"] == str(home / ".cache" / "huggingface" / "token")
    assert report["found"] and not report["in_env"]
    assert "q" * 30 not in capsys.readouterr().out
