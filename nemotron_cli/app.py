"""The `nemotron` entry point.

    nemotron nano3 pretrain|sft|rl|eval|pipe        training stages
    nemotron nano3 data prep|import pretrain|sft|rl datasets
    nemotron nano3 model import|eval ...            models
    nemotron evaluate MODEL_ARTIFACT[:VERSION]
    nemotron artifacts list|show|lineage|alias|verify|gc
    nemotron kit squash [PROFILE] IMAGE

Global options (`-r/--run PROFILE`, `-b/--batch PROFILE`, `-d/--dry-run`, `-c/--config`,
`--stage`, `--force-squash`) may come before or after the subcommand (see context.py). Every command honours `--dry-run` (prints what it
would do, changes nothing) or refuses it with one line (dry_run.py). Nothing here imports
torch, nemo-run or Prefect unless a command needs them.

Failures never show a traceback (failure.py), and secret values are masked in them:

    error: <what is wrong and the fix>       user error (bad input): exit 2
    error: internal error: <ExcType>: <msg> (set NEMOTRON_DEBUG=1 for the traceback)
                                             a bug or an unexpected library error: exit 1
    aborted                                  Ctrl-C or end of input: exit 130
"""

from __future__ import annotations

import sys

import typer

from nemotron_cli.artifacts_cmd import app as artifacts_app
from nemotron_cli.dry_run import honours_dry_run, squashes
from nemotron_cli.nano3 import app as nano3_app

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
    run: str = typer.Option(None, "-r", "--run", metavar="PROFILE", help="Run attached through an env.toml profile."),
    batch: str = typer.Option(None, "-b", "--batch", metavar="PROFILE", help="Submit detached through an env.toml profile."),
    dry_run: bool = typer.Option(False, "-d", "--dry-run", help="Print the resolved config and the plan; run nothing."),
    config: str = typer.Option(None, "-c", "--config", metavar="NAME|PATH", help="Recipe config: tiny, default or a YAML path."),
    stage: bool = typer.Option(False, "--stage", help="Put the job's files in its job dir (on the cluster for "
                               "Slurm) and print how to run it by hand; submit nothing."),
    force_squash: bool = typer.Option(False, "--force-squash", help="Import the container's enroot squash file "
                                      "again before submitting (Slurm profiles with squash = true)."),
) -> None:
    """Options here are documentation: main() extracts them wherever they appear."""


@app.command(name="evaluate", rich_help_panel="Model",
             context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@honours_dry_run  # evaluate_model(dry_run=True) prints what it would evaluate
def evaluate(ctx: typer.Context, model: str = typer.Argument(..., metavar="MODEL_ARTIFACT[:VERSION]")) -> None:
    """Evaluate a model artifact version and print the comparison table across model versions.

    With --dry-run, prints the version, the data it would be scored on and whether the result is cached.
    """
    from nemotron_cli.nano3 import evaluate_ref

    raise typer.Exit(evaluate_ref(ctx, model))


@kit_app.command(name="squash", rich_help_panel="Kit")
@honours_dry_run  # ensure_squashed_image(dry_run=True) prints the commands
@squashes  # --force-squash is --force here
def squash(ctx: typer.Context,
           words: list[str] = typer.Argument(..., metavar="[PROFILE] IMAGE",
                                             help="The Slurm profile (or -r PROFILE) and the container image."),
           force: bool = typer.Option(False, "--force", help="Import again even if the squash file exists.")) -> None:
    """Build the enroot squash file for IMAGE on the Slurm profile (skipped when it exists).

    [bold]nemotron kit squash PROFILE IMAGE[/] or [bold]nemotron kit squash IMAGE -r PROFILE[/];
    --dry-run prints the commands.
    """
    from nemotron_cli.kit import squash_target
    from nemotron_core.execution.squash import ensure_squashed_image
    from nemotron_core.profiles import load_env

    g = ctx.obj
    profile, image = squash_target(words, g.profile if g is not None else None)
    force = force or bool(g and g.force_squash)
    if force and g is not None and g.dry_run:  # the dry run prints both steps either way
        print("# forced: the import runs even when the squash file exists")
    ensure_squashed_image(load_env().profile(profile), image, force=force, dry_run=bool(g and g.dry_run))


app.add_typer(nano3_app, rich_help_panel="Recipes")
app.add_typer(artifacts_app, name="artifacts", rich_help_panel="Artifacts")
app.add_typer(kit_app, rich_help_panel="Kit")


def main(argv: list[str] | None = None, *, cli: typer.Typer | None = None) -> int:
    """Run the CLI; returns the exit code. Every failure ends here as one line (see failure.py)."""
    from nemotron_cli.failure import print_error, print_internal_error
    from nemotron_core.errors import NemotronError, find_cause

    from typer._click import exceptions as click  # typer 0.29 vendors click: its exceptions live here
    from typer.exceptions import Abort, Exit  # ...and its Abort/Exit here

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        from contextlib import nullcontext

        from nemotron_cli.context import pin_tool_homes, split_argv
        from nemotron_cli.dry_run import no_tool_homes_created, refuse_unsupported

        rest, g = split_argv(argv)
        pin_tool_homes()
        command = typer.main.get_command(cli or app)
        refuse_unsupported(command, dry_run=g.dry_run, passthrough=bool(g.passthrough), stage=g.stage,
                           force_squash=g.force_squash)
        # make_context + invoke, not command.main(): Typer's main turns Ctrl-C into a silent exit 130
        # and prints its own error boxes; here every exception comes to the handlers below.
        with no_tool_homes_created() if g.dry_run else nullcontext():
            with command.make_context("nemotron", rest, obj=g) as ctx:
                code = command.invoke(ctx)
        return code if isinstance(code, int) else 0
    except NemotronError as e:
        print_error(str(e))
        return e.exit_code
    except click.NoArgsIsHelpError as e:  # `nemotron nano3`: the help, as before
        e.show()
        return e.exit_code
    except click.ClickException as e:  # unknown option, missing argument, ...: one line, not a box
        message = e.format_message().rstrip(".")
        hint = f"; see '{e.ctx.command_path} --help'" if getattr(e, "ctx", None) is not None else ""
        print_error(f"{message}{hint}")
        return e.exit_code
    except Exit as e:  # typer.Exit(code) from a command: its code, nothing printed
        return e.exit_code
    except (Abort, KeyboardInterrupt, EOFError):
        print("aborted", file=sys.stderr, flush=True)
        return 130
    except SystemExit as e:  # sys.exit() in a library: its code; a message is printed as our one line
        if isinstance(e.code, int) or e.code is None:
            return e.code or 0
        print_error(str(e.code))
        return 1
    except BrokenPipeError:  # `nemotron artifacts list | head`: the reader left; no noise at exit either
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as e:  # noqa: BLE001 - the safety net: a bug or an unwrapped library error
        cause = find_cause(e)  # a NemotronError a library wrapped (omegaconf resolvers): the user's error
        if cause is not None:
            print_error(str(cause))
            return cause.exit_code
        print_internal_error(e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
