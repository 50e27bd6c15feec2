"""How the CLI reports a failure: one line on stderr, secrets masked, never a traceback.

    error: <message>                                              a user error (exit 2, or the error's code)
    error: internal error: <ExcType>: <message> (set NEMOTRON_DEBUG=1 for the traceback)   a bug (exit 1)
    aborted                                                       Ctrl-C / end of input (exit 130)

Every line goes through `mask_secrets`: a message built from user input (an artifact
name, a config value, a path) may carry a secret the user pasted in the wrong place, and
stderr ends up in CI logs and Slurm output files.
"""

from __future__ import annotations

import os
import sys

from nemotron_core.secrets import REDACTED, is_secret_name

MAX_LINE = 600  # a message quoting a whole file or a huge value is cut: one readable line
_MIN_SECRET = 4  # shorter values ("1", "on") are too common to mask without mangling messages


def _declared_secret_names() -> set[str]:
    """Env var names env.toml profiles declare in `secrets = [...]` (best effort: env.toml may be what failed)."""
    try:
        from nemotron_core.profiles import load_env

        env = load_env()
        names: set[str] = set()
        for section in env.names():
            declared = env.section(section).get("secrets")
            if isinstance(declared, list):
                names.update(str(n) for n in declared)
        return names
    except Exception:  # noqa: BLE001 - reporting an error must not raise another
        return set()


def secret_values() -> list[str]:
    """Values of this process's secret environment variables, longest first (so no partial masks)."""
    declared = _declared_secret_names()
    values = {v for k, v in os.environ.items() if (is_secret_name(k) or k in declared) and len(v) >= _MIN_SECRET}
    return sorted(values, key=len, reverse=True)


def mask_secrets(text: str) -> str:
    for value in secret_values():
        text = text.replace(value, REDACTED)
    return text


def one_line(text: str) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= MAX_LINE else line[:MAX_LINE - 3] + "..."


def print_error(message: str) -> None:
    print(f"error: {one_line(mask_secrets(message))}", file=sys.stderr, flush=True)


def debug() -> bool:
    return os.environ.get("NEMOTRON_DEBUG", "") not in ("", "0", "false", "no")


def print_internal_error(exc: BaseException) -> None:
    """A bug, not the user's fault: the exception type and message; the traceback only with NEMOTRON_DEBUG=1."""
    if debug():
        import traceback

        text = "".join(traceback.format_exception(exc))
        print(mask_secrets(text), end="", file=sys.stderr)
    try:
        message = " ".join(str(exc).split())
    except Exception:  # noqa: BLE001 - an exception whose __str__ fails is still reported
        message = "<message could not be rendered>"
    if len(message) > MAX_LINE // 2:  # keep room for the hint at the end of the line
        message = mask_secrets(message)[:MAX_LINE // 2 - 3] + "..."
    what = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    hint = "" if debug() else " (set NEMOTRON_DEBUG=1 for the traceback)"
    print_error(f"internal error: {what}{hint}")
