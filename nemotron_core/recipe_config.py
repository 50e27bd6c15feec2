"""`RecipeConfig` / `parse_recipe_config`: one recipe invocation's options, the seed's way.

The seed (NVIDIA's `nemo_runspec`) starts every recipe command with

    cfg = parse_recipe_config(ctx)          # ctx: the command's typer.Context
    cfg.mode, cfg.attached, cfg.profile, cfg.config, cfg.dry_run, cfg.passthrough, cfg.dotlist

and hands `cfg.ctx` to `parse_config`, `parse_env` and `build_job_config`. This module gives
the same object here. `ctx` is read duck-typed (`ctx.obj`, `ctx.args`), so no typer import:

- under the `nemotron` CLI, `ctx.obj` is the CLI's context (globals already taken off the line
  anywhere on it) and `ctx.args` holds the overrides;
- in a Typer app of one's own (`RecipeTyper`), `ctx.obj` is empty and the globals the seed
  accepts after the command (`-c/--config`, `-r/--run`, `-b/--batch`, `-d/--dry-run`,
  `--stage`, `--force-squash`; also `--run=dev` and `-rdev`) are read from `ctx.args` here, as the
  nemotron CLI reads them off its whole line (nemotron_cli/context.py).
Words `key=value`, `+key=value`, `~key` are the dotlist; any other word, and every word after
`--`, passes through to the script (as in the seed). Conflicts are one-line `NemotronError`s.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any

from nemotron_core.errors import NemotronError

_DOTLIST = re.compile(r"^(\+?[A-Za-z_][\w.-]*=.*|~[A-Za-z_][\w.-]*)$")
# The seed's globals: option words -> RunContext field; flags set True, the others take a value.
_VALUED = {"-c": "config", "--config": "config", "-r": "run", "--run": "run", "-b": "batch", "--batch": "batch"}
_FLAGS = {"-d": "dry_run", "--dry-run": "dry_run", "--stage": "stage", "--force-squash": "force_squash"}


@dataclass
class RunContext:
    """The global options of one invocation (the seed's `GlobalContext` fields)."""

    config: str | None = None
    run: str | None = None  # profile, attached
    batch: str | None = None  # profile, detached
    dry_run: bool = False
    stage: bool = False
    force_squash: bool = False
    dotlist: list[str] = field(default_factory=list)
    passthrough: list[str] = field(default_factory=list)

    @property
    def mode(self) -> str:
        return "batch" if self.batch else "run" if self.run else "local"

    @property
    def profile(self) -> str | None:
        return self.run or self.batch

    @property
    def attached(self) -> bool:
        return not self.batch


@dataclass
class RecipeConfig:
    """What one recipe command was asked to do (`parse_recipe_config(ctx)`)."""

    ctx: RunContext
    argv: list[str] = field(default_factory=lambda: list(sys.argv))
    dotlist: list[str] = field(default_factory=list)
    passthrough: list[str] = field(default_factory=list)

    @property
    def mode(self) -> str:
        """local (no profile) | run (--run, attached) | batch (--batch, detached)."""
        return self.ctx.mode

    @property
    def attached(self) -> bool:
        return self.ctx.attached

    @property
    def profile(self) -> str | None:
        return self.ctx.profile

    @property
    def config(self) -> str | None:
        return self.ctx.config

    @property
    def dry_run(self) -> bool:
        return self.ctx.dry_run

    @property
    def stage(self) -> bool:
        return self.ctx.stage

    @property
    def force_squash(self) -> bool:
        return self.ctx.force_squash


def _from_obj(obj: Any) -> RunContext:
    """A RunContext holding what an outer CLI already parsed (any object with the seed's field names)."""
    out = RunContext()
    for name in ("config", "run", "batch", "dry_run", "stage", "force_squash"):
        value = getattr(obj, name, None)
        if value is not None:
            setattr(out, name, value)
    out.dotlist = list(getattr(obj, "dotlist", None) or [])
    out.passthrough = list(getattr(obj, "passthrough", None) or [])
    return out


def split_words(words: list[str], ctx: RunContext) -> RunContext:
    """Read `words` (a command's extra arguments) into `ctx`: late globals, dotlist, passthrough."""
    i = 0
    while i < len(words):
        word = words[i]
        opt, eq, inline = word.partition("=")
        if word == "--":
            ctx.passthrough.extend(words[i + 1:])
            break
        if word in _FLAGS:
            setattr(ctx, _FLAGS[word], True)
        elif opt in _VALUED and eq:  # --run=dev, -r=dev
            setattr(ctx, _VALUED[opt], inline)
        elif word[:2] in _VALUED and len(word) > 2 and not word.startswith("--"):  # -ctiny, -rdev
            setattr(ctx, _VALUED[word[:2]], word[2:])
        elif word in _VALUED:
            if i + 1 >= len(words) or words[i + 1].startswith("-"):
                raise NemotronError(f"option {word} needs a value (e.g. {word} "
                                    f"{'tiny' if _VALUED[word] == 'config' else 'PROFILE'})")
            i += 1
            setattr(ctx, _VALUED[word], words[i])
        elif _DOTLIST.match(word):
            ctx.dotlist.append(word)
        else:
            ctx.passthrough.append(word)
        i += 1
    if ctx.run and ctx.batch:
        raise NemotronError(f"--run {ctx.run} and --batch {ctx.batch} are exclusive: --run waits for the job, "
                            f"--batch submits and returns")
    if ctx.stage and not ctx.profile:
        raise NemotronError("--stage needs --run PROFILE or --batch PROFILE: it puts the job's files on that cluster")
    return ctx


def parse_recipe_config(typer_ctx: Any) -> RecipeConfig:
    """The command's options: `typer_ctx.obj` (an outer CLI's globals, if any) plus `typer_ctx.args`."""
    obj = getattr(typer_ctx, "obj", None)
    ctx = split_words(list(getattr(typer_ctx, "args", None) or []), _from_obj(obj))
    argv = list(getattr(obj, "argv", None) or sys.argv)
    return RecipeConfig(ctx=ctx, argv=argv, dotlist=list(ctx.dotlist), passthrough=list(ctx.passthrough))
