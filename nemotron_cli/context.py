"""Late global options, anywhere on the line (the seed's set): `-r/--run PROFILE`,
`-b/--batch PROFILE`, `-d/--dry-run`, `-c/--config NAME|PATH`, `--stage`, `--force-squash`.

Users type `nemotron nano3 sft -c tiny -r dev train.lr=1e-4 -- --extra`, or put the
globals first. `split_argv` pulls the globals out of the whole command line (up to `--`)
before Typer parses it; `key=value`, `+key=value` and `~key` words become the dotlist and
words after `--` pass through to the recipe script untouched. Because the globals are
taken off the line here, a command never sees them as its own options: dry_run.py makes
each command honour `--dry-run` or refuse it, and refuse words after `--` unless it is a
recipe command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from nemotron_core.errors import NemotronError
from nemotron_core.recipe_config import RunContext

_DOTLIST = re.compile(r"^(\+?[A-Za-z_][\w.-]*=.*|~[A-Za-z_][\w.-]*)$")


@dataclass
class GlobalContext(RunContext):
    """The toolkit's RunContext (the seed's global options: profile, mode, --dry-run, --stage, ...) plus the
    full command line, which the CLI keeps for job.yaml."""

    argv: list[str] = field(default_factory=list)  # the full original command line


#: Global options with a value, and flags: option word → GlobalContext field.
_VALUED = {"-r": "run", "--run": "run", "-b": "batch", "--batch": "batch", "-c": "config", "--config": "config"}
_FLAGS = {"-d": "dry_run", "--dry-run": "dry_run", "--stage": "stage", "--force-squash": "force_squash"}


def split_argv(argv: list[str]) -> tuple[list[str], GlobalContext]:
    """Remove the global options from `argv`; return (argv for Typer, GlobalContext)."""
    ctx = GlobalContext(argv=list(argv))
    if "--" in argv:
        cut = argv.index("--")
        argv, ctx.passthrough = argv[:cut], argv[cut + 1:]
    rest: list[str] = []
    i = 0

    def value(opt: str) -> str:
        nonlocal i
        if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
            raise NemotronError(f"option {opt} needs a value (e.g. {opt} {'tiny' if opt in ('-c', '--config') else 'local'})")
        i += 1
        return argv[i]

    while i < len(argv):
        word = argv[i]
        opt, eq, inline = word.partition("=")
        if opt in _VALUED and eq:  # --run=dev, -r=dev
            setattr(ctx, _VALUED[opt], inline)
        elif word in _VALUED:
            setattr(ctx, _VALUED[word], value(word))
        elif word[:2] in _VALUED and len(word) > 2 and not word.startswith("--"):  # -ctiny, -rdev
            setattr(ctx, _VALUED[word[:2]], word[2:])
        elif word in _FLAGS:
            setattr(ctx, _FLAGS[word], True)
        else:
            rest.append(word)
        i += 1
    if ctx.run and ctx.batch:
        raise NemotronError(f"--run {ctx.run} and --batch {ctx.batch} are exclusive: --run waits for the job, --batch submits and returns")
    return rest, ctx


def pin_tool_homes() -> None:
    """Point Prefect, nemo-run, HF, W&B... at the state folder unless the user chose their own.

    The CLI imports Prefect (pipe, eval) and nemo-run, which create their homes (~/.prefect,
    ~/.nemo_run) on import; scripts/ and executors already export the same variables.
    TMPDIR stays as the user set it: this process's temp files are not a run's outputs.
    """
    import os

    from nemotron_core.paths import state_env

    for key, value in state_env().items():
        if key != "TMPDIR":
            os.environ.setdefault(key, value)


def split_dotlist(args: list[str]) -> list[str]:
    """The recipe command's extra words must all be overrides."""
    for word in args:
        if not _DOTLIST.match(word):
            raise NemotronError(
                f"unexpected argument '{word}': overrides look like key=value, +key=value or ~key; "
                f"put arguments for the script after '--'"
            )
    return list(args)
