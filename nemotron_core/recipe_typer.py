"""`RecipeTyper` and `RecipeMeta`: registering a recipe command the seed's way.

    META = RecipeMeta(name=SPEC.name, script_path=SCRIPT, config_dir=str(SPEC.config_dir),
                      default_config=SPEC.config.default, input_artifacts={"data": "..."})
    app = RecipeTyper(name="myrecipe", help="My recipes")
    app.add_recipe_command(train, meta=META, rich_help_panel="Training")

A command registered so takes extra words (the dotlist, late globals, words for the script:
`parse_recipe_config(ctx)` sorts them), its --help ends with the recipe's script, configs and
artifacts, and a `NemotronError` it raises ends it with one `error: ...` line and exit code 2
instead of a traceback.

Layer decision: this is the one toolkit module that imports typer (a RecipeTyper *is* a
typer.Typer, so the class needs it). `.importlinter` lets exactly `nemotron_core.recipe_typer ->
typer` through the "toolkit imports no CLI framework" contract; nothing else in nemotron_core
imports this module, so typer loads only in programs that import RecipeTyper themselves (the
nemotron CLI's own stage commands use nemotron_cli/recipe_typer.py).
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import typer
from typer.core import TyperCommand

from nemotron_core.errors import NemotronError


@dataclass(frozen=True)
class RecipeMeta:
    """A recipe's identity for its command: script, configs, artifacts in and out (name -> what)."""

    name: str
    script_path: str
    config_dir: str
    default_config: str = "default"
    input_artifacts: dict[str, str] = field(default_factory=dict)
    output_artifacts: dict[str, str] = field(default_factory=dict)


def _configs(config_dir: str | None) -> str:
    """Config names in the dir (read when help is shown, never at registration)."""
    if not config_dir or not Path(config_dir).is_dir():
        return "-"
    names = sorted({p.stem for p in Path(config_dir).iterdir() if p.suffix in (".yaml", ".yml", ".json")})
    return ", ".join(names) or "-"


class _RecipeHelp(TyperCommand):
    """Appends the recipe's script, configs and artifacts to the command's --help."""

    meta: RecipeMeta | None = None
    config_dir: str | None = None
    inputs: dict[str, str] = {}
    outputs: dict[str, str] = {}

    def format_help(self, ctx: Any, formatter: Any) -> None:
        super().format_help(ctx, formatter)
        lines = []
        if self.meta is not None and self.meta.script_path:
            lines.append(f"script   {self.meta.script_path}")
        lines.append(f"configs  {_configs(self.config_dir)}  (-c NAME, or -c path/to.yaml)")
        lines += [f"input    run.{k}  {v}" for k, v in self.inputs.items()]
        lines += [f"output   {k}  {v}" for k, v in self.outputs.items()]
        lines.append("globals  -c/--config  -r/--run PROFILE  -b/--batch PROFILE  -d/--dry-run  key=value  -- ARGS")
        typer.echo("\n".join(["", "Recipe:", *(f"  {line}" for line in lines)]))


def _one_line_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A toolkit error ends the command with `error: ...` on stderr and exit code 2."""
    @functools.wraps(fn)  # typer reads the parameters through __wrapped__
    def command(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except NemotronError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            raise typer.Exit(2) from None

    return command


class RecipeTyper(typer.Typer):
    """A typer.Typer with the seed's `recipe_command` / `add_recipe_command` registration."""

    def recipe_command(self, *, meta: RecipeMeta | None = None, config_dir: str | None = None,
                       input_artifacts: dict[str, str] | None = None, output_artifacts: dict[str, str] | None = None,
                       rich_help_panel: str | None = None, name: str | None = None) -> Callable[[Callable], Callable]:
        if meta is not None:
            config_dir = meta.config_dir
            input_artifacts, output_artifacts = meta.input_artifacts, meta.output_artifacts
        help_cls = type("RecipeHelp", (_RecipeHelp,), {"meta": meta, "config_dir": config_dir,
                                                       "inputs": dict(input_artifacts or {}),
                                                       "outputs": dict(output_artifacts or {})})

        def register(fn: Callable) -> Callable:
            self.command(name=name or fn.__name__.replace("_", "-"), cls=help_cls, rich_help_panel=rich_help_panel,
                         context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
                         )(_one_line_errors(fn))
            return fn

        return register

    def add_recipe_command(self, fn: Callable, *, meta: RecipeMeta | None = None, config_dir: str | None = None,
                           input_artifacts: dict[str, str] | None = None,
                           output_artifacts: dict[str, str] | None = None, rich_help_panel: str | None = None,
                           name: str | None = None) -> None:
        """`app.add_recipe_command(train, meta=META, rich_help_panel="Training")`."""
        self.recipe_command(meta=meta, config_dir=config_dir, input_artifacts=input_artifacts,
                            output_artifacts=output_artifacts, rich_help_panel=rich_help_panel, name=name)(fn)
