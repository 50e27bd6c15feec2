"""`RecipeTyper`: stage commands with help that shows their configs and artifacts.

A stage command is declared by its row of the stage table (pipeline/stages.py: script, artifacts in
and out, help). `RecipeTyper.recipe(stage, panel=...)` registers it so that it accepts the dotlist as
extra arguments, and its `--help` shows a panel with the available configs (read from the config dir
only when help is rendered), the artifacts and the globals. Any `Stage` works, also one that is not
in the table (the tests wire their own recipes this way).
"""

from __future__ import annotations

from typing import Callable

import typer
from typer.core import TyperCommand

from nemotron_cli.dry_run import honours_dry_run, squashes, stages_job, takes_passthrough
from pipeline.stages import STAGES, Stage


def config_choices(stage: Stage) -> list[str]:
    """Config names next to the script (by convention; the runspec is authoritative)."""
    from nemotron_core.errors import NemotronError
    from nemotron_core.runspec import parse

    if not stage.script_path.is_file():
        return []
    try:
        return parse(stage.script_path).config.choices()
    except NemotronError:
        return []


def default_config(stage: Stage):
    """The runspec's default config file, or None when the header does not parse (help still renders)."""
    from nemotron_core.errors import NemotronError
    from nemotron_core.runspec import parse

    if not stage.script_path.is_file():
        return None
    try:
        path = parse(stage.script_path).config.default_path
    except NemotronError:
        return None
    return path if path.is_file() else None


def input_artifacts(stage: Stage) -> list[tuple[str, str]]:
    """(artifact name(s), what) per input slot: the outputs of its upstream stages."""
    return [(" | ".join(str(STAGES[up].output) for up in inp.upstreams if up in STAGES), inp.what)
            for inp in stage.inputs.values()]


GLOBALS_HELP = (
    "[bold]-c/--config NAME|PATH[/] config (tiny, default, or a YAML path)   "
    "[bold]-r/--run PROFILE[/] run attached via env.toml profile   [bold]-b/--batch PROFILE[/] submit detached   "
    "[bold]-d/--dry-run[/] print the plan only   [bold]--stage[/] job files in place, not submitted   "
    "[bold]--force-squash[/] re-import the squash file   [bold]key=value +key=value ~key[/] overrides   "
    "[bold]-- ARGS[/] passed to the script"
)


class RecipeCommand(TyperCommand):
    """Appends a 'Recipe' panel (configs, artifacts, globals) to the command's help."""

    stage: Stage | None = None

    def format_help(self, ctx, formatter):
        super().format_help(ctx, formatter)
        if self.stage is None:
            return
        from rich.console import Console
        from rich.panel import Panel
        from rich.table import Table

        from nemotron_cli import help_panel

        m = self.stage
        t = Table.grid(padding=(0, 2))
        t.add_column(style="bold cyan")
        t.add_column()
        t.add_row("script", m.script + ("" if m.script_path.is_file() else "  [red](missing)[/]"))
        configs = config_choices(m)
        t.add_row("configs", ", ".join(configs) or "-")
        default = default_config(m)
        if default is not None:
            t.add_row("options", f"{help_panel.config_options(default)}  [dim](top level of {default.name})[/]")
        for name, what in input_artifacts(m):
            t.add_row("input", f"{name}  [dim]{what}[/]")
        if m.output:
            t.add_row("output", f"{m.output}  [dim]{m.output_what}[/]")
        t.add_row("globals", GLOBALS_HELP)
        console = Console()
        console.print(Panel(t, title=f"Stage {m.name}", title_align="left", border_style="dim"))
        profiles = Table.grid(padding=(0, 2))
        profiles.add_column(style="bold cyan")
        profiles.add_column()
        source, rows = help_panel.profile_rows()
        for name, where in rows:
            profiles.add_row(name, where)
        console.print(Panel(profiles, title=f"Profiles for -r/-b PROFILE ({source})", title_align="left",
                            border_style="dim"))
        command = ctx.command_path.removeprefix("nemotron ") if ctx.command_path else m.name
        console.print(Panel("\n".join(help_panel.examples(command, configs)), title="Examples", title_align="left",
                            border_style="dim"))


class RecipeTyper(typer.Typer):
    """A Typer whose `recipe` decorator registers recipe commands."""

    def recipe(self, stage: Stage, *, name: str, panel: str, help: str) -> Callable:
        cls = type(f"RecipeCommand_{name}", (RecipeCommand,), {"stage": stage})

        def register(fn: Callable) -> Callable:
            honours_dry_run(fn)  # run_recipe prints config and plan and stops before writing anything
            takes_passthrough(fn)  # words after `--` go to the recipe script
            stages_job(fn)  # --stage: job files in place, how to run it printed, nothing submitted
            squashes(fn)  # --force-squash: the profile's squash file imported again before submitting
            return self.command(
                name=name, help=help, rich_help_panel=panel, cls=cls,
                context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
            )(fn)

        return register
