"""`--dry-run` is global: every command honours it or refuses it, none ignores it.

The pre-parser (context.py) takes `--dry-run` out of the command line wherever it appears,
so a command never sees it as its own option. A command that honours it is marked with
`@honours_dry_run` and reads `dry_run_of(ctx)`: it prints what it would do and
changes nothing (read-only commands such as `artifacts list` honour it by doing what they
always do). Before anything runs, `refuse_unmarked` swaps the callback of every other leaf
for one that fails with a one-line error (exit 2): a new command that forgets about
`--dry-run` refuses it instead of acting for real.

Words after `--` (passed to the recipe script) get the same treatment: only commands marked
`@takes_passthrough` accept them, so `nemotron artifacts gc -- --dry-run` is refused rather
than run with the `--dry-run` silently dropped. `--stage` and `--force-squash` likewise:
only commands marked `@stages_job` / `@squashes` act on them, every other one refuses them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import typer
from typer._click import core as click

from nemotron_core.errors import NemotronError

F = TypeVar("F", bound=Callable)

# Marks survive Typer's wrapper (functools.update_wrapper copies the function's __dict__).
_MARK = "__nemotron_honours_dry_run__"
_PASSTHROUGH = "__nemotron_takes_passthrough__"
_STAGE = "__nemotron_stages_job__"
_SQUASH = "__nemotron_squashes__"


def honours_dry_run(fn: F) -> F:
    """Mark a command function as one that prints its plan and changes nothing under --dry-run."""
    setattr(fn, _MARK, True)
    return fn


def takes_passthrough(fn: F) -> F:
    """Mark a command function as one that hands the words after `--` to a script."""
    setattr(fn, _PASSTHROUGH, True)
    return fn


def stages_job(fn: F) -> F:
    """Mark a command function as one that acts on --stage (files in place, nothing submitted)."""
    setattr(fn, _STAGE, True)
    return fn


def squashes(fn: F) -> F:
    """Mark a command function as one that acts on --force-squash."""
    setattr(fn, _SQUASH, True)
    return fn


def honours(command: click.Command) -> bool:
    return bool(getattr(command.callback, _MARK, False))


def leaf_commands(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """(path, command) for every command that runs something, depth first, in declaration order."""
    children = getattr(command, "commands", None)
    if children is None:
        yield path, command
        return
    for name, child in children.items():
        yield from leaf_commands(child, (*path, name))


def refuse_unsupported(root: click.Command, *, dry_run: bool, passthrough: bool, stage: bool = False,
                       force_squash: bool = False, prog: str = "nemotron") -> None:
    """Make every leaf that does not support the given global (--dry-run, words after `--`,
    --stage, --force-squash) fail with one line instead of running."""
    for path, command in leaf_commands(root):
        name = " ".join((prog, *path))
        marks = getattr(command.callback, "__dict__", {})
        if dry_run and not honours(command):
            problem = (f"'{name}' does not support --dry-run (it cannot show its effect without acting); "
                       f"run it without --dry-run")
        elif passthrough and not marks.get(_PASSTHROUGH):
            problem = f"'{name}' takes no arguments after '--' (only recipe commands pass them to their script)"
        elif stage and not marks.get(_STAGE):
            problem = f"'{name}' has no job to stage; --stage is for recipe commands"
        elif force_squash and not marks.get(_SQUASH):
            problem = f"'{name}' uses no container image; --force-squash is for recipe commands and 'kit squash'"
        else:
            continue

        def refuse(*_args, _problem: str = problem, **_kwargs) -> None:
            raise NemotronError(_problem)

        command.callback = refuse


def dry_run_of(ctx: typer.Context) -> bool:
    """The global --dry-run (False when the command runs outside main(), e.g. under CliRunner)."""
    from nemotron_cli.context import GlobalContext

    return isinstance(ctx.obj, GlobalContext) and ctx.obj.dry_run


@contextmanager
def no_tool_homes_created() -> Iterator[None]:
    """Keep libraries from creating their home folder during a dry run.

    Importing Prefect (the pipe and eval plans use the flow's stage definitions) creates
    $PREFECT_HOME when it is missing. When it is, a dry run points Prefect at a throwaway
    empty folder, removed on the way out, so the state folder stays exactly as it was.
    """
    import os
    import shutil
    import tempfile
    from pathlib import Path

    home = os.environ.get("PREFECT_HOME")
    if not home or Path(home).is_dir():
        yield
        return
    scratch = tempfile.mkdtemp(prefix="nemotron-dry-run-")
    os.environ["PREFECT_HOME"] = scratch
    try:
        yield
    finally:
        os.environ["PREFECT_HOME"] = home
        shutil.rmtree(scratch, ignore_errors=True)
