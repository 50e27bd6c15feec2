"""The `nemotron` entry point.

    nemotron nano3 pretrain|sft|rl|eval|pipe        training stages
    nemotron nano3 data prep|import pretrain|sft|rl datasets
    nemotron nano3 model import|eval ...            models
    nemotron evaluate MODEL_ARTIFACT[:VERSION]
    nemotron artifacts list|show|lineage|alias|verify|gc
    nemotron kit squash IMAGE

Global options (`--run/--batch PROFILE`, `--dry-run`, `-c/--config`) may come before or
after the subcommand (see context.py). User errors print one line `error: ...` and
exit 2; nothing here imports torch, nemo-run or Prefect unless a command needs them.
"""

from __future__ import annotations

import sys

import typer

from nemotron_core.cli.artifacts_cmd import app as artifacts_app
from nemotron_core.cli.nano3 import app as nano3_app

app = typer.Typer(
    name="nemotron",
    help="Nemotron nano3 training pipeline: recipes, artifacts and Prefect flows.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=False,
)
kit_app = typer.Typer(name="kit", help="Toolkit utilities (container images).", no_args_is_help=True)


@app.callback()
def root(
    ctx: typer.Context,
    run: str = typer.Option(None, "--run", metavar="PROFILE", help="Run attached through an env.toml profile."),
    batch: str = typer.Option(None, "--batch", metavar="PROFILE", help="Submit detached through an env.toml profile."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and the plan; run nothing."),
    config: str = typer.Option(None, "-c", "--config", metavar="NAME|PATH", help="Recipe config: tiny, default or a YAML path."),
) -> None:
    """Options here are documentation: main() extracts them wherever they appear."""


@app.command(name="evaluate", rich_help_panel="Model",
             context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def evaluate(ctx: typer.Context, model: str = typer.Argument(..., metavar="MODEL_ARTIFACT[:VERSION]")) -> None:
    """Evaluate a model artifact version and print the comparison table across model versions."""
    from nemotron_core.cli.nano3 import evaluate_ref

    raise typer.Exit(evaluate_ref(ctx, model))


@kit_app.command(name="squash", rich_help_panel="Kit")
def squash(ctx: typer.Context,
           image: str = typer.Argument(..., help="Container image to import as an enroot squash file."),
           force: bool = typer.Option(False, "--force", help="Import again even if the squash file exists.")) -> None:
    """Build the enroot squash file for IMAGE on the Slurm profile (skipped when it exists).

    Use with --run/--batch PROFILE (a Slurm profile); --dry-run prints the commands.
    """
    from nemotron_core.errors import ProfileError
    from nemotron_core.execution.squash import ensure_squashed_image
    from nemotron_core.profiles import load_env

    g = ctx.obj
    if g is None or not g.profile:
        raise ProfileError("'nemotron kit squash' needs a Slurm profile: nemotron kit squash IMAGE --run PROFILE")
    ensure_squashed_image(load_env().profile(g.profile), image, force=force, dry_run=g.dry_run)


app.add_typer(nano3_app, rich_help_panel="Recipes")
app.add_typer(artifacts_app, name="artifacts", rich_help_panel="Artifacts")
app.add_typer(kit_app, rich_help_panel="Kit")


def main(argv: list[str] | None = None, *, cli: typer.Typer | None = None) -> int:
    from nemotron_core.cli.context import split_argv
    from nemotron_core.errors import NemotronError

    from typer._click import exceptions as click  # typer 0.29 vendors click: its exceptions live here

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        rest, g = split_argv(argv)
        command = typer.main.get_command(cli or app)
        # Not standalone: click's usage errors come here, to be printed as one line like ours.
        code = command.main(args=rest, prog_name="nemotron", obj=g, standalone_mode=False)
        return code if isinstance(code, int) else 0
    except NemotronError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except click.NoArgsIsHelpError as e:  # `nemotron nano3`: the help, as before
        e.show()
        return e.exit_code
    except click.ClickException as e:  # unknown option, missing argument, ...: one line, not a box
        message = " ".join(e.format_message().split()).rstrip(".")
        hint = f"; see '{e.ctx.command_path} --help'" if getattr(e, "ctx", None) is not None else ""
        print(f"error: {message}{hint}", file=sys.stderr)
        return e.exit_code
    except click.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)


if __name__ == "__main__":
    sys.exit(main())
