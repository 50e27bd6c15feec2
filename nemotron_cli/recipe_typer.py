"""`RecipeMeta` and `RecipeTyper`: recipe commands with help that shows their configs.

A recipe command is declared once with its metadata (script, config dir, artifacts in
and out). `RecipeTyper.recipe(meta, panel=...)` registers it so that it accepts the
dotlist as extra arguments, and its `--help` shows a panel with the available configs
(read from the config dir only when help is rendered), the artifacts and the globals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import typer
from typer.core import TyperCommand

from nemotron_cli.dry_run import honours_dry_run, takes_passthrough
from nemotron_core.paths import PACKAGE_ROOT


@dataclass(frozen=True)
class RecipeMeta:
    name: str  # e.g. "nano3/pretrain"
    script: str  # relative to the package root, e.g. "recipes/nano3/stage0_pretrain/train.py"
    issue: int  # where the stage is being built, for the "not built yet" message
    inputs: dict[str, str] = field(default_factory=dict)  # artifact name -> what it is
    outputs: dict[str, str] = field(default_factory=dict)
    artifact_subdir: str = ""  # the part of output_dir registered as the output artifact

    @property
    def script_path(self) -> Path:
        return PACKAGE_ROOT / self.script

    def config_choices(self) -> list[str]:
        """Config names next to the script (by convention; the runspec is authoritative)."""
        from nemotron_core.errors import NemotronError
        from nemotron_core.runspec import parse

        if not self.script_path.is_file():
            return []
        try:
            return parse(self.script_path).config.choices()
        except NemotronError:
            return []


GLOBALS_HELP = (
    "[bold]-c/--config NAME|PATH[/] config (tiny, default, or a YAML path)   "
    "[bold]--run PROFILE[/] run attached via env.toml profile   [bold]--batch PROFILE[/] submit detached   "
    "[bold]--dry-run[/] print the plan only   [bold]key=value +key=value ~key[/] overrides   "
    "[bold]-- ARGS[/] passed to the script"
)


class RecipeCommand(TyperCommand):
    """Appends a 'Recipe' panel (configs, artifacts, globals) to the command's help."""

    meta: RecipeMeta | None = None

    def format_help(self, ctx, formatter):
        super().format_help(ctx, formatter)
        if self.meta is None:
            return
        from rich.console import Console
        from rich.panel import Panel
        from rich.table import Table

        m = self.meta
        t = Table.grid(padding=(0, 2))
        t.add_column(style="bold cyan")
        t.add_column()
        t.add_row("script", m.script + ("" if m.script_path.is_file() else f"  [red](not built yet, issue #{m.issue})[/]"))
        t.add_row("configs", ", ".join(m.config_choices()) or "-")
        for name, what in m.inputs.items():
            t.add_row("input", f"{name}  [dim]{what}[/]")
        for name, what in m.outputs.items():
            t.add_row("output", f"{name}  [dim]{what}[/]")
        t.add_row("globals", GLOBALS_HELP)
        Console().print(Panel(t, title=f"Recipe {m.name}", title_align="left", border_style="dim"))


class RecipeTyper(typer.Typer):
    """A Typer whose `recipe` decorator registers recipe commands."""

    def recipe(self, meta: RecipeMeta, *, name: str, panel: str, help: str) -> Callable:
        cls = type(f"RecipeCommand_{name}", (RecipeCommand,), {"meta": meta})

        def register(fn: Callable) -> Callable:
            honours_dry_run(fn)  # run_recipe prints config and plan and stops before writing anything
            takes_passthrough(fn)  # words after `--` go to the recipe script
            return self.command(
                name=name, help=help, rich_help_panel=panel, cls=cls,
                context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
            )(fn)

        return register
