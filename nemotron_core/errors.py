"""The project's one error type.

Every user-facing failure (bad runspec, bad config key, unknown profile, missing
artifact...) raises a `NemotronError` subclass whose message is one line naming the
file/key/value and the fix, with the values of secret environment variables redacted
(secrets.redact_text). The CLI prints it without a traceback and exits 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from nemotron_core.secrets import redact_text


class NemotronError(Exception):
    """A user-facing error: one line, names what is wrong and how to fix it."""

    exit_code = 2

    def __init__(self, message: str):
        # One line, always: wrapped library messages (YAML, TOML) may carry newlines.
        # Never a secret value: a message may quote user input that holds a token
        # (`no artifact named '<token>'`), so every known secret value is replaced.
        super().__init__(redact_text(" ".join(str(message).split())))


class RunspecError(NemotronError):
    """A recipe script's `[tool.runspec]` block is missing or invalid."""


class ConfigError(NemotronError):
    """A config file, config name or dotlist override is invalid."""


class ProfileError(NemotronError):
    """env.toml is invalid, or a profile is unknown or cyclic."""


class ArtifactError(NemotronError):
    """An artifact, version, alias or field is missing or corrupt."""


class NotBuiltError(NemotronError):
    """A command whose stage is not built yet."""


def find_cause(exc: BaseException | None) -> NemotronError | None:
    """The NemotronError a library wrapped (omegaconf wraps resolver errors), if any."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, NemotronError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when none is close."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def one_of(choices: Iterable[str]) -> str:
    """Render allowed values as `a | b | c`."""
    return " | ".join(sorted(str(c) for c in choices))
