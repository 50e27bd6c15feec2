"""`[config] format = "json"`: `-c NAME` finds NAME.json (the runspec's own lookup, RunspecConfig.path_of)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import typer

from nemotron_cli.app import main
from nemotron_cli.recipe_typer import RecipeTyper
from nemotron_core.config import parse_config
from nemotron_core.errors import ConfigError
from nemotron_core.runspec import parse
from pipeline.stages import Stage

HEADER = '''# /// script
# [tool.runspec]
# schema = "1"
# name = "test/jsonrec"
#
# [tool.runspec.run]
# launch = "direct"
#
# [tool.runspec.config]
# dir = "./config"
# default = "base"
# format = "json"
#
# [tool.runspec.resources]
# nodes = 1
# gpus_per_node = 0
# ///
import json, pathlib, sys
cfg = json.loads(json.dumps(__import__("yaml").safe_load(pathlib.Path(sys.argv[-1]).read_text())))
pathlib.Path(cfg["output_dir"]).mkdir(parents=True, exist_ok=True)
(pathlib.Path(cfg["output_dir"]) / "seen.json").write_text(json.dumps(cfg))
'''


@pytest.fixture
def recipe(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "rec.py").write_text(HEADER)
    (tmp_path / "config" / "base.json").write_text('{"a": 1, "output_dir": null}')
    (tmp_path / "config" / "tiny.json").write_text('{"a": 2, "output_dir": null}')
    (tmp_path / "config" / "other.yaml").write_text("a: 3\n")  # not this runspec's format
    return tmp_path / "rec.py"


def test_the_runspec_lookup_finds_json_names(recipe):
    spec = parse(recipe)
    assert parse_config(spec.config_dir, "tiny", ["a=5"], extensions=spec.config.extensions).a == 5
    assert parse_config(spec.config_dir, None, default="base", extensions=spec.config.extensions).a == 1
    with pytest.raises(ConfigError, match=r"config 'other' not found .*available: base, tiny"):
        parse_config(spec.config_dir, "other", extensions=spec.config.extensions)


def test_the_seed_form_finds_json_too_and_prefers_yaml(recipe):
    ctx = SimpleNamespace(config="tiny", dotlist=[])
    assert parse_config(ctx, recipe.parent / "config", "base").a == 2
    (recipe.parent / "config" / "tiny.yaml").write_text("a: 9\n")
    assert parse_config(ctx, recipe.parent / "config", "base").a == 9


def test_cli_dash_c_runs_a_json_config(recipe, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NEMOTRON_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("NEMOTRON_ENV_FILE", str(tmp_path / "env.toml"))
    (tmp_path / "env.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    stage = Stage("test/jsonrec", str(recipe))
    app = RecipeTyper(name="t")

    @app.recipe(stage, name="j", panel="Test", help="A json-config recipe.")
    def j(ctx: typer.Context) -> None:
        from nemotron_cli.context import split_dotlist
        from nemotron_cli.recipe_run import run_recipe

        raise typer.Exit(run_recipe(stage, ctx.obj, split_dotlist(ctx.args)))

    @app.command("noop")
    def noop() -> None:
        pass

    assert main(["j", "-c", "tiny", f"output_dir={tmp_path / 'out'}"], cli=app) == 0, capsys.readouterr().err
    assert '"a": 2' in (tmp_path / "out" / "seen.json").read_text()
    assert main(["j", "-c", "nope", "-d"], cli=app) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: config 'nope' not found") and "available: base, tiny" in err
