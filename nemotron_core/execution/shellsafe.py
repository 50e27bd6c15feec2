"""Values that reach a generated script are data: checked here, quoted where they are written.

What is code by design, and emitted as written: the profile's `startup_commands` and the
recipe's `cmd` template (the user wrote them as shell). Everything else (env.toml values,
env names, config values, passthrough args, paths, the state folder) is data: it reaches
every script we generate (sbatch, launch.sh, Ray's) through `shlex.quote`, and these checks
run before rendering, when the executor is built and again when the script is rendered
(the last line of defence: values may come from other sources than env.toml):

- an env name must match `[A-Za-z_][A-Za-z0-9_]*` (and keeps its case);
- a value may not hold a newline or another control character (one `#SBATCH` line, one
  `export` line: a newline would start a new shell line);
- a `--container-mounts` entry may not hold a comma (pyxis splits the list on commas).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping

from nemotron_core.errors import ProfileError

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _where(profile: str | None, key: str) -> str:
    return f"profile '{profile}': {key}" if profile else key


def check_value(value: object, *, profile: str | None, key: str) -> str:
    """`value` as text; refused (one line naming profile and key) when it holds a control character."""
    text = str(value)
    bad = _CONTROL.search(text)
    if bad:
        raise ProfileError(f"{_where(profile, key)} holds a control character ({bad[0]!r}); a value must be one "
                           f"line of text: remove the newline/tab/escape from it")
    return text


def check_env_name(name: object, *, profile: str | None, table: str = "env") -> str:
    text = str(name)
    if not ENV_NAME.match(text):
        raise ProfileError(f"{_where(profile, f'{table}.{text!r}')} is not a valid environment variable name: "
                           f"use letters, digits and _ (not starting with a digit), e.g. MY_VAR")
    return text


def check_env(env: Mapping[str, object], *, profile: str | None, table: str = "env") -> dict[str, str]:
    """{name: value} as text, every name and value checked."""
    return {check_env_name(k, profile=profile, table=table): check_value(v, profile=profile, key=f"{table}.{k}")
            for k, v in env.items()}


def check_mount(mount: object, *, profile: str | None, key: str = "mounts") -> str:
    text = check_value(mount, profile=profile, key=key)
    if "," in text:
        raise ProfileError(f"{_where(profile, key)} entry {text!r} holds a comma: pyxis splits "
                           f"--container-mounts on commas; rename the path or mount its parent")
    return text


def export_lines(env: Mapping[str, object], *, profile: str | None = None) -> list[str]:
    """`export NAME='value'` lines, names checked (case kept), values checked and quoted."""
    return [f"export {k}={shlex.quote(v)}" for k, v in check_env(env, profile=profile).items()]


def check_words(words: Iterable[object], *, profile: str | None, key: str) -> list[str]:
    return [check_value(w, profile=profile, key=key) for w in words]


def check_command(words: Iterable[object]) -> list[str]:
    """A command's words (script, config path, passthrough args): one line each, quoted by the caller."""
    return check_words(words, profile=None, key="command argument")
