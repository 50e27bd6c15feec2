"""The error data prep raises for bad inputs (kept out of nemotron_core.errors on purpose)."""

from __future__ import annotations

from nemotron_core.errors import NemotronError


class DataError(NemotronError):
    """An input file, line, record or data-prep setting is unusable.

    The message is one line: where (file:line, source name or config key), what is
    wrong, and the fix.
    """
